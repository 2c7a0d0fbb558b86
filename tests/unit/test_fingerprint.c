/*
 * Fingerprints and pins. The oracle for fingerprints is the openssl
 * command: certificates are made at test time (RSA and EC) and every
 * digest we compute is compared with what `openssl x509 -fingerprint`
 * and the public-key pipeline postconf(5) gives (openssl x509
 * -pubkey | openssl pkey -pubin -outform DER | openssl dgst) print for them.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/x509.h>

#include "tlspolicy.h"

/* Runs a shell command and returns its first output line, trimmed. */
static char *
run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
run(const char *fmt, ...)
{
	char cmd[2048], line[1024];
	va_list ap;
	FILE *fp;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if ((fp = popen(cmd, "r")) == NULL)
		fail_msg("cannot run: %s", cmd);
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	if (pclose(fp) != 0)
		fail_msg("command failed: %s", cmd);
	line[strcspn(line, "\r\n")] = '\0';
	return strdup(line);
}

/* The hex after the last '=' (and blanks), upper-cased. */
static char *
hex_after_equals(char *s)
{
	char *p = strrchr(s, '=');

	if (p == NULL)
		fail_msg("no '=' in openssl output \"%s\"", s);
	p++;
	while (*p == ' ')
		p++;
	for (char *q = p; *q; q++)
		*q = (char)toupper((unsigned char)*q);
	return p;
}

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *data = malloc(65536);

	assert_non_null(fp);
	assert_non_null(data);
	*len = fread(data, 1, 65536, fp);
	fclose(fp);
	return data;
}

struct keytype {
	const char *name;
	const char *newkey;
};

static const struct keytype keytypes[] = {
	{ "RSA", "-newkey rsa:2048" },
	{ "EC", "-newkey ec -pkeyopt ec_paramgen_curve:P-256" },
};

static const char *const digests[] = { "md5", "sha1", "sha256" };

static void
test_fingerprint__cert_and_pkey_equal_openssl_for_rsa_and_ec(void **state)
{
	char dir[] = "/tmp/tp_fprint_XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (size_t k = 0; k < sizeof(keytypes) / sizeof(keytypes[0]); k++) {
		char pem[256], der_path[256], fp[TP_FINGERPRINT_MAX];
		unsigned char *der;
		size_t der_len;
		tp_diag d = TP_DIAG_INIT;

		snprintf(pem, sizeof(pem), "%s/%s.pem", dir, keytypes[k].name);
		snprintf(der_path, sizeof(der_path), "%s/%s.der", dir, keytypes[k].name);
		free(run("openssl req -x509 %s -nodes -keyout %s/%s.key -out %s "
			 "-days 2 -subj /CN=fprint.test 2>/dev/null && echo ok",
			 keytypes[k].newkey, dir, keytypes[k].name, pem));
		free(run("openssl x509 -in %s -outform DER -out %s && echo ok",
			 pem, der_path));
		der = read_file(der_path, &der_len);
		for (size_t i = 0; i < sizeof(digests) / sizeof(digests[0]); i++) {
			char *want_line, *want;

			want_line = run("openssl x509 -in %s -noout -fingerprint -%s",
					pem, digests[i]);
			want = hex_after_equals(want_line);
			assert_int_equal(tp_fingerprint_der(fp, der, der_len, digests[i],
							    TP_PIN_CERT, &d), 0);
			if (strcmp(fp, want) != 0)
				fail_msg("%s cert %s: got %s, want %s", keytypes[k].name,
					 digests[i], fp, want);
			free(want_line);

			want_line = run("openssl x509 -in %s -noout -pubkey | openssl pkey "
					"-pubin -outform DER | openssl dgst -%s -c",
					pem, digests[i]);
			want = hex_after_equals(want_line);
			assert_int_equal(tp_fingerprint_der(fp, der, der_len, digests[i],
							    TP_PIN_PKEY, &d), 0);
			if (strcmp(fp, want) != 0)
				fail_msg("%s pkey %s: got %s, want %s", keytypes[k].name,
					 digests[i], fp, want);
			free(want_line);
		}

		/*
		 * The classic mistake: X509_pubkey_digest() hashes only the
		 * key bits. Postfix hashes the whole SPKI; so must we.
		 */
		{
			const unsigned char *p = der;
			X509 *x = d2i_X509(NULL, &p, (long)der_len);
			unsigned char md[EVP_MAX_MD_SIZE];
			unsigned int mdlen = 0;
			char wrong[TP_FINGERPRINT_MAX];

			assert_non_null(x);
			assert_int_equal(X509_pubkey_digest(x, EVP_sha256(), md, &mdlen), 1);
			for (unsigned int j = 0; j < mdlen; j++)
				snprintf(wrong + j * 3, 4, "%02X:", md[j]);
			wrong[mdlen * 3 - 1] = '\0';
			assert_int_equal(tp_fingerprint_der(fp, der, der_len, "sha256",
							    TP_PIN_PKEY, NULL), 0);
			if (strcmp(fp, wrong) == 0)
				fail_msg("%s pkey fingerprint is X509_pubkey_digest's", keytypes[k].name);
			X509_free(x);
		}
		free(der);
	}
	free(run("rm -rf %s && echo ok", dir));
}

static void
test_fingerprint__bad_input_is_refused(void **state)
{
	char fp[TP_FINGERPRINT_MAX];
	tp_diag d = TP_DIAG_INIT;
	const unsigned char junk[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };

	(void)state;
	assert_int_equal(tp_fingerprint_der(fp, junk, sizeof(junk), "sha256",
					    TP_PIN_CERT, &d), TP_ESYNTAX);
	assert_string_equal(d.message, "malformed DER certificate");
	assert_int_equal(tp_fingerprint_der(fp, junk, 0, "sha256", TP_PIN_CERT, &d),
			 TP_ESYNTAX);
	assert_int_equal(tp_fingerprint_der(fp, junk, sizeof(junk), "nosuchdigest",
					    TP_PIN_CERT, &d), TP_EUNSUPPORTED);
	assert_string_equal(d.message, "digest algorithm \"nosuchdigest\" not found");
}

struct pin_case {
	const char *in;
	const char *want;	/* NULL: rejected */
	const char *why;	/* substring of the message when rejected */
};

static const struct pin_case pin_cases[] = {
	{ "AA:BB:CC", "AA:BB:CC", NULL },
	{ "aabbcc", "AA:BB:CC", NULL },
	{ "aA:Bb:cC", "AA:BB:CC", NULL },
	/* Postfix skips each ':' between pairs on its own: mixing is fine. */
	{ "AABB:CC", "AA:BB:CC", NULL },
	{ "0f", "0F", NULL },
	{ "", NULL, "empty" },
	{ "A", NULL, "odd number of hex digits" },
	{ "AAB", NULL, "odd number of hex digits" },
	{ "A:BB", NULL, "odd number of hex digits" },
	{ "AA:B", NULL, "misplaced ':'" },
	{ "AA::BB", NULL, "misplaced ':' at offset 3" },
	{ ":AA", NULL, "misplaced ':' at offset 0" },
	{ "AA:", NULL, "misplaced ':' at offset 2" },
	{ "AA:BB:", NULL, "misplaced ':'" },
	{ "ZZ:00", NULL, "non-hex character 'Z' at offset 0" },
	{ "AG", NULL, "non-hex character 'G' at offset 1" },
	{ "AA BB", NULL, "non-hex character ' '" },
	{ "AA\tBB", NULL, "non-hex byte 0x09" },
	{ "AA-BB", NULL, "non-hex character '-'" },
};

static void
test_fingerprint__pins_normalise_like_postfix_hex_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pin_cases) / sizeof(pin_cases[0]); i++) {
		const struct pin_case *c = &pin_cases[i];
		char out[TP_FINGERPRINT_MAX];
		tp_diag d = TP_DIAG_INIT;
		int rc = tp_pin_normalize(out, c->in, &d);

		if (c->want) {
			if (rc != 0 || strcmp(out, c->want) != 0)
				fail_msg("pin \"%s\": got %d \"%s\" (%s), want \"%s\"",
					 c->in, rc, out, d.message, c->want);
		} else if (rc != TP_ESYNTAX || strstr(d.message, c->why) == NULL) {
			fail_msg("pin \"%s\": got %d \"%s\", want TP_ESYNTAX with \"%s\"",
				 c->in, rc, d.message, c->why);
		} else if (strncmp(d.message, "malformed fingerprint \"", 23) != 0) {
			fail_msg("pin \"%s\": message \"%s\" does not start like Postfix's",
				 c->in, d.message);
		}
	}
}

static void
test_fingerprint__pin_length_limits(void **state)
{
	char in[400], out[TP_FINGERPRINT_MAX];
	tp_diag d = TP_DIAG_INIT;

	(void)state;
	/* 64 bytes with colons: the longest pin, exactly fills the buffer. */
	for (int i = 0; i < 64; i++)
		memcpy(in + i * 3, "ab:", 3);
	in[64 * 3 - 1] = '\0';
	assert_int_equal(tp_pin_normalize(out, in, &d), 0);
	assert_int_equal(strlen(out), TP_FINGERPRINT_MAX - 1);
	assert_string_equal(tp_pin_digest(in), "sha512");
	/* 65 bytes: longer than any digest. */
	for (int i = 0; i < 65; i++)
		memcpy(in + i * 2, "ab", 2);
	in[130] = '\0';
	assert_int_equal(tp_pin_normalize(out, in, &d), TP_ELIMIT);
	assert_non_null(strstr(d.message, "longer than 64 bytes"));
	assert_non_null(strstr(d.message, "...\""));
	assert_null(tp_pin_digest(in));
}

static void
test_fingerprint__digest_is_inferred_from_length(void **state)
{
	static const struct {
		size_t bytes;
		const char *want;
	} cases[] = {
		{ 16, "md5" }, { 20, "sha1" }, { 28, "sha224" }, { 32, "sha256" },
		{ 48, "sha384" }, { 64, "sha512" }, { 1, NULL }, { 24, NULL },
		{ 33, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char colon[TP_FINGERPRINT_MAX], plain[TP_FINGERPRINT_MAX];
		const char *got;

		for (size_t j = 0; j < cases[i].bytes; j++) {
			memcpy(colon + j * 3, "0a:", 3);
			memcpy(plain + j * 2, "0A", 2);
		}
		colon[cases[i].bytes * 3 - 1] = '\0';
		plain[cases[i].bytes * 2] = '\0';
		got = tp_pin_digest(colon);
		if ((got == NULL) != (cases[i].want == NULL)
		    || (got && strcmp(got, cases[i].want) != 0))
			fail_msg("%zu bytes: got %s, want %s", cases[i].bytes,
				 got ? got : "NULL", cases[i].want ? cases[i].want : "NULL");
		assert_ptr_equal(tp_pin_digest(plain), got);
		/* And each inferred digest really has that size. */
		if (got)
			assert_int_equal(tp_digest_size(got), cases[i].bytes);
	}
	assert_null(tp_pin_digest("not hex"));
	assert_null(tp_pin_digest(NULL));
}

static void
test_fingerprint__digest_names_openssl_knows(void **state)
{
	static const char *const known[] = {
		"md5", "MD5", "sha1", "sha256", "SHA256", "sha512", "sha3-256",
		"SHA2-256", "SHA-256",
	};
	static const char *const unknown[] = { "", "sha257", "md5 ", "nosuch" };

	(void)state;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (tp_digest_check(known[i]) != 0)
			fail_msg("digest \"%s\": got %d, want 0", known[i],
				 tp_digest_check(known[i]));
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		if (tp_digest_check(unknown[i]) != TP_EUNSUPPORTED)
			fail_msg("digest \"%s\": got %d, want TP_EUNSUPPORTED",
				 unknown[i], tp_digest_check(unknown[i]));
	assert_int_equal(tp_digest_check(NULL), TP_EUNSUPPORTED);
	assert_int_equal(tp_digest_size("md5"), 16);
	assert_int_equal(tp_digest_size("SHA2-256"), 32);
	assert_int_equal(tp_digest_size("nosuch"), 0);
}

static void
test_fingerprint__pin_kinds_round_trip(void **state)
{
	tp_pin_kind k = TP_PIN_PKEY;

	(void)state;
	assert_string_equal(tp_pin_kind_name(TP_PIN_CERT), "cert");
	assert_string_equal(tp_pin_kind_name(TP_PIN_PKEY), "pkey");
	assert_int_equal(tp_pin_kind_parse(&k, "cert"), 0);
	assert_int_equal(k, TP_PIN_CERT);
	assert_int_equal(tp_pin_kind_parse(&k, "PKEY"), 0);
	assert_int_equal(k, TP_PIN_PKEY);
	assert_int_equal(tp_pin_kind_parse(&k, "key"), TP_EINVALID);
	assert_int_equal(tp_pin_kind_parse(&k, NULL), TP_EINVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint__cert_and_pkey_equal_openssl_for_rsa_and_ec),
		cmocka_unit_test(test_fingerprint__bad_input_is_refused),
		cmocka_unit_test(test_fingerprint__pins_normalise_like_postfix_hex_decode),
		cmocka_unit_test(test_fingerprint__pin_length_limits),
		cmocka_unit_test(test_fingerprint__digest_is_inferred_from_length),
		cmocka_unit_test(test_fingerprint__digest_names_openssl_knows),
		cmocka_unit_test(test_fingerprint__pin_kinds_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
