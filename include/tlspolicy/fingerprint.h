/*
 * NAME
 *	tlspolicy/fingerprint.h - certificate and public-key fingerprints
 * SUMMARY
 *	Computes fingerprints the way Postfix does (tls_fprint.c): the
 *	digest of the DER certificate, or of the DER SubjectPublicKeyInfo,
 *	printed as upper-case hex pairs joined by ':'. Parses pins.
 * DESCRIPTION
 *	tp_fingerprint_der() computes the fingerprint of kind of the DER
 *	certificate der[0..len-1] with digest (any name OpenSSL knows, e.g.
 *	"md5", "sha256") into out. TP_EUNSUPPORTED for an unknown digest,
 *	TP_ESYNTAX for a certificate that does not parse.
 *
 *	tp_pin_normalize() accepts hex with or without ':' separators, in
 *	any case, and writes the canonical form; TP_ESYNTAX with a message
 *	(odd number of digits, non-hex character, misplaced ':', empty)
 *	otherwise, or TP_ELIMIT for well-formed hex longer than any digest
 *	(64 bytes).
 *
 *	tp_pin_digest() names the digest a pin's length suggests: 16 bytes
 *	md5, 20 sha1, 28 sha224, 32 sha256, 48 sha384, 64 sha512; NULL for
 *	any other length. The pin may be in any form tp_pin_normalize takes.
 *
 *	tp_digest_check() returns 0 when OpenSSL knows digest by that name,
 *	TP_EUNSUPPORTED otherwise. tp_digest_size() gives its output size in
 *	bytes, 0 when unknown.
 *
 *	tp_pin_kind_name()/tp_pin_kind_parse(): "cert" and "pkey".
 */
#ifndef TLSPOLICY_FINGERPRINT_H
#define TLSPOLICY_FINGERPRINT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest digest OpenSSL has (64 bytes) as "XX:" pairs, plus NUL. */
#define TP_FINGERPRINT_MAX 192

typedef enum tp_pin_kind {
	TP_PIN_CERT = 0,
	TP_PIN_PKEY = 1
} tp_pin_kind;

TP_EXTERN(int) tp_fingerprint_der(char out[TP_FINGERPRINT_MAX],
				  const unsigned char *der, size_t len,
				  const char *digest, tp_pin_kind kind,
				  tp_diag *diag);
TP_EXTERN(int) tp_pin_normalize(char out[TP_FINGERPRINT_MAX],
				const char *pin, tp_diag *diag);
TP_EXTERN(const char *) tp_pin_digest(const char *pin);
TP_EXTERN(int) tp_digest_check(const char *digest);
TP_EXTERN(size_t) tp_digest_size(const char *digest);
TP_EXTERN(const char *) tp_pin_kind_name(tp_pin_kind kind);
TP_EXTERN(int) tp_pin_kind_parse(tp_pin_kind *out, const char *name);

#ifdef __cplusplus
}
#endif

#endif
