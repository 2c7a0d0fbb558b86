/*
 * NAME
 *	maps_internal - tp_maps as other Postfix lookups open them (internal)
 * DESCRIPTION
 *	tp__maps_open_spec() is tp_maps_open_spec() with Postfix's dict
 *	flags that change answers. TP__MAPS_NO_REGSUB is
 *	DICT_FLAG_NO_REGSUB: regexp and pcre rules whose result has a
 *	$number are skipped (trivial-rewrite opens transport_maps so, the
 *	SMTP client its smtp_tls_policy_maps not).
 */
#ifndef TP_MAPS_INTERNAL_H
#define TP_MAPS_INTERNAL_H

#include "tlspolicy/maps.h"

#define TP__MAPS_NO_REGSUB 1u

int tp__maps_open_spec(tp_maps **out, const char *spec,
		       const tp_config *config, unsigned flags, tp_diag *diag);

#endif
