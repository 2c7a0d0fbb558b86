/*
 * NAME
 *	ossl - OpenSSL helpers shared inside the library (internal)
 * DESCRIPTION
 *	tp__ca_store_default() adds to store the lookups Postfix's
 *	SSL_CTX_set_default_verify_paths() gives a context without CA
 *	settings: OpenSSL's default CA file and hashed directory (both
 *	honour SSL_CERT_FILE and SSL_CERT_DIR). Not
 *	X509_STORE_set_default_paths() nor SSL_CTX_set_default_verify_paths():
 *	OpenSSL 3 adds to them a "store" lookup of the same directory, which
 *	reads the whole directory for every certificate looked up (a check
 *	of 1000 entries read /etc/ssl/certs 2000 times) and finds no anchor
 *	the hashed-directory lookup does not. A default file or directory
 *	that cannot be read leaves the store without it, as in OpenSSL.
 *
 *	tp__fingerprint_x509() is tp_fingerprint_der() (tlspolicy/fingerprint.h)
 *	of a certificate already parsed. Parsing is most of the cost: OpenSSL 3
 *	decodes the public key through its provider decoders, so a probe or
 *	a trust evaluation that holds the X509 digests that, not its DER.
 *
 *	tp__client_settings_new_reusing() is tp_client_settings_new()
 *	(tlspolicy/client.h) with an OpenSSL context to reuse: NULL, or
 *	*scratch NULL at first; the context used is left in *scratch for the
 *	next call, and the caller frees it (SSL_CTX_free). Making a context
 *	is most of the settings' cost (OpenSSL 3 fetches every algorithm
 *	for it); the next hops of one delivery share one. Each call sets
 *	what it asks OpenSSL about (cipher list, groups, client certificate)
 *	before asking, so nothing of an earlier call decides a later one.
 */
#ifndef TP_OSSL_INTERNAL_H
#define TP_OSSL_INTERNAL_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "tlspolicy/client.h"
#include "tlspolicy/fingerprint.h"

void tp__ca_store_default(X509_STORE *store);
int tp__fingerprint_x509(char out[TP_FINGERPRINT_MAX], X509 *cert, const char *digest,
			 tp_pin_kind kind, tp_diag *diag);
int tp__client_settings_new_reusing(tp_client_settings **out, const tp_config *config,
				    const char *key, const char *value,
				    SSL_CTX **scratch, tp_diag *diag);

#endif
