/*
 * The settings Postfix's SMTP client uses for a next hop, from main.cf and
 * the entry, as smtp_tls_policy.c and tls_misc.c make them: level, SNI,
 * protocols, the cipher string handed to OpenSSL (checked against what a
 * real Postfix 3.7 logs as "TLS cipher list" at smtp_tls_loglevel 2, which
 * tests/e2e/agree.sh also compares), OpenSSL security level, addressing,
 * lookups, pins from smtp_tls_fingerprint_cert_match, and settings Postfix
 * cannot use, CA files it cannot load among them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config_internal.h"
#include "ossl.h"
#include "tlspolicy.h"

#define FP16 "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"
#define FP32 "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF"

static tp_client_settings *
settings(const char *main_cf, const char *key, const char *value)
{
	tp_config *config = NULL;
	tp_client_settings *s = NULL;
	tp_diag diag = TP_DIAG_INIT;

	if (main_cf != NULL)
		assert_int_equal(tp__config_parse(&config, "/etc/postfix", main_cf,
						  strlen(main_cf), &diag), 0);
	if (tp_client_settings_new(&s, config, key, value, &diag) != 0)
		fail_msg("settings for %s / %s: %s", key ? key : "-", value ? value : "-",
			 diag.message);
	tp_config_free(config);
	return s;
}

static const struct cipher_case {
	const char *main_cf;
	const char *value;
	const char *cipherlist;
	int security_level;
} cipher_cases[] = {
	/* Postfix 3.7, defaults: medium, aNULL excluded where peers are
	 * authenticated, eNULL at encrypt, nothing at may. */
	{ NULL, "fingerprint match=" FP32, "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aNULL", 1 },
	{ NULL, "encrypt", "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!eNULL", 0 },
	{ NULL, "may", "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH", 0 },
	{ NULL, "secure", "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aNULL", 1 },
	/* main.cf's grade and exclusions: general ones first, then mandatory. */
	{ "smtp_tls_mandatory_ciphers = high\nsmtp_tls_mandatory_exclude_ciphers = aRSA\n"
	  "smtp_tls_exclude_ciphers = MD5, RC4\n",
	  "fingerprint match=" FP32, "aNULL:-aNULL:HIGH:@STRENGTH:!MD5:!RC4:!aRSA:!aNULL", 1 },
	/* ... the mandatory ones only at mandatory levels. */
	{ "smtp_tls_mandatory_exclude_ciphers = aRSA\nsmtp_tls_exclude_ciphers = MD5\n",
	  "may", "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!MD5", 0 },
	/* An entry's exclude= replaces main.cf's; the level's own stays. */
	{ "smtp_tls_mandatory_exclude_ciphers = aRSA\n",
	  "fingerprint match=" FP32 " exclude=aECDSA", "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aECDSA:!aNULL", 1 },
	{ NULL, "fingerprint match=" FP32 " exclude=aECDSA:kRSA",
	  "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aECDSA:!kRSA:!aNULL", 1 },
	/* ciphers= is a grade, any case; the lists are main.cf's. */
	{ "tls_high_cipherlist = ECDHE+AESGCM\n", "fingerprint match=" FP32 " ciphers=HIGH",
	  "ECDHE+AESGCM:!aNULL", 1 },
};

static void
test_client__the_cipher_string_postfix_hands_to_openssl(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cipher_cases) / sizeof(cipher_cases[0]); i++) {
		const struct cipher_case *c = &cipher_cases[i];
		tp_client_settings *s = settings(c->main_cf, "example.com", c->value);
		const tp_client_info *in = tp_client_settings_info(s);

		if (strcmp(in->cipherlist, c->cipherlist) != 0 ||
		    in->security_level != c->security_level)
			fail_msg("case %zu (%s): got \"%s\" level %d, want \"%s\" level %d", i,
				 c->value, in->cipherlist, in->security_level, c->cipherlist,
				 c->security_level);
		assert_null(in->tls_error);
		tp_client_settings_free(s);
	}
}

static const struct proto_case {
	const char *list;
	int rc;
	unsigned int excluded;
	int min, max;
} proto_cases[] = {
	{ ">=TLSv1", 0, 0, TLS1_VERSION, 0 },
	{ ">=TLSv1.2", 0, 0, TLS1_2_VERSION, 0 },
	{ "<=TLSv1.2", 0, 0, 0, TLS1_2_VERSION },
	{ ">=TLSv1.2, <=TLSv1.2", 0, 0, TLS1_2_VERSION, TLS1_2_VERSION },
	{ ">=0303", 0, 0, 0x303, 0 },
	{ "!SSLv2, !SSLv3", 0, TP_PROTO_SSLv2 | TP_PROTO_SSLv3, 0, 0 },
	{ "!SSLv2:!SSLv3:!TLSv1", 0, TP_PROTO_SSLv2 | TP_PROTO_SSLv3 | TP_PROTO_TLSv1, 0, 0 },
	/* An include list excludes every protocol it does not name. */
	{ "TLSv1.2:TLSv1.3", 0, TP_PROTO_SSLv2 | TP_PROTO_SSLv3 | TP_PROTO_TLSv1 | TP_PROTO_TLSv1_1, 0, 0 },
	{ "TLSv1.3", 0, 0x1f, 0, 0 },
	{ "", 0, 0, 0, 0 },
	/* Names are case-sensitive, as in Postfix. */
	{ "tlsv1.2", TP_EINVALID, 0, 0, 0 },
	{ "TLSv9", TP_EINVALID, 0, 0, 0 },
	{ ">=TLSv9", TP_EINVALID, 0, 0, 0 },
	{ "!bogus", TP_EINVALID, 0, 0, 0 },
};

static void
test_client__protocol_lists_as_tls_proto_mask_lims_reads_them(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(proto_cases) / sizeof(proto_cases[0]); i++) {
		const struct proto_case *c = &proto_cases[i];
		unsigned int excluded = 99;
		int min = -1, max = -1, rc = tp_client_protocols_parse(c->list, &excluded, &min, &max);

		if (rc != c->rc)
			fail_msg("\"%s\": got rc %d, want %d", c->list, rc, c->rc);
		if (rc == 0 && (excluded != c->excluded || min != c->min || max != c->max))
			fail_msg("\"%s\": got excluded 0x%x min 0x%x max 0x%x, want 0x%x 0x%x 0x%x",
				 c->list, excluded, (unsigned)min, (unsigned)max, c->excluded,
				 (unsigned)c->min, (unsigned)c->max);
	}
}

static void
test_client__protocols_come_from_the_entry_else_the_level_s_parameter(void **state)
{
	const char *cf = "smtp_tls_protocols = !SSLv2\nsmtp_tls_mandatory_protocols = >=TLSv1.2\n";
	tp_client_settings *s;

	(void)state;
	s = settings(cf, "example.com", "fingerprint match=" FP32);
	assert_string_equal(tp_client_settings_info(s)->protocols, ">=TLSv1.2");
	assert_int_equal(tp_client_settings_info(s)->min_version, TLS1_2_VERSION);
	tp_client_settings_free(s);
	s = settings(cf, "example.com", "may");
	assert_string_equal(tp_client_settings_info(s)->protocols, "!SSLv2");
	assert_int_equal(tp_client_settings_info(s)->protocols_excluded, TP_PROTO_SSLv2);
	tp_client_settings_free(s);
	s = settings(cf, "example.com", "fingerprint match=" FP32 " protocols=<=TLSv1.2");
	assert_string_equal(tp_client_settings_info(s)->protocols, "<=TLSv1.2");
	assert_int_equal(tp_client_settings_info(s)->max_version, TLS1_2_VERSION);
	assert_null(tp_client_settings_info(s)->tls_error);
	tp_client_settings_free(s);
	/* A list Postfix cannot parse aborts every TLS session. */
	s = settings(cf, "example.com", "fingerprint match=" FP32 " protocols=TLSv9");
	assert_string_equal(tp_client_settings_info(s)->tls_error, "Invalid TLS protocol list \"TLSv9\"");
	tp_client_settings_free(s);
}

static void
test_client__no_sni_unless_the_entry_or_main_cf_names_one(void **state)
{
	tp_client_settings *s;

	(void)state;
	s = settings(NULL, "example.com", "fingerprint match=" FP32);
	assert_null(tp_client_settings_sni(s, "mx.example.com"));
	tp_client_settings_free(s);
	s = settings("smtp_tls_servername = relay.example.org\n", "example.com",
		     "fingerprint match=" FP32);
	assert_string_equal(tp_client_settings_sni(s, "mx.example.com"), "relay.example.org");
	tp_client_settings_free(s);
	/* The entry wins; hostname is the server's name, nexthop the domain. */
	s = settings("smtp_tls_servername = relay.example.org\n", "example.com",
		     "fingerprint match=" FP32 " servername=hostname");
	assert_string_equal(tp_client_settings_sni(s, "mx.example.com"), "mx.example.com");
	tp_client_settings_free(s);
	s = settings("smtp_tls_servername = nexthop\n", "[relay.example.net]:587",
		     "fingerprint match=" FP32);
	assert_string_equal(tp_client_settings_sni(s, "relay.example.net"), "relay.example.net");
	tp_client_settings_free(s);
	/* Postfix sends what it has, an address included, for "hostname". */
	s = settings(NULL, "[192.0.2.1]:25", "fingerprint match=" FP32 " servername=hostname");
	assert_string_equal(tp_client_settings_sni(s, "192.0.2.1"), "192.0.2.1");
	tp_client_settings_free(s);
	/* None below level may. */
	s = settings("smtp_tls_servername = relay.example.org\n", "example.com", "none");
	assert_null(tp_client_settings_sni(s, "mx.example.com"));
	tp_client_settings_free(s);
	/* An invalid main.cf name makes every policy invalid, as in Postfix. */
	s = settings("smtp_tls_servername = not a name\n", "example.com", "fingerprint match=" FP32);
	assert_false(tp_client_settings_info(s)->valid);
	assert_non_null(strstr(tp_client_settings_info(s)->problem, "specifies an invalid hostname"));
	tp_client_settings_free(s);
}

static void
test_client__addressing_and_lookups_from_main_cf(void **state)
{
	const tp_client_info *in;
	tp_client_settings *s;

	(void)state;
	s = settings(NULL, "example.com", "encrypt");
	in = tp_client_settings_info(s);
	assert_int_equal(in->families, TP_FAMILY_IPV4 | TP_FAMILY_IPV6);
	assert_int_equal(in->address_preference, 0);
	assert_int_equal(in->mx_address_limit, 5);
	assert_int_equal(in->mx_session_limit, 2);
	assert_int_equal(in->dns, TP_DNS_ENABLED);
	assert_true(in->host_lookup_dns);
	assert_false(in->host_lookup_native);
	assert_true(in->balance_inet_protocols);
	assert_true(in->randomize_addresses);
	assert_false(in->wrappermode);
	tp_client_settings_free(s);
	s = settings("inet_protocols = ipv4\nsmtp_address_preference = ipv6\n"
		     "smtp_mx_address_limit = 0\nsmtp_mx_session_limit = 7\n"
		     "smtp_host_lookup = native, dns\nsmtp_dns_support_level = dnssec\n"
		     "smtp_balance_inet_protocols = no\nsmtp_randomize_addresses = no\n"
		     "smtp_tls_wrappermode = yes\n", "example.com", "encrypt");
	in = tp_client_settings_info(s);
	assert_int_equal(in->families, TP_FAMILY_IPV4);
	assert_int_equal(in->address_preference, 6);
	assert_int_equal(in->mx_address_limit, 0);
	assert_int_equal(in->mx_session_limit, 7);
	assert_int_equal(in->dns, TP_DNS_DNSSEC);
	assert_true(in->host_lookup_dns && in->host_lookup_native);
	assert_false(in->balance_inet_protocols);
	assert_false(in->randomize_addresses);
	assert_true(in->wrappermode);
	tp_client_settings_free(s);
	/* DNS disabled (either way): native lookups only, no MX. */
	s = settings("smtp_dns_support_level = disabled\n", "example.com", "encrypt");
	in = tp_client_settings_info(s);
	assert_int_equal(in->dns, TP_DNS_DISABLED);
	assert_true(in->host_lookup_native && !in->host_lookup_dns);
	tp_client_settings_free(s);
	s = settings("disable_dns_lookups = yes\n", "example.com", "encrypt");
	assert_int_equal(tp_client_settings_info(s)->dns, TP_DNS_DISABLED);
	tp_client_settings_free(s);
}

static void
test_client__pins_from_smtp_tls_fingerprint_cert_match_when_the_entry_has_none(void **state)
{
	const char *cf = "compatibility_level = 3.6\n"
			 "smtp_tls_fingerprint_cert_match = " FP32 ", " FP32 "\n";
	const tp_client_info *in;
	tp_client_settings *s;

	(void)state;
	s = settings(cf, "example.com", "fingerprint");
	in = tp_client_settings_info(s);
	assert_true(in->valid);
	assert_true(in->pins_from_main_cf);
	assert_int_equal(in->pin_count, 2);
	assert_string_equal(in->pins[0], FP32);
	tp_client_settings_free(s);
	/* No entry, and main.cf's level is fingerprint. */
	s = settings("smtp_tls_security_level = fingerprint\nsmtp_tls_fingerprint_cert_match = " FP16 "\n",
		     "example.com", NULL);
	in = tp_client_settings_info(s);
	assert_int_equal(in->level, TP_LEVEL_FINGERPRINT);
	assert_int_equal(in->pin_count, 1);
	tp_client_settings_free(s);
	/* Without either, Postfix rejects the entry. */
	s = settings(NULL, "example.com", "fingerprint");
	assert_false(tp_client_settings_info(s)->valid);
	assert_non_null(strstr(tp_client_settings_info(s)->problem, "no fingerprints"));
	tp_client_settings_free(s);
	/* An entry invalid for another reason stays invalid. */
	s = settings(cf, "example.com", "fingerprint bogus=1");
	assert_false(tp_client_settings_info(s)->valid);
	tp_client_settings_free(s);
}

static void
test_client__settings_postfix_cannot_use_are_named(void **state)
{
	tp_client_settings *s;

	(void)state;
	s = settings("smtp_tls_fingerprint_digest = nosuchdigest\n", "example.com",
		     "fingerprint match=" FP32);
	assert_non_null(strstr(tp_client_settings_info(s)->tls_error, "nosuchdigest"));
	tp_client_settings_free(s);
	s = settings(NULL, "example.com", "fingerprint match=" FP32 " ciphers=superstrong");
	assert_string_equal(tp_client_settings_info(s)->tls_error, "invalid cipher grade: \"superstrong\"");
	tp_client_settings_free(s);
	s = settings(NULL, "example.com", "fingerprint match=" FP32 " exclude=!aRSA");
	assert_non_null(strstr(tp_client_settings_info(s)->tls_error, "invalid unary"));
	tp_client_settings_free(s);
	s = settings("smtp_tls_cert_file = /nonexistent/client.pem\n", "example.com",
		     "fingerprint match=" FP32);
	assert_non_null(strstr(tp_client_settings_info(s)->tls_error,
			       "cannot load client certificate /nonexistent/client.pem"));
	tp_client_settings_free(s);
}

static void
test_client__helo_name_is_smtp_helo_name_else_myhostname(void **state)
{
	tp_client_settings *s;

	(void)state;
	s = settings("myhostname = mx.sender.example\n", "example.com", "encrypt");
	assert_string_equal(tp_client_settings_info(s)->helo_name, "mx.sender.example");
	tp_client_settings_free(s);
	s = settings("myhostname = mx.sender.example\nsmtp_helo_name = out.sender.example\n",
		     "example.com", "encrypt");
	assert_string_equal(tp_client_settings_info(s)->helo_name, "out.sender.example");
	tp_client_settings_free(s);
	/* Postfix's default myhostname: always with a dot, never from DNS. */
	s = settings(NULL, "example.com", "encrypt");
	assert_non_null(strchr(tp_client_settings_info(s)->helo_name, '.'));
	tp_client_settings_free(s);
}

static void
test_client__a_key_that_is_no_next_hop_is_an_error(void **state)
{
	tp_client_settings *s = NULL;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	assert_int_equal(tp_client_settings_new(&s, NULL, "[x", "encrypt", &diag), TP_ESYNTAX);
	assert_null(s);
	assert_non_null(strstr(diag.message, "missing"));
	/* No key at all is fine: settings for any server ("probe HOST"). */
	assert_int_equal(tp_client_settings_new(&s, NULL, NULL, "encrypt", &diag), 0);
	tp_client_settings_free(s);
	tp_client_settings_free(NULL);
}

/* write_self_signed - a CA file of one certificate at path */
static void
write_self_signed(const char *path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	X509_NAME *name;
	FILE *fp;

	assert_non_null(key);
	assert_non_null(cert);
	assert_int_equal(X509_set_version(cert, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Test CA", -1, -1, 0);
	X509_set_issuer_name(cert, name);
	X509_set_pubkey(cert, key);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(fp, cert), 1);
	assert_int_equal(fclose(fp), 0);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* The tls_error for this main.cf (NULL: none), through reuse. */
#define CF(...) (snprintf(cf, sizeof(cf), __VA_ARGS__), cf)
static const char *
ca_verdict(char *buf, size_t size, tp__client_reuse *reuse, const char *value,
	   const char *main_cf)
{
	tp_config *config = NULL;
	tp_client_settings *s = NULL;
	tp_diag diag = TP_DIAG_INIT;
	const char *why;

	assert_int_equal(tp__config_parse(&config, "/etc/postfix", main_cf, strlen(main_cf), &diag), 0);
	assert_int_equal(tp__client_settings_new_reusing(&s, config, "example.com", value, reuse, &diag), 0);
	why = tp_client_settings_info(s)->tls_error;
	if (why != NULL)
		snprintf(buf, size, "%s", why);
	tp_client_settings_free(s);
	tp_config_free(config);
	return why ? buf : NULL;
}

static void
test_client__ca_files_postfix_cannot_load_leave_it_without_tls(void **state)
{
	char dir[] = "/tmp/tp-client-ca.XXXXXX", path[256], want[512], buf[512], cf[1024];
	tp__client_reuse reuse = { NULL, NULL, NULL, NULL };
	const char *fp = "fingerprint match=" FP32;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	write_self_signed(path);
	snprintf(path, sizeof(path), "%s/garbage.pem", dir);
	write_text(path, "not a certificate\n");
	snprintf(path, sizeof(path), "%s/empty.pem", dir);
	write_text(path, "");

	/* Loads, or none set: no error. */
	assert_null(ca_verdict(buf, sizeof(buf), &reuse, fp, "compatibility_level = 3.6\n"));
	assert_null(ca_verdict(buf, sizeof(buf), &reuse, fp, CF("smtp_tls_CAfile = %s/ca.pem\n", dir)));
	/* OpenSSL only notes a directory; certificates are looked up in it
	 * when a chain is verified (tests/e2e/agree.sh: Postfix delivers). */
	assert_null(ca_verdict(buf, sizeof(buf), &reuse, fp,
			       CF("smtp_tls_CApath = %s/no-such-dir\n", dir)));
	/* Missing, not PEM, or no certificate in it: Postfix's words. */
	snprintf(want, sizeof(want),
		 "cannot load Certification Authority data, CAfile=\"%s/missing.pem\": Postfix disables TLS support", dir);
	assert_string_equal(ca_verdict(buf, sizeof(buf), &reuse, fp,
				       CF("smtp_tls_CAfile = %s/missing.pem\n", dir)), want);
	snprintf(want, sizeof(want),
		 "cannot load Certification Authority data, CAfile=\"%s/garbage.pem\", CApath=\"%s\": Postfix disables TLS support",
		 dir, dir);
	assert_string_equal(ca_verdict(buf, sizeof(buf), &reuse, fp,
				       CF("smtp_tls_CAfile = %s/garbage.pem\nsmtp_tls_CApath = %s\n", dir, dir)), want);
	assert_non_null(ca_verdict(buf, sizeof(buf), &reuse, fp, CF("smtp_tls_CAfile = %s/empty.pem\n", dir)));
	/* The same reuse gives each name its own verdict, in any order. */
	assert_null(ca_verdict(buf, sizeof(buf), &reuse, fp, CF("smtp_tls_CAfile = %s/ca.pem\n", dir)));
	assert_non_null(ca_verdict(buf, sizeof(buf), &reuse, "encrypt", CF("smtp_tls_CAfile = %s/empty.pem\n", dir)));
	/* At level none Postfix sets up no TLS for the next hop. */
	assert_null(ca_verdict(buf, sizeof(buf), &reuse, "none", CF("smtp_tls_CAfile = %s/missing.pem\n", dir)));
	tp__client_reuse_dispose(&reuse);

	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/garbage.pem", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/empty.pem", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client__the_cipher_string_postfix_hands_to_openssl),
		cmocka_unit_test(test_client__protocol_lists_as_tls_proto_mask_lims_reads_them),
		cmocka_unit_test(test_client__protocols_come_from_the_entry_else_the_level_s_parameter),
		cmocka_unit_test(test_client__no_sni_unless_the_entry_or_main_cf_names_one),
		cmocka_unit_test(test_client__addressing_and_lookups_from_main_cf),
		cmocka_unit_test(test_client__pins_from_smtp_tls_fingerprint_cert_match_when_the_entry_has_none),
		cmocka_unit_test(test_client__settings_postfix_cannot_use_are_named),
		cmocka_unit_test(test_client__helo_name_is_smtp_helo_name_else_myhostname),
		cmocka_unit_test(test_client__a_key_that_is_no_next_hop_is_an_error),
		cmocka_unit_test(test_client__ca_files_postfix_cannot_load_leave_it_without_tls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
