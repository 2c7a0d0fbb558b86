/*
 * Policy values, checked against what Postfix's smtp_tls_policy.c does
 * (messages are Postfix's own wording, so an admin can grep the log).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tlspolicy.h"

/* md5 (16 bytes) and sha256 (32 bytes) pins, in several spellings. */
#define MD5_C "0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9"
#define MD5_L "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define SHA_C "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:" \
	      "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"
#define SHA_L "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"

struct value_case {
	const char *version;	/* NULL: latest */
	const char *value;
	int want_rc;
	const char *want_msg;	/* exact message when rejected */
	tp_level want_level;
	const char *want_pins;	/* pins joined by '|', NULL: none */
	size_t want_warnings;
};

static const struct value_case cases[] = {
	/* Accepted forms. */
	{ NULL, "none", 0, NULL, TP_LEVEL_NONE, NULL, 0 },
	{ NULL, "MAY", 0, NULL, TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "Encrypt protocols=!SSLv2:!SSLv3 ciphers=high", 0, NULL,
	  TP_LEVEL_ENCRYPT, NULL, 0 },
	/* A comma splits attributes: lists inside values use ':'. */
	{ NULL, "encrypt protocols=!SSLv2,!SSLv3", TP_EINVALID,
	  "malformed attribute/value pair \"!SSLv3\": missing '=' after attribute name",
	  TP_LEVEL_ENCRYPT, NULL, 0 },
	{ NULL, "dane", 0, NULL, TP_LEVEL_DANE, NULL, 0 },
	{ NULL, "dane-only", 0, NULL, TP_LEVEL_DANE_ONLY, NULL, 0 },
	{ NULL, "verify match=hostname:nexthop tafile=/etc/ta.pem", 0, NULL,
	  TP_LEVEL_VERIFY, NULL, 0 },
	{ NULL, "secure match=.example.com tafile=a tafile=b", 0, NULL,
	  TP_LEVEL_SECURE, NULL, 0 },
	{ NULL, "fingerprint match=" SHA_C, 0, NULL, TP_LEVEL_FINGERPRINT,
	  SHA_C, 0 },
	{ NULL, "  fingerprint,\tmatch=" SHA_L "\r\n", 0, NULL,
	  TP_LEVEL_FINGERPRINT, SHA_C, 0 },
	/* Pins across several match= and '|', any case, colons optional. */
	{ NULL, "FINGERPRINT match=" MD5_L "|" SHA_C " MATCH=" MD5_C "||" SHA_L,
	  0, NULL, TP_LEVEL_FINGERPRINT, MD5_C "|" SHA_C "|" MD5_C "|" SHA_C, 0 },
	{ NULL, "fingerprint servername=mx.example.com match=" MD5_C
	  " exclude=aNULL connection_reuse=YES", 0, NULL, TP_LEVEL_FINGERPRINT,
	  MD5_C, 0 },
	/* A malformed pin among good ones: Postfix warns and goes on. */
	{ NULL, "fingerprint match=ZZ:00|" SHA_C, 0, NULL, TP_LEVEL_FINGERPRINT,
	  SHA_C, 1 },
	/* Below "may" Postfix ignores everything else, with a warning. */
	{ NULL, "none match=x bogus", 0, NULL, TP_LEVEL_NONE, NULL, 2 },

	/* Rejections, one per reason, in Postfix's words. */
	{ NULL, "", TP_EINVALID, "invalid empty policy", TP_LEVEL_UNKNOWN, NULL, 0 },
	{ NULL, " ,\t", TP_EINVALID, "invalid empty policy", TP_LEVEL_UNKNOWN, NULL, 0 },
	{ NULL, "fingerprnt match=" SHA_C, TP_EINVALID,
	  "invalid security level \"fingerprnt\"", TP_LEVEL_UNKNOWN, NULL, 0 },
	{ NULL, "halfdane", TP_EINVALID, "invalid security level \"halfdane\"",
	  TP_LEVEL_UNKNOWN, NULL, 0 },
	{ NULL, "MUST", TP_EINVALID, "invalid security level \"MUST\"",
	  TP_LEVEL_UNKNOWN, NULL, 0 },
	{ NULL, "may bogus=1", TP_EINVALID, "invalid attribute name: \"bogus\"",
	  TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may ciphers", TP_EINVALID,
	  "malformed attribute/value pair \"ciphers\": missing '=' after attribute name",
	  TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may =high", TP_EINVALID,
	  "malformed attribute/value pair \"=high\": missing attribute name",
	  TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may ciphers=high Ciphers=medium", TP_EINVALID,
	  "attribute \"Ciphers\" is specified multiple times", TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may ciphers=", TP_EINVALID, "attribute \"ciphers\" has empty value",
	  TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may protocols=x protocols=y", TP_EINVALID,
	  "attribute \"protocols\" is specified multiple times", TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may exclude=x exclude=y", TP_EINVALID,
	  "attribute \"exclude\" is specified multiple times", TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may servername=a.example servername=b.example", TP_EINVALID,
	  "attribute \"servername\" is specified multiple times", TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may servername=-bad.example", TP_EINVALID,
	  "\"servername=-bad.example\" specifies an invalid hostname",
	  TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may servername=192.0.2.1", TP_EINVALID,
	  "\"servername=192.0.2.1\" specifies an invalid hostname",
	  TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "may match=" SHA_C, TP_EINVALID,
	  "attribute \"match\" invalid at security level \"may\"", TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "dane match=" SHA_C, TP_EINVALID,
	  "attribute \"match\" invalid at security level \"dane\"", TP_LEVEL_DANE, NULL, 0 },
	{ NULL, "fingerprint match=", TP_EINVALID,
	  "attribute \"match\" has empty value", TP_LEVEL_FINGERPRINT, NULL, 0 },
	{ NULL, "fingerprint tafile=/x", TP_EINVALID,
	  "attribute \"tafile\" invalid at security level \"fingerprint\"",
	  TP_LEVEL_FINGERPRINT, NULL, 0 },
	{ NULL, "verify tafile=", TP_EINVALID, "attribute \"tafile\" has empty value",
	  TP_LEVEL_VERIFY, NULL, 0 },
	{ NULL, "may connection_reuse=maybe", TP_EINVALID,
	  "attribute \"connection_reuse\" has bad value: \"maybe\"", TP_LEVEL_MAY, NULL, 0 },
	{ NULL, "fingerprint", TP_EINVALID,
	  "configured at fingerprint security level, but with no fingerprints "
	  "to match (unless smtp_tls_fingerprint_cert_match is set in main.cf)",
	  TP_LEVEL_FINGERPRINT, NULL, 0 },
	{ NULL, "fingerprint match=|", TP_EINVALID,
	  "configured at fingerprint security level, but with no fingerprints to match",
	  TP_LEVEL_FINGERPRINT, NULL, 0 },
	{ NULL, "fingerprint match=ZZ:00", TP_EINVALID,
	  "malformed fingerprint \"ZZ:00\": non-hex character 'Z' at offset 0; "
	  "configured at fingerprint security level, but with no fingerprints to match",
	  TP_LEVEL_FINGERPRINT, NULL, 1 },
	{ NULL, "fingerprint match=AA::BB", TP_EINVALID,
	  "malformed fingerprint \"AA::BB\": misplaced ':' at offset 3; "
	  "configured at fingerprint security level, but with no fingerprints to match",
	  TP_LEVEL_FINGERPRINT, NULL, 1 },

	/* Version gating: the installed 3.7.11 does not know later names. */
	{ "3.7.11", "fingerprint match=" SHA_C " enable_rpk=yes", TP_EINVALID,
	  "invalid attribute name: \"enable_rpk\" (new in Postfix 3.9; this is 3.7.11)",
	  TP_LEVEL_FINGERPRINT, SHA_C, 0 },
	{ "3.9.0", "fingerprint match=" SHA_C " enable_rpk=yes", 0, NULL,
	  TP_LEVEL_FINGERPRINT, SHA_C, 0 },
	{ "3.9.0", "may enable_rpk=sometimes", TP_EINVALID,
	  "attribute \"enable_rpk\" has bad value: \"sometimes\"", TP_LEVEL_MAY, NULL, 0 },
	{ "3.3.2", "may connection_reuse=yes", TP_EINVALID,
	  "invalid attribute name: \"connection_reuse\" (new in Postfix 3.4; this is 3.3.2)",
	  TP_LEVEL_MAY, NULL, 0 },
	{ "3.7.11", "may policy_type=sts", TP_EINVALID,
	  "invalid attribute name: \"policy_type\" (new in Postfix 3.10; this is 3.7.11)",
	  TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may policy_type=sts policy_ttl=86400 policy_domain=example.com "
	  "policy_string=a policy_string=b mx_host_pattern=*.example.com "
	  "policy_failure=sts-webpki-invalid", 0, NULL, TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may policy_ttl=86400", TP_EINVALID,
	  "built-in policy has unexpected attribute policy_ttl, policy_domain, "
	  "policy_string, mx_host_pattern or policy_failure", TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may policy_type=sts policy_ttl=1d", TP_EINVALID,
	  "attribute \"policy_ttl\" has a malformed value: \"1d\"", TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may policy_type=dane", TP_EINVALID,
	  "attribute \"policy_type\" has an unexpected value: \"dane\"",
	  TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may policy_type=sts policy_type=sts", TP_EINVALID,
	  "attribute \"policy_type\" is specified multiple times", TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may policy_type=sts policy_failure=oops", TP_EINVALID,
	  "attribute \"policy_failure\" has an unexpected value: \"oops\"",
	  TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may policy_type=sts policy_domain=-x", TP_EINVALID,
	  "attribute \"policy_domain\" has a malformed value: \"-x\"",
	  TP_LEVEL_MAY, NULL, 0 },
	/* 3.10 reads { name = value } groups; 3.7 splits them apart. */
	{ "3.10.1", "may { ciphers = high }", 0, NULL, TP_LEVEL_MAY, NULL, 0 },
	{ "3.10.1", "may { ciphers = high", TP_EINVALID,
	  "malformed attribute/value pair \"{ ciphers = high\": missing '}' in "
	  "\"{ ciphers = high\"", TP_LEVEL_MAY, NULL, 0 },
	{ "3.7.11", "may { ciphers = high }", TP_EINVALID,
	  "malformed attribute/value pair \"{\": missing '=' after attribute name",
	  TP_LEVEL_MAY, NULL, 0 },
	/* Before 3.6 pins were compared as text: accepted, but warned. */
	{ "3.5.0", "fingerprint match=" SHA_L, 0, NULL, TP_LEVEL_FINGERPRINT, SHA_C, 1 },
	{ "3.5.0", "fingerprint match=" SHA_C, 0, NULL, TP_LEVEL_FINGERPRINT, SHA_C, 0 },
};

static void
join_pins(char *buf, size_t size, const tp_policy *p)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < tp_policy_pin_count(p); i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%s",
					 i ? "|" : "", tp_policy_pin_at(p, i));
}

static void
test_value__table_of_accepted_and_rejected_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct value_case *c = &cases[i];
		tp_policy *p = NULL;
		tp_diag d = TP_DIAG_INIT;
		char pins[4096];
		int rc = tp_policy_parse_for(&p, c->value, strlen(c->value),
					     c->version, &d);

		if (rc != c->want_rc)
			fail_msg("\"%s\" (%s): got rc %d (%s), want %d", c->value,
				 c->version ? c->version : "latest", rc, d.message,
				 c->want_rc);
		if (c->want_msg && strcmp(d.message, c->want_msg) != 0)
			fail_msg("\"%s\": got message\n  %s\nwant\n  %s", c->value,
				 d.message, c->want_msg);
		assert_non_null(p);
		if (tp_policy_level(p) != c->want_level)
			fail_msg("\"%s\": got level %s, want %s", c->value,
				 tp_level_name(tp_policy_level(p)),
				 tp_level_name(c->want_level));
		join_pins(pins, sizeof(pins), p);
		if (strcmp(pins, c->want_pins ? c->want_pins : "") != 0)
			fail_msg("\"%s\": got pins %s, want %s", c->value, pins,
				 c->want_pins ? c->want_pins : "(none)");
		if (tp_policy_warning_count(p) != c->want_warnings)
			fail_msg("\"%s\": got %zu warnings (first: %s), want %zu",
				 c->value, tp_policy_warning_count(p),
				 tp_policy_warning_at(p, 0) ? tp_policy_warning_at(p, 0) : "-",
				 c->want_warnings);
		tp_policy_free(p);
	}
}

static void
test_value__attributes_keep_their_order_and_spelling(void **state)
{
	const char *v = "verify Ciphers=high match=hostname:nexthop "
			"MATCH=dot-nexthop servername=mx.example.com";
	static const char *const want[][2] = {
		{ "Ciphers", "high" }, { "match", "hostname:nexthop" },
		{ "MATCH", "dot-nexthop" }, { "servername", "mx.example.com" },
	};
	tp_policy *p;
	const char *name, *value;

	(void)state;
	assert_int_equal(tp_policy_parse(&p, v, strlen(v), NULL), 0);
	assert_int_equal(tp_policy_attr_count(p), 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(tp_policy_attr_at(p, i, &name, &value), 0);
		if (strcmp(name, want[i][0]) != 0 || strcmp(value, want[i][1]) != 0)
			fail_msg("attr %zu: got %s=%s, want %s=%s", i, name, value,
				 want[i][0], want[i][1]);
	}
	assert_int_equal(tp_policy_attr_at(p, 4, &name, &value), TP_ENOTFOUND);
	assert_string_equal(tp_policy_attr(p, "CIPHERS"), "high");
	assert_string_equal(tp_policy_attr(p, "match"), "hostname:nexthop");
	assert_null(tp_policy_attr(p, "exclude"));
	assert_int_equal(tp_policy_pin_count(p), 0);
	tp_policy_free(p);
	tp_policy_free(NULL);
}

static void
test_value__postfix_sees_only_bytes_before_a_nul(void **state)
{
	static const char v[] = "fingerprint match=" SHA_C "\0 bogus=1";
	tp_policy *p;
	tp_diag d = TP_DIAG_INIT;

	(void)state;
	assert_int_equal(tp_policy_parse(&p, v, sizeof(v) - 1, &d), 0);
	assert_int_equal(tp_policy_pin_count(p), 1);
	assert_int_equal(tp_policy_warning_count(p), 1);
	assert_non_null(strstr(tp_policy_warning_at(p, 0), "NUL"));
	tp_policy_free(p);
	/* And a value that is only a NUL is empty. */
	assert_int_equal(tp_policy_parse(&p, "\0may", 4, &d), TP_EINVALID);
	assert_string_equal(d.message, "invalid empty policy");
	tp_policy_free(p);
	/* The len given bounds the read: no NUL needed. */
	assert_int_equal(tp_policy_parse(&p, "may bogus=1", 3, &d), 0);
	assert_int_equal(tp_policy_level(p), TP_LEVEL_MAY);
	tp_policy_free(p);
}

static void
test_value__bad_version_is_a_usage_error(void **state)
{
	tp_policy *p = (tp_policy *)&p;
	tp_diag d = TP_DIAG_INIT;

	(void)state;
	assert_int_equal(tp_policy_parse_for(&p, "may", 3, "three", &d), TP_EUSAGE);
	assert_null(p);
	assert_string_equal(d.message, "malformed Postfix version \"three\"");
	/* Snapshot versions as mail_version prints them are fine. */
	assert_int_equal(tp_policy_parse_for(&p, "may", 3, "3.10-20250117", &d), 0);
	tp_policy_free(p);
}

static void
test_value__levels_round_trip(void **state)
{
	tp_level l;

	(void)state;
	for (int i = TP_LEVEL_NONE; i < TP_LEVEL_LAST; i++) {
		assert_int_equal(tp_level_parse(&l, tp_level_name((tp_level)i)), 0);
		assert_int_equal(l, i);
	}
	assert_int_equal(tp_level_parse(&l, "Dane-Only"), 0);
	assert_int_equal(l, TP_LEVEL_DANE_ONLY);
	assert_int_equal(tp_level_parse(&l, "halfdane"), TP_EINVALID);
	assert_int_equal(l, TP_LEVEL_UNKNOWN);
	assert_string_equal(tp_level_name(TP_LEVEL_UNKNOWN), "unknown");
	assert_string_equal(tp_level_name(TP_LEVEL_LAST), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_value__table_of_accepted_and_rejected_values),
		cmocka_unit_test(test_value__attributes_keep_their_order_and_spelling),
		cmocka_unit_test(test_value__postfix_sees_only_bytes_before_a_nul),
		cmocka_unit_test(test_value__bad_version_is_a_usage_error),
		cmocka_unit_test(test_value__levels_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
