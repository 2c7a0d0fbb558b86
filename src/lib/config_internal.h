/*
 * NAME
 *	config_internal - main.cf parsing without the file (internal)
 * DESCRIPTION
 *	tp__config_parse() is tp_config_load() on text[0..len) already in
 *	memory, as if read from DIR/main.cf (dir is what config_directory
 *	expands to and what messages name). For tests and the fuzz target;
 *	tp_config_load() reads the file and calls it. TP_ENOMEM only.
 *
 *	tp__config_postfix_file() is the file a Postfix daemon opens for name
 *	(a main.cf value): daemons work from queue_directory, so a relative
 *	name is relative to it. malloc'd; NULL when out of memory.
 *
 *	TP__CONFIG_EXPAND_OUTPUT bounds one tp_config_get(): all the bytes
 *	its expansion appends, to the result and to the nested values and
 *	groups it expands on the way (so the result is at most that long).
 */
#define TP__CONFIG_EXPAND_OUTPUT (1u << 20)
#ifndef TP_CONFIG_INTERNAL_H
#define TP_CONFIG_INTERNAL_H

#include <stddef.h>

#include "tlspolicy/config.h"

int tp__config_parse(tp_config **out, const char *dir, const char *text,
		     size_t len, tp_diag *diag);
char *tp__config_postfix_file(const tp_config *config, const char *name);

#endif
