/*
 * NAME
 *	ossl - OpenSSL helpers shared inside the library (internal)
 * DESCRIPTION
 *	tp__ca_store_default() adds to store the system's CAs, as
 *	SSL_CTX_set_default_verify_paths() does (Postfix calls it for
 *	tls_append_default_CA = yes): OpenSSL's default CA file and hashed
 *	directory (both honour SSL_CERT_FILE and SSL_CERT_DIR). Not
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
 *	(tlspolicy/client.h) with what the settings of one delivery share:
 *	reuse NULL, or zeroed at first and given to tp__client_reuse_dispose()
 *	after the last call. Its OpenSSL context is made once and left for
 *	the next call: making one is most of the settings' cost (OpenSSL 3
 *	fetches every algorithm for it). Each call sets what it asks OpenSSL
 *	about (cipher list, groups) before asking, so
 *	nothing of an earlier call decides a later one. Whether main.cf's CA
 *	file and directory load is remembered for the same names: loading
 *	a system bundle decodes a hundred certificates or more. So is whether
 *	the client certificates load, for the same files.
 *
 *	tp__client_certs_use() loads the client certificates and keys of in
 *	(smtp_tls_chain_files, else the cert and key file pairs) into ctx
 *	as Postfix's SMTP client loads them when it starts (certkey.c):
 *	*why is NULL when they load or none is set, else Postfix's reason
 *	(malloc'd), and Postfix then runs without TLS. TP_ENOMEM only.
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
typedef struct tp__client_reuse {
	SSL_CTX *ctx;		/* NULL until the first call makes it */
	char *ca_file, *ca_path;	/* what ca_error is about; NULL: nothing yet */
	char *ca_error;		/* why they do not load; NULL: they do */
	char *certs;		/* the client certificate files cert_error is about */
	char *cert_error;
} tp__client_reuse;

int tp__client_certs_use(SSL_CTX *ctx, const tp_client_info *in, char **why);

int tp__client_settings_new_reusing(tp_client_settings **out, const tp_config *config,
				    const char *key, const char *value,
				    tp__client_reuse *reuse, tp_diag *diag);
void tp__client_reuse_dispose(tp__client_reuse *reuse);

#endif
