/*
 * NAME
 *	value - a policy value as Postfix's SMTP client reads it
 * SUMMARY
 *	Follows tls_policy_lookup_one() of smtp_tls_policy.c, tls_level.c,
 *	split_nameval.c and tls_dane_add_fpt_digests() of the Postfix
 *	version given, and names the first thing that Postfix would reject.
 * DESCRIPTION
 *	tp_policy_parse_for() reads value[0..len-1] as Postfix mail_version
 *	("3.7.11"; NULL: the newest we know) would. Postfix stores values as
 *	C strings, so it sees only the bytes before a NUL; so do we (with a
 *	warning). tp_policy_parse() is tp_policy_parse_for(..., NULL, ...).
 *
 *	Tokens are split on ", \t\r\n" (from 3.10 on, "{ name = value }"
 *	groups may hold separators). The first is the level (tls_level.c:
 *	case-insensitive; "halfdane" is output only and not accepted).
 *	Below "may" the other tokens are ignored, as Postfix does, with a
 *	warning. The others are name=value, names case-insensitive:
 *	ciphers (non-empty), protocols, servername (a valid host name),
 *	exclude: once each; match: non-empty, only at fingerprint, verify,
 *	secure; tafile: non-empty, only at verify, secure;
 *	connection_reuse=yes|no (3.4); enable_rpk=yes|no (3.9); policy_ttl
 *	(digits), policy_type (sts, no-policy-found), policy_domain (a host
 *	name), policy_failure (sts-policy-fetch-error, sts-policy-invalid,
 *	sts-webpki-invalid, validation-failure): once each, and
 *	policy_string, mx_host_pattern: repeatable, all 3.10, and all but
 *	policy_type only together with policy_type.
 *
 *	At fingerprint level each match= value is split on '|'. Like
 *	Postfix (3.6+), a malformed fingerprint is skipped with a warning,
 *	not fatal; the value is invalid only when no usable fingerprint is
 *	left. Postfix would then fall back to smtp_tls_fingerprint_cert_match
 *	of main.cf, which this module cannot see: it reports the entry as
 *	invalid and says so. Before 3.6 Postfix compared pins as text, so a
 *	pin without ':' separators draws a warning that it can never match.
 *
 *	tp_policy_warning_count()/tp_policy_warning_at() give what Postfix
 *	would log as a warning but accept.
 *
 *	Not checked, because it needs more than the value: that a tafile
 *	can be loaded, that a ciphers grade or protocols list is valid for
 *	the OpenSSL in use, that DANE is usable (DNSSEC) for dane/dane-only.
 * DIAGNOSTICS
 *	TP_EINVALID with Postfix's own wording, e.g. invalid security level
 *	"fingerprnt", attribute "ciphers" is specified multiple times,
 *	attribute "match" invalid at security level "may". TP_EUSAGE for a
 *	mail_version that is not a version. TP_ENOMEM.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "diag.h"
#include "hostport.h"
#include "tlspolicy/fingerprint.h"
#include "tlspolicy/value.h"

struct tp_policy {
	tp_level level;
	tp_strarray pins;
	tp_strarray attr_names;
	tp_strarray attr_values;
	tp_strarray warnings;
};

/* Postfix's CHARS_COMMA_SP. */
#define SEPARATORS ", \t\r\n"

/* Versions as major * 1000000 + minor * 1000 + patch. */
#define VERSION(maj, min) ((maj) * 1000000L + (min) * 1000L)
#define VERSION_LATEST VERSION(999, 0)

static const char *const level_names[] = {
	"none", "may", "encrypt", "fingerprint", "dane", "dane-only",
	"verify", "secure",
};

const char *
tp_level_name(tp_level level)
{
	if (level < TP_LEVEL_NONE || level >= TP_LEVEL_LAST)
		return "unknown";
	return level_names[level];
}

int
tp_level_parse(tp_level *out, const char *name)
{
	*out = TP_LEVEL_UNKNOWN;
	if (name == NULL)
		return TP_EINVALID;
	for (int i = TP_LEVEL_NONE; i < TP_LEVEL_LAST; i++)
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (tp_level)i;
			return TP_OK;
		}
	return TP_EINVALID;
}

/* "3.7.11", "3.10-20250101", "3.9"; -1 when not a version. */
static long
parse_version(const char *s)
{
	long part[3] = { 0, 0, 0 };
	int n = 0;

	while (n < 3) {
		char *end;

		if (!isdigit((unsigned char)*s))
			break;
		errno = 0;
		part[n] = strtol(s, &end, 10);
		if (errno || part[n] > 999)
			return -1;
		n++;
		s = end;
		if (*s != '.')
			break;
		s++;
	}
	if (n < 2)
		return -1;
	return part[0] * 1000000L + part[1] * 1000L + part[2];
}

/*
 * Postfix's mystrtok() (braces == 0) or mystrtokq() with "{}" (3.10+):
 * skip separators, then take bytes up to the next separator outside
 * braces. NULL at the end.
 */
static char *
next_token(char **src, int braces)
{
	char *start = *src + strspn(*src, SEPARATORS);
	char *cp;
	int depth = 0;

	if (*start == '\0') {
		*src = start;
		return NULL;
	}
	for (cp = start; *cp; cp++) {
		if (braces && *cp == '{') {
			depth++;
		} else if (braces && depth > 0 && *cp == '}') {
			depth--;
		} else if (depth == 0 && strchr(SEPARATORS, *cp)) {
			*cp++ = '\0';
			break;
		}
	}
	*src = cp;
	return start;
}

/* Collapse whitespace runs to one space, as Postfix's normalize_ws(). */
static void
normalize_ws(char *s)
{
	char *out = s;
	int in_space = 0;

	for (; *s; s++) {
		if (isspace((unsigned char)*s)) {
			if (!in_space)
				*out++ = ' ';
			in_space = 1;
		} else {
			*out++ = *s;
			in_space = 0;
		}
	}
	*out = '\0';
}

static void
trim(char **s)
{
	char *p = *s + strlen(*s);

	while (p > *s && isspace((unsigned char)p[-1]))
		*--p = '\0';
	while (isspace((unsigned char)**s))
		(*s)++;
}

/*
 * extpar(&tok, "{}", EXTPAR_FLAG_STRIP | EXTPAR_FLAG_NORMAL_WS): strip
 * the outer braces of "{ ... }". Returns NULL or Postfix's complaint
 * (written into err).
 */
static const char *
strip_braces(char **tok, char *err, size_t errsize)
{
	char *cp = *tok;
	size_t len = 0;
	int depth = 0;
	const char *msg = NULL;

	for (size_t i = 0; cp[i]; i++) {
		if (cp[i] == '{')
			depth++;
		else if (cp[i] == '}' && --depth == 0) {
			len = i + 1;
			break;
		}
	}
	if (len == 0) {
		snprintf(err, errsize, "missing '}' in \"%s\"", cp);
		msg = err;
		cp++;
	} else {
		if (cp[len] != '\0') {
			snprintf(err, errsize, "syntax error after '}' in \"%s\"", cp);
			msg = err;
		}
		cp[len - 1] = '\0';
		cp++;
	}
	trim(&cp);
	normalize_ws(cp);
	*tok = cp;
	return msg;
}

/* Postfix's split_nameval(): "name = value" with optional blanks. */
static const char *
split_nameval(char *buf, char **name, char **value)
{
	char *np = buf, *ep, *cp;

	while (isspace((unsigned char)*np))
		np++;
	if (*np == '\0' || *np == '=')
		return "missing attribute name";
	for (ep = np; *ep && !isspace((unsigned char)*ep) && *ep != '='; ep++)
		;
	for (cp = ep; isspace((unsigned char)*cp); cp++)
		;
	if (*cp != '=')
		return "missing '=' after attribute name";
	*ep = '\0';
	cp++;
	trim(&cp);
	*name = np;
	*value = cp;
	return NULL;
}

struct attr_rule {
	const char *name;
	long since;		/* first Postfix version that knows it */
	int once;		/* "is specified multiple times" */
};

static const struct attr_rule attr_rules[] = {
	{ "ciphers", 0, 1 },
	{ "protocols", 0, 1 },
	{ "servername", 0, 1 },
	{ "match", 0, 0 },
	{ "exclude", 0, 1 },
	{ "tafile", 0, 0 },
	{ "connection_reuse", VERSION(3, 4), 0 },
	{ "enable_rpk", VERSION(3, 9), 0 },
	{ "policy_ttl", VERSION(3, 10), 1 },
	{ "policy_type", VERSION(3, 10), 1 },
	{ "policy_domain", VERSION(3, 10), 1 },
	{ "policy_string", VERSION(3, 10), 0 },
	{ "mx_host_pattern", VERSION(3, 10), 0 },
	{ "policy_failure", VERSION(3, 10), 1 },
};

#define N_RULES (sizeof(attr_rules) / sizeof(attr_rules[0]))

struct parse {
	tp_policy *policy;
	long version;
	const char *mail_version;
	tp_diag *diag;
	int seen[N_RULES];
	int usable_pins;	/* pins Postfix keeps, whether or not we can */
	int match_seen;
	char first_bad_pin[TP_DIAG_MESSAGE_MAX];
};

static int
warn(struct parse *p, const char *fmt, ...) TP_PRINTF(2, 3);

static int
warn(struct parse *p, const char *fmt, ...)
{
	char msg[TP_DIAG_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return tp__strarray_push(&p->policy->warnings, msg);
}

static int
invalid(struct parse *p, const char *fmt, ...) TP_PRINTF(2, 3);

static int
invalid(struct parse *p, const char *fmt, ...)
{
	char msg[TP_DIAG_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return tp__diag_set(p->diag, TP_EINVALID, NULL, 0, "%s", msg);
}

static int
yes_or_no(const char *val)
{
	return strcasecmp(val, "yes") == 0 || strcasecmp(val, "no") == 0;
}

/* One value of match= at fingerprint level. */
static int
add_pin(struct parse *p, const char *pin)
{
	char out[TP_FINGERPRINT_MAX];
	tp_diag d = TP_DIAG_INIT;
	size_t len = strlen(pin);
	int rc;

	if (p->version < VERSION(3, 6)) {
		/*
		 * Before 3.6 Postfix compared pins with its own printed
		 * fingerprints as text: never rejected, but a pin in any
		 * other form simply never matches.
		 */
		p->usable_pins++;
		if (tp_pin_normalize(out, pin, &d) != TP_OK)
			return warn(p, "%s: it can never match", d.message);
		if (strcasecmp(out, pin) != 0
		    && (rc = warn(p, "fingerprint \"%.100s\" can never match: "
				  "Postfix %s wants ':' between byte pairs",
				  pin, p->mail_version)) != TP_OK)
			return rc;
		return tp__strarray_push(&p->policy->pins, out);
	}
	if ((rc = tp_pin_normalize(out, pin, &d)) == TP_OK) {
		p->usable_pins++;
		return tp__strarray_push(&p->policy->pins, out);
	}
	/*
	 * Postfix keeps anything hex_decode_opt() takes that is at most
	 * 3 * EVP_MAX_MD_SIZE characters long, even if it is longer than
	 * any digest; such a pin is harmless but never matches.
	 */
	if (len <= 3 * 64 && rc == TP_ELIMIT) {
		p->usable_pins++;
		return warn(p, "fingerprint \"%.100s...\" is longer than any "
			    "digest and can never match", pin);
	}
	if (p->first_bad_pin[0] == '\0')
		snprintf(p->first_bad_pin, sizeof(p->first_bad_pin), "%s",
			 d.message);
	return warn(p, "%s; Postfix ignores it", d.message);
}

static int
add_attr(tp_policy *policy, const char *name, const char *val)
{
	int rc = tp__strarray_push(&policy->attr_names, name);

	if (rc == TP_OK && (rc = tp__strarray_push(&policy->attr_values, val)) != TP_OK)
		free(policy->attr_names.strings[--policy->attr_names.count]);
	return rc;
}

static int
parse_attr(struct parse *p, char *name, char *val)
{
	tp_level level = p->policy->level;
	const struct attr_rule *rule = NULL;
	size_t r;
	int rc;

	for (r = 0; r < N_RULES; r++)
		if (strcasecmp(name, attr_rules[r].name) == 0) {
			rule = &attr_rules[r];
			break;
		}
	if (rule == NULL)
		return invalid(p, "invalid attribute name: \"%s\"", name);
	if (p->version < rule->since)
		return invalid(p, "invalid attribute name: \"%s\" (new in Postfix "
			       "%ld.%ld; this is %s)", name, rule->since / 1000000,
			       rule->since / 1000 % 1000, p->mail_version);

	/* The checks in the order tls_policy_lookup_one() makes them. */
	if (strcmp(rule->name, "ciphers") == 0 && *val == '\0')
		return invalid(p, "attribute \"%s\" has empty value", name);
	if (rule->once && p->seen[r])
		return invalid(p, "attribute \"%s\" is specified multiple times", name);
	p->seen[r]++;

	if (strcmp(rule->name, "servername") == 0 && !tp__valid_hostname(val, 0))
		return invalid(p, "\"%s=%s\" specifies an invalid hostname", name, val);
	if (strcmp(rule->name, "match") == 0) {
		if (*val == '\0')
			return invalid(p, "attribute \"%s\" has empty value", name);
		if (level != TP_LEVEL_FINGERPRINT && level != TP_LEVEL_VERIFY
		    && level != TP_LEVEL_SECURE)
			return invalid(p, "attribute \"%s\" invalid at security level "
				       "\"%s\"", name, tp_level_name(level));
		if (level == TP_LEVEL_FINGERPRINT) {
			char *rest = val, *pin;

			p->match_seen = 1;
			while ((pin = strsep(&rest, "|")) != NULL)
				if (*pin && (rc = add_pin(p, pin)) != TP_OK)
					return rc;
			return TP_OK;
		}
	}
	if (strcmp(rule->name, "tafile") == 0) {
		if (level != TP_LEVEL_VERIFY && level != TP_LEVEL_SECURE)
			return invalid(p, "attribute \"%s\" invalid at security level "
				       "\"%s\"", name, tp_level_name(level));
		if (*val == '\0')
			return invalid(p, "attribute \"%s\" has empty value", name);
	}
	if ((strcmp(rule->name, "connection_reuse") == 0
	     || strcmp(rule->name, "enable_rpk") == 0) && !yes_or_no(val))
		return invalid(p, "attribute \"%s\" has bad value: \"%s\"", name, val);
	if (strcmp(rule->name, "policy_ttl") == 0) {
		char *end;
		long ttl;

		errno = 0;
		ttl = *val ? strtol(val, &end, 10) : 0;
		if (*val == '\0' || strspn(val, "0123456789") != strlen(val)
		    || errno != 0 || *end != '\0' || ttl < 0)
			return invalid(p, "attribute \"%s\" has a malformed value: "
				       "\"%s\"", name, val);
	}
	if (strcmp(rule->name, "policy_type") == 0
	    && strcasecmp(val, "sts") != 0 && strcasecmp(val, "no-policy-found") != 0)
		return invalid(p, "attribute \"%s\" has an unexpected value: \"%s\"",
			       name, val);
	if (strcmp(rule->name, "policy_domain") == 0 && !tp__valid_hostname(val, 0))
		return invalid(p, "attribute \"%s\" has a malformed value: \"%s\"",
			       name, val);
	if (strcmp(rule->name, "policy_failure") == 0
	    && strcasecmp(val, "sts-policy-fetch-error") != 0
	    && strcasecmp(val, "sts-policy-invalid") != 0
	    && strcasecmp(val, "sts-webpki-invalid") != 0
	    && strcasecmp(val, "validation-failure") != 0)
		return invalid(p, "attribute \"%s\" has an unexpected value: \"%s\"",
			       name, val);
	return add_attr(p->policy, name, val);
}

static int
seen(const struct parse *p, const char *name)
{
	for (size_t r = 0; r < N_RULES; r++)
		if (strcmp(attr_rules[r].name, name) == 0)
			return p->seen[r];
	return 0;
}

static int
parse_value(struct parse *p, char *buf)
{
	int braces = p->version >= VERSION(3, 10);
	char *rest = buf, *tok;
	int rc;

	if ((tok = next_token(&rest, braces)) == NULL)
		return invalid(p, "invalid empty policy");
	if (tp_level_parse(&p->policy->level, tok) != TP_OK)
		return invalid(p, "invalid security level \"%s\"", tok);
	if (p->policy->level < TP_LEVEL_MAY) {
		while ((tok = next_token(&rest, braces)) != NULL)
			if ((rc = warn(p, "ignoring attribute \"%s\" with TLS "
				       "disabled", tok)) != TP_OK)
				return rc;
		return TP_OK;
	}
	while ((tok = next_token(&rest, braces)) != NULL) {
		char err[TP_DIAG_MESSAGE_MAX], shown[TP_DIAG_MESSAGE_MAX];
		const char *why = NULL;
		char *name = NULL, *val = NULL;

		snprintf(shown, sizeof(shown), "%s", tok);
		if (braces && tok[0] == '{')
			why = strip_braces(&tok, err, sizeof(err));
		if (why == NULL)
			why = split_nameval(tok, &name, &val);
		if (why != NULL)
			return invalid(p, "malformed attribute/value pair \"%s\": %s",
				       shown, why);
		if ((rc = parse_attr(p, name, val)) != TP_OK)
			return rc;
	}

	if (!seen(p, "policy_type") && (seen(p, "policy_ttl")
					 || seen(p, "policy_domain")
					 || seen(p, "policy_string")
					 || seen(p, "mx_host_pattern")
					 || seen(p, "policy_failure")))
		return invalid(p, "built-in policy has unexpected attribute "
			       "policy_ttl, policy_domain, policy_string, "
			       "mx_host_pattern or policy_failure");

	if (p->policy->level == TP_LEVEL_FINGERPRINT && p->usable_pins == 0) {
		if (p->first_bad_pin[0])
			return invalid(p, "%s; configured at fingerprint security "
				       "level, but with no fingerprints to match",
				       p->first_bad_pin);
		if (!p->match_seen || p->version < VERSION(3, 9))
			return invalid(p, "configured at fingerprint security level, "
				       "but with no fingerprints to match (unless "
				       "smtp_tls_fingerprint_cert_match is set in "
				       "main.cf)");
		return invalid(p, "configured at fingerprint security level, "
			       "but with no fingerprints to match");
	}
	return TP_OK;
}

int
tp_policy_parse_for(tp_policy **out, const char *value, size_t len,
		    const char *mail_version, tp_diag *diag)
{
	struct parse p;
	char *buf;
	size_t n;
	int rc;

	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.diag = diag;
	p.mail_version = mail_version ? mail_version : "latest";
	p.version = mail_version ? parse_version(mail_version) : VERSION_LATEST;
	if (p.version < 0)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "malformed Postfix version \"%s\"", mail_version);
	if ((p.policy = calloc(1, sizeof(*p.policy))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	p.policy->level = TP_LEVEL_UNKNOWN;
	if (value == NULL)
		len = 0;
	/* Postfix stores values as C strings: it never sees past a NUL. */
	n = len ? strnlen(value, len) : 0;
	if ((buf = malloc(n + 1)) == NULL) {
		free(p.policy);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	if (n)
		memcpy(buf, value, n);
	buf[n] = '\0';
	rc = TP_OK;
	if (n < len)
		rc = warn(&p, "value contains a NUL byte: Postfix sees only the "
			  "%zu bytes before it", n);
	if (rc == TP_OK)
		rc = parse_value(&p, buf);
	free(buf);
	if (rc == TP_ENOMEM) {
		tp_policy_free(p.policy);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	*out = p.policy;
	return rc;
}

int
tp_policy_parse(tp_policy **out, const char *value, size_t len, tp_diag *diag)
{
	return tp_policy_parse_for(out, value, len, NULL, diag);
}

void
tp_policy_free(tp_policy *policy)
{
	if (policy == NULL)
		return;
	tp_strarray_dispose(&policy->pins);
	tp_strarray_dispose(&policy->attr_names);
	tp_strarray_dispose(&policy->attr_values);
	tp_strarray_dispose(&policy->warnings);
	free(policy);
}

tp_level
tp_policy_level(const tp_policy *policy)
{
	return policy ? policy->level : TP_LEVEL_UNKNOWN;
}

size_t
tp_policy_pin_count(const tp_policy *policy)
{
	return policy ? policy->pins.count : 0;
}

const char *
tp_policy_pin_at(const tp_policy *policy, size_t i)
{
	if (policy == NULL || i >= policy->pins.count)
		return NULL;
	return policy->pins.strings[i];
}

size_t
tp_policy_attr_count(const tp_policy *policy)
{
	return policy ? policy->attr_names.count : 0;
}

int
tp_policy_attr_at(const tp_policy *policy, size_t i, const char **name,
		  const char **value)
{
	if (policy == NULL || i >= policy->attr_names.count)
		return TP_ENOTFOUND;
	if (name)
		*name = policy->attr_names.strings[i];
	if (value)
		*value = policy->attr_values.strings[i];
	return TP_OK;
}

const char *
tp_policy_attr(const tp_policy *policy, const char *name)
{
	if (policy == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < policy->attr_names.count; i++)
		if (strcasecmp(policy->attr_names.strings[i], name) == 0)
			return policy->attr_values.strings[i];
	return NULL;
}

size_t
tp_policy_warning_count(const tp_policy *policy)
{
	return policy ? policy->warnings.count : 0;
}

const char *
tp_policy_warning_at(const tp_policy *policy, size_t i)
{
	if (policy == NULL || i >= policy->warnings.count)
		return NULL;
	return policy->warnings.strings[i];
}
