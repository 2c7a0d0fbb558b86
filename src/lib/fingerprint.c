/*
 * NAME
 *	fingerprint - certificate and public-key fingerprints, pins
 * SUMMARY
 *	Computes fingerprints exactly as Postfix's tls_fprint.c does and
 *	parses pins exactly as Postfix's hex_decode_opt() does.
 * DESCRIPTION
 *	tp_fingerprint_der() parses der[0..len-1] as one X.509 certificate
 *	(trailing bytes are an error) and digests, like Postfix:
 *	TP_PIN_CERT: the i2d_X509() encoding of the certificate;
 *	TP_PIN_PKEY: the i2d_X509_PUBKEY() encoding of its
 *	SubjectPublicKeyInfo (the whole DER SPKI, algorithm included; not
 *	X509_pubkey_digest(), which hashes only the key bits).
 *	The result is upper-case hex pairs joined by ':' in out.
 *
 *	tp_pin_normalize() follows hex_decode_opt(HEX_DECODE_FLAG_ALLOW_COLON)
 *	of Postfix 3.6+: pairs of hex digits in any case, with at most one
 *	':' between two pairs, each ':' optional ("AABB:CC" is fine); no
 *	leading or trailing ':', no "::". The pin must decode to 1 to 64
 *	bytes (EVP_MAX_MD_SIZE: no digest is longer, so a longer pin can
 *	never match).
 *
 *	tp_pin_digest() maps the decoded length to the SHA-2/SHA-1/MD5
 *	digest of that size. Other digests of the same size (e.g. sha3-256)
 *	are indistinguishable by length; the standard name is returned.
 *
 *	tp_digest_check() and tp_digest_size() accept what
 *	EVP_get_digestbyname() knows (what Postfix uses) and, failing that,
 *	what EVP_MD_fetch() can fetch from the loaded providers; a name
 *	whose digest cannot be initialised (e.g. md5 in FIPS mode) is
 *	rejected, as Postfix's tls_digest_byname() does.
 * DIAGNOSTICS
 *	TP_EUNSUPPORTED: unknown digest. TP_ESYNTAX: certificate that does
 *	not parse, malformed pin (the message quotes at most 100 bytes of
 *	it and names the reason). TP_ENOMEM.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "diag.h"
#include "ossl.h"
#include "tlspolicy/fingerprint.h"

#define PIN_MAX_BYTES EVP_MAX_MD_SIZE

static const char hexdigits[] = "0123456789ABCDEF";

/*
 * Resolve a digest name to a usable EVP_MD. *fetched is set when the
 * caller must EVP_MD_free() the result (EVP_MD_fetch() path).
 */
static const EVP_MD *
digest_lookup(const char *name, EVP_MD **fetched)
{
	const EVP_MD *md;
	EVP_MD_CTX *ctx;
	int ok;

	*fetched = NULL;
	if (name == NULL || *name == '\0')
		return NULL;
	md = EVP_get_digestbyname(name);
	if (md == NULL) {
		*fetched = EVP_MD_fetch(NULL, name, NULL);
		md = *fetched;
	}
	if (md == NULL)
		return NULL;
	/*
	 * With OpenSSL 3 providers, a name can resolve to a digest that
	 * cannot actually be used (Postfix's tls_digest_byname() notes the
	 * same): only a digest that initialises counts.
	 */
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) == 1
	     && EVP_MD_get_size(md) > 0 && EVP_MD_get_size(md) <= EVP_MAX_MD_SIZE;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		EVP_MD_free(*fetched);
		*fetched = NULL;
		return NULL;
	}
	return md;
}

int
tp_digest_check(const char *digest)
{
	EVP_MD *fetched;
	const EVP_MD *md = digest_lookup(digest, &fetched);

	EVP_MD_free(fetched);
	return md ? TP_OK : TP_EUNSUPPORTED;
}

size_t
tp_digest_size(const char *digest)
{
	EVP_MD *fetched;
	const EVP_MD *md = digest_lookup(digest, &fetched);
	size_t size = md ? (size_t)EVP_MD_get_size(md) : 0;

	EVP_MD_free(fetched);
	return size;
}

static void
encode_hex(char out[TP_FINGERPRINT_MAX], const unsigned char *bin, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		out[i * 3] = hexdigits[bin[i] >> 4];
		out[i * 3 + 1] = hexdigits[bin[i] & 0x0f];
		out[i * 3 + 2] = ':';
	}
	out[len ? len * 3 - 1 : 0] = '\0';
}

/* Digests cert's DER or its SubjectPublicKeyInfo's with md, into out. */
static int
fingerprint_x509(char out[TP_FINGERPRINT_MAX], X509 *cert, const EVP_MD *md,
		 const char *digest, tp_pin_kind kind, tp_diag *diag)
{
	unsigned char *enc = NULL;
	unsigned char md_buf[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int enc_len, ok, status = TP_OK;

	if (kind == TP_PIN_CERT)
		enc_len = i2d_X509(cert, &enc);
	else
		enc_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &enc);
	if (enc_len <= 0)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "cannot encode the certificate's %s",
				    kind == TP_PIN_CERT ? "DER" : "public key");
	ok = EVP_Digest(enc, (size_t)enc_len, md_buf, &md_len, md, NULL);
	if (!ok || md_len == 0 || md_len > EVP_MAX_MD_SIZE)
		status = tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0,
				      "error computing %s message digest", digest);
	else
		encode_hex(out, md_buf, md_len);
	OPENSSL_free(enc);
	return status;
}

/* Resolves digest into *md (free *fetched) and checks kind. */
static int
fingerprint_args(const char *digest, tp_pin_kind kind, const EVP_MD **md,
		 EVP_MD **fetched, tp_diag *diag)
{
	if ((*md = digest_lookup(digest, fetched)) == NULL)
		return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0,
				    "digest algorithm \"%s\" not found", digest ? digest : "");
	if (kind != TP_PIN_CERT && kind != TP_PIN_PKEY) {
		EVP_MD_free(*fetched);
		*fetched = NULL;
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "unknown fingerprint kind %d", (int)kind);
	}
	return TP_OK;
}

int
tp__fingerprint_x509(char out[TP_FINGERPRINT_MAX], X509 *cert, const char *digest,
		     tp_pin_kind kind, tp_diag *diag)
{
	EVP_MD *fetched;
	const EVP_MD *md;
	int status;

	out[0] = '\0';
	if ((status = fingerprint_args(digest, kind, &md, &fetched, diag)) != TP_OK)
		return status;
	status = fingerprint_x509(out, cert, md, digest, kind, diag);
	EVP_MD_free(fetched);
	return status;
}

int
tp_fingerprint_der(char out[TP_FINGERPRINT_MAX], const unsigned char *der,
		   size_t len, const char *digest, tp_pin_kind kind,
		   tp_diag *diag)
{
	const unsigned char *p = der;
	EVP_MD *fetched;
	const EVP_MD *md;
	X509 *cert;
	int status;

	out[0] = '\0';
	if ((status = fingerprint_args(digest, kind, &md, &fetched, diag)) != TP_OK)
		return status;
	if (der == NULL || len == 0 || len > LONG_MAX
	    || (cert = d2i_X509(NULL, &p, (long)len)) == NULL) {
		EVP_MD_free(fetched);
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "malformed DER certificate");
	}
	if ((size_t)(p - der) != len)
		status = tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				      "malformed DER certificate: %zu trailing bytes",
				      len - (size_t)(p - der));
	else
		status = fingerprint_x509(out, cert, md, digest, kind, diag);
	X509_free(cert);
	EVP_MD_free(fetched);
	return status;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Decode a pin into bin (at most PIN_MAX_BYTES); 0 or TP_ESYNTAX. Mirrors
 * hex_decode_opt(): a ':' is skipped only when it directly follows a
 * pair and at least one more pair follows, so every other colon ends up
 * where a hex digit is expected and is rejected there.
 */
static int
pin_decode(unsigned char *bin, size_t *bin_len, const char *pin,
	   size_t len, tp_diag *diag)
{
	size_t i = 0, n = 0;

#define PIN_FAIL(fmt, ...) \
	tp__diag_set(diag, TP_ESYNTAX, NULL, 0, \
		     "malformed fingerprint \"%.100s%s\": " fmt, pin, \
		     len > 100 ? "..." : "", __VA_ARGS__)

	if (len == 0)
		return PIN_FAIL("%s", "empty");
	while (i < len) {
		int hi, lo;

		if (len - i < 2) {
			if (pin[i] == ':')
				return PIN_FAIL("misplaced ':' at offset %zu", i);
			return PIN_FAIL("%s", "odd number of hex digits");
		}
		hi = hexval((unsigned char)pin[i]);
		lo = hexval((unsigned char)pin[i + 1]);
		if (hi < 0 || lo < 0) {
			size_t at = hi < 0 ? i : i + 1;

			/* One digit then ':' is a group of odd length. */
			if (hi >= 0 && pin[at] == ':')
				return PIN_FAIL("%s", "odd number of hex digits");
			if (pin[at] == ':')
				return PIN_FAIL("misplaced ':' at offset %zu", at);
			if ((unsigned char)pin[at] < 0x20 || (unsigned char)pin[at] >= 0x7f)
				return PIN_FAIL("non-hex byte 0x%02X at offset %zu",
						(unsigned)(unsigned char)pin[at], at);
			return PIN_FAIL("non-hex character '%c' at offset %zu",
					pin[at], at);
		}
		if (n == PIN_MAX_BYTES)
			/* Well-formed but over the cap: callers tell it apart. */
			return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
					    "malformed fingerprint \"%.100s%s\": longer than %d bytes, the largest digest",
					    pin, len > 100 ? "..." : "", PIN_MAX_BYTES);
		bin[n++] = (unsigned char)(hi << 4 | lo);
		i += 2;
		if (len - i > 2 && pin[i] == ':')
			i++;
	}
#undef PIN_FAIL
	*bin_len = n;
	return TP_OK;
}

int
tp_pin_normalize(char out[TP_FINGERPRINT_MAX], const char *pin, tp_diag *diag)
{
	unsigned char bin[PIN_MAX_BYTES];
	size_t n = 0;
	int status;

	out[0] = '\0';
	if (pin == NULL)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "malformed fingerprint \"\": empty");
	status = pin_decode(bin, &n, pin, strlen(pin), diag);
	if (status != TP_OK)
		return status;
	encode_hex(out, bin, n);
	return TP_OK;
}

const char *
tp_pin_digest(const char *pin)
{
	unsigned char bin[PIN_MAX_BYTES];
	size_t n = 0;

	if (pin == NULL || pin_decode(bin, &n, pin, strlen(pin), NULL) != TP_OK)
		return NULL;
	switch (n) {
	case 16:
		return "md5";
	case 20:
		return "sha1";
	case 28:
		return "sha224";
	case 32:
		return "sha256";
	case 48:
		return "sha384";
	case 64:
		return "sha512";
	default:
		return NULL;
	}
}

const char *
tp_pin_kind_name(tp_pin_kind kind)
{
	switch (kind) {
	case TP_PIN_CERT:
		return "cert";
	case TP_PIN_PKEY:
		return "pkey";
	}
	return "unknown";
}

int
tp_pin_kind_parse(tp_pin_kind *out, const char *name)
{
	if (name != NULL && strcasecmp(name, "cert") == 0)
		*out = TP_PIN_CERT;
	else if (name != NULL && strcasecmp(name, "pkey") == 0)
		*out = TP_PIN_PKEY;
	else
		return TP_EINVALID;
	return TP_OK;
}
