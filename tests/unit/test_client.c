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
			       "error opening chain file: /nonexistent/client.pem: No such file or directory"));
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

/* make_cert - a certificate for key, self-signed or issued by issuer */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *cert = X509_new();
	X509_NAME *name;

	assert_non_null(cert);
	assert_int_equal(X509_set_version(cert, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 2);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(cert, key);
	assert_true(X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return cert;
}

/* write_self_signed - a CA file of one certificate at path */
static void
write_self_signed(const char *path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert;
	FILE *fp;

	assert_non_null(key);
	cert = make_cert(key, "Test CA", NULL, NULL);
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
	tp__client_reuse reuse = { NULL, NULL, NULL, NULL, NULL, NULL };
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

/* Keys and certificates to lay out in files, as Postfix's docs and users do. */
struct pems {
	EVP_PKEY *rsa, *ec, *ca;
	X509 *rsa_cert, *ec_cert, *ca_cert;
};

/*
 * write_layout - dir/name holding, in order, the objects spec names:
 * R/E/A the RSA, EC, CA key; r/e/a their certificates (r and e issued
 * by a), x a PEM object of another type.
 */
static void
write_layout(const struct pems *p, const char *dir, const char *name, const char *spec)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	for (const char *c = spec; *c; c++) {
		switch (*c) {
		case 'R': assert_int_equal(PEM_write_PrivateKey(fp, p->rsa, NULL, NULL, 0, NULL, NULL), 1); break;
		case 'E': assert_int_equal(PEM_write_PrivateKey(fp, p->ec, NULL, NULL, 0, NULL, NULL), 1); break;
		case 'A': assert_int_equal(PEM_write_PrivateKey(fp, p->ca, NULL, NULL, 0, NULL, NULL), 1); break;
		case 'r': assert_int_equal(PEM_write_X509(fp, p->rsa_cert), 1); break;
		case 'e': assert_int_equal(PEM_write_X509(fp, p->ec_cert), 1); break;
		case 'a': assert_int_equal(PEM_write_X509(fp, p->ca_cert), 1); break;
		case 'x': fputs("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n", fp); break;
		default: fail_msg("layout %s", spec);
		}
	}
	assert_int_equal(fclose(fp), 0);
}

/* expand - tmpl with each @ replaced by dir */
static void
expand(char *out, size_t size, const char *tmpl, const char *dir)
{
	size_t n = 0, d = strlen(dir);

	for (const char *c = tmpl; *c; c++) {
		if (*c == '@') {
			assert_true(n + d < size);
			memcpy(out + n, dir, d);
			n += d;
		} else {
			assert_true(n + 1 < size);
			out[n++] = *c;
		}
	}
	out[n] = '\0';
}

static void
test_client__client_certificates_load_as_postfix_loads_them(void **state)
{
	static const struct layout_case {
		const char *main_cf;	/* @: the directory */
		const char *error;	/* NULL: loads; else what tls_error says first */
	} cases[] = {
		/* smtp_tls_chain_files: each key first, then its certificate and issuers. */
		{ "smtp_tls_chain_files = @/Rr, @/Eea\n", NULL },
		{ "smtp_tls_chain_files = @/RrEea\n", NULL },
		{ "smtp_tls_chain_files = @/Rr\t@/Eea\n", NULL },
		{ "smtp_tls_chain_files = @/R @/r\n", NULL },	/* one group over two files */
		{ "smtp_tls_chain_files = @/RxrxEe\n", NULL },	/* other PEM types skipped */
		{ "smtp_tls_chain_files = @/rR\n", "error loading chain from @/rR: key not first" },
		{ "smtp_tls_chain_files = @/R\n", "No certs for key at index 1 in @/R" },
		{ "smtp_tls_chain_files = @/RrEEe\n", "error loading certificate chain: key at index 3 in @/RrEEe not followed by a certificate" },
		{ "smtp_tls_chain_files = @/Re\n", "key at index 1 in @/Re does not match next certificate" },
		{ "smtp_tls_chain_files = @/ReEe\n", "error loading certificate chain: key at index 1 in @/ReEe does not match the certificate" },
		/* A second key of an algorithm OpenSSL holds one of. */
		{ "smtp_tls_chain_files = @/Rr, @/Rr\n", "key at index 1 in @/Rr does not match next certificate" },
		{ "smtp_tls_chain_files = @/empty\n", "No PEM data in @/empty" },
		{ "smtp_tls_chain_files = @/missing\n", "error opening chain file: @/missing: No such file or directory" },
		/* Relative names: from queue_directory, where Postfix's daemons work. */
		{ "queue_directory = @\nsmtp_tls_chain_files = Rr\n", NULL },
		{ "queue_directory = @\nsmtp_tls_chain_files = missing\n",
		  "error opening chain file: @/missing: No such file or directory" },
		{ "queue_directory = @\nsmtp_tls_cert_file = Rr\n", NULL },
		/* The chain files replace the other settings. */
		{ "smtp_tls_chain_files = @/Rr\nsmtp_tls_cert_file = @/missing\n", NULL },
		/* One file for certificate and key: its one key anywhere in it. */
		{ "smtp_tls_cert_file = @/rR\n", NULL },
		{ "smtp_tls_eccert_file = @/eaE\n", NULL },
		{ "smtp_tls_cert_file = @/r\n", "No private key found in @/r" },
		/* Certificate and key files apart: OpenSSL's loaders, Postfix's words. */
		{ "smtp_tls_cert_file = @/r\nsmtp_tls_key_file = @/R\n"
		  "smtp_tls_eccert_file = @/ea\nsmtp_tls_eckey_file = @/E\n", NULL },
		{ "smtp_tls_cert_file = @/missing\nsmtp_tls_key_file = @/R\n",
		  "cannot get RSA certificate from file \"@/missing\"" },
		{ "smtp_tls_cert_file = @/r\nsmtp_tls_key_file = @/r\n", "No private key found in @/r" },
		{ "smtp_tls_cert_file = @/r\nsmtp_tls_key_file = @/E\n",
		  "RSA private key in @/E does not match public key in @/r" },
		{ "smtp_tls_eccert_file = @/e\nsmtp_tls_eckey_file = @/empty\n",
		  "cannot get ECDSA private key from file \"@/empty\"" },
	};
	static const char *const layouts[] = {
		"Rr", "Eea", "RrEea", "R", "r", "RxrxEe", "rR", "RrEEe", "Re", "ReEe",
		"eaE", "ea", "E", "e", "empty",
	};
	char dir[] = "/tmp/tp-client-certs.XXXXXX", buf[1024], cf[2048], want[1024], path[512];
	tp__client_reuse reuse = { NULL, NULL, NULL, NULL, NULL, NULL };
	const char *fp = "fingerprint match=" FP32, *got;
	struct pems p;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_non_null(p.rsa = EVP_RSA_gen(2048));
	assert_non_null(p.ec = EVP_EC_gen("P-256"));
	assert_non_null(p.ca = EVP_EC_gen("P-256"));
	p.ca_cert = make_cert(p.ca, "Test CA", NULL, NULL);
	p.rsa_cert = make_cert(p.rsa, "client.test", p.ca_cert, p.ca);
	p.ec_cert = make_cert(p.ec, "client.test", p.ca_cert, p.ca);
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		write_layout(&p, dir, layouts[i], strcmp(layouts[i], "empty") ? layouts[i] : "");

	/* One reuse for all: each set of files gets its own verdict. */
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			expand(cf, sizeof(cf), cases[i].main_cf, dir);
			got = ca_verdict(buf, sizeof(buf), &reuse, fp, cf);
			if (cases[i].error == NULL) {
				if (got != NULL)
					fail_msg("%s: %s", cf, got);
				continue;
			}
			expand(want, sizeof(want), cases[i].error, dir);
			if (got == NULL || strncmp(got, want, strlen(want)) != 0 ||
			    strstr(got, ": Postfix disables TLS support") == NULL)
				fail_msg("%s: want \"%s\", got \"%s\"", cf, want, got ? got : "(loads)");
		}
	/* Below the levels that use TLS Postfix sets up none. */
	snprintf(cf, sizeof(cf), "smtp_tls_chain_files = %s/rR\n", dir);
	assert_null(ca_verdict(buf, sizeof(buf), &reuse, "none", cf));
	tp__client_reuse_dispose(&reuse);

	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, layouts[i]);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
	EVP_PKEY_free(p.rsa);
	EVP_PKEY_free(p.ec);
	EVP_PKEY_free(p.ca);
	X509_free(p.rsa_cert);
	X509_free(p.ec_cert);
	X509_free(p.ca_cert);
}

static void
test_client__source_address_as_smtp_connect_addr_picks_it(void **state)
{
	static const struct {
		const char *main_cf;
		const char *v4, *v6;	/* the source addresses; NULL: Postfix stops */
		int enforce;
	} cases[] = {
		{ "", "", "", 0 },
		{ "smtp_bind_address = 192.0.2.1\n", "192.0.2.1", "", 0 },
		{ "smtp_bind_address = [192.0.2.1]\nsmtp_bind_address_enforce = yes\n", "192.0.2.1", "", 1 },
		{ "smtp_bind_address6 = [2001:db8::1]\n", "", "2001:db8::1", 0 },
		{ "smtp_bind_address6 = 2001:db8::1\n", "", "2001:db8::1", 0 },
		/* Postfix stops: malformed, or not an address. */
		{ "smtp_bind_address = [192.0.2.1\n", NULL, "", 0 },
		{ "smtp_bind_address = mail.example.com\n", NULL, "", 0 },
		{ "smtp_bind_address = []\n", NULL, "", 0 },
		{ "smtp_bind_address6 = [2001:db8::1\n", "", NULL, 0 },
		/* smtp_bind_address wins; else inet_interfaces' only address of the family. */
		{ "smtp_bind_address = 192.0.2.1\ninet_interfaces = 192.0.2.7\n", "192.0.2.1", "", 0 },
		{ "inet_interfaces = 192.0.2.7\n", "192.0.2.7", "", 0 },
		{ "inet_interfaces = 192.0.2.7, [2001:db8::7]\n", "192.0.2.7", "2001:db8::7", 0 },
		{ "inet_interfaces = 192.0.2.7, 192.0.2.8\n", "", "", 0 },
		{ "inet_interfaces = 127.0.0.1\n", "", "", 0 },
		{ "inet_interfaces = loopback-only\n", "", "", 0 },
		{ "inet_interfaces = all\n", "", "", 0 },
		{ "inet_interfaces = [::1]\n", "", "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_client_settings *s = settings(cases[i].main_cf, "example.com", "fingerprint match=" FP32);
		const tp_client_info *in = tp_client_settings_info(s);

		if (cases[i].v4 == NULL || cases[i].v6 == NULL) {
			/* No source address, and what Postfix says as it stops. */
			if (in->tls_error == NULL || in->bind_error == NULL ||
			    strstr(in->tls_error, in->bind_error) == NULL ||
			    strstr(in->bind_error, "smtp_bind_address") == NULL ||
			    in->bind_address == NULL || in->bind_address6 == NULL ||
			    *in->bind_address != '\0' || *in->bind_address6 != '\0')
				fail_msg("%s: tls_error %s", cases[i].main_cf, in->tls_error ? in->tls_error : "(none)");
		} else if (strcmp(in->bind_address, cases[i].v4) != 0 ||
			   strcmp(in->bind_address6, cases[i].v6) != 0 ||
			   in->bind_enforce != cases[i].enforce || in->tls_error != NULL)
			fail_msg("%s: \"%s\" \"%s\" %d %s", cases[i].main_cf, in->bind_address,
				 in->bind_address6, in->bind_enforce, in->tls_error ? in->tls_error : "");
		tp_client_settings_free(s);
	}
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
		cmocka_unit_test(test_client__client_certificates_load_as_postfix_loads_them),
		cmocka_unit_test(test_client__source_address_as_smtp_connect_addr_picks_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
