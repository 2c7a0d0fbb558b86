/*
 * NAME
 *	tlspolicy/value.h - a policy value as Postfix's SMTP client reads it
 * SUMMARY
 *	Parses and validates the right-hand side of a policy entry, e.g.
 *	"fingerprint match=AA:BB:...|CC:DD:... servername=mx.example.com",
 *	following smtp_tls_policy.c, and names what Postfix would reject.
 * DESCRIPTION
 *	tp_policy_parse() always yields a tp_policy in *out (unless
 *	TP_ENOMEM), holding what could be read. It returns 0 for a value
 *	Postfix accepts, or TP_EINVALID with a message in diag naming the
 *	first thing Postfix would reject (unknown level or attribute,
 *	malformed name=value, repeated single-use attribute, match at the
 *	wrong level, no usable fingerprint, malformed hex). Free with
 *	tp_policy_free(), which accepts NULL.
 *
 *	tp_policy_pin_at() gives the pins of a fingerprint-level value
 *	normalised (upper-case hex pairs joined by ':'), in order, across
 *	all match= attributes and "|" lists. tp_policy_attr_at() gives the
 *	other attributes (name as written, value) in order; match= at
 *	verify/secure level (a hostname pattern list) is among them.
 *
 *	tp_policy_parse_for() is tp_policy_parse() as a given Postfix
 *	version reads the value: mail_version as "postconf -h mail_version"
 *	prints it ("3.7.11"), NULL for the newest. Attributes that version
 *	does not know are rejected as it would ("enable_rpk" needs 3.9).
 *	TP_EUSAGE (and no policy) for a mail_version that is no version.
 *	Postfix stores values as C strings, so only the bytes before a NUL
 *	count (with a warning).
 *
 *	tp_policy_warning_count()/tp_policy_warning_at() give what Postfix
 *	would log as a warning but still accept: a malformed fingerprint
 *	among usable ones (Postfix skips it), attributes ignored at level
 *	"none", a NUL byte in the value.
 *
 *	tp_level_name() returns the lower-case name; tp_level_parse() is
 *	case-insensitive and returns TP_EINVALID for an unknown level.
 */
#ifndef TLSPOLICY_VALUE_H
#define TLSPOLICY_VALUE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_level {
	TP_LEVEL_UNKNOWN = -1,
	TP_LEVEL_NONE = 0,
	TP_LEVEL_MAY,
	TP_LEVEL_ENCRYPT,
	TP_LEVEL_FINGERPRINT,
	TP_LEVEL_DANE,
	TP_LEVEL_DANE_ONLY,
	TP_LEVEL_VERIFY,
	TP_LEVEL_SECURE,
	TP_LEVEL_LAST
} tp_level;

typedef struct tp_policy tp_policy;

TP_EXTERN(const char *) tp_level_name(tp_level level);
TP_EXTERN(int) tp_level_parse(tp_level *out, const char *name);

TP_EXTERN(int) tp_policy_parse(tp_policy **out, const char *value,
			       size_t len, tp_diag *diag);
TP_EXTERN(int) tp_policy_parse_for(tp_policy **out, const char *value,
				   size_t len, const char *mail_version,
				   tp_diag *diag);
TP_EXTERN(void) tp_policy_free(tp_policy *policy);
TP_EXTERN(tp_level) tp_policy_level(const tp_policy *policy);
TP_EXTERN(size_t) tp_policy_pin_count(const tp_policy *policy);
TP_EXTERN(const char *) tp_policy_pin_at(const tp_policy *policy, size_t i);
TP_EXTERN(size_t) tp_policy_attr_count(const tp_policy *policy);
TP_EXTERN(int) tp_policy_attr_at(const tp_policy *policy, size_t i,
				 const char **name, const char **value);
/* Value of the first attribute called name (case-insensitive), or NULL. */
TP_EXTERN(const char *) tp_policy_attr(const tp_policy *policy,
				       const char *name);

TP_EXTERN(size_t) tp_policy_warning_count(const tp_policy *policy);
TP_EXTERN(const char *) tp_policy_warning_at(const tp_policy *policy,
					    size_t i);

#ifdef __cplusplus
}
#endif

#endif
