/*
 * NAME
 *	certkey - the client certificates and keys, loaded as Postfix loads them
 * SUMMARY
 *	See ossl.h. Postfix's SMTP client loads them when it starts
 *	(tls_set_my_certificate_key_info() in tls_certkey.c) and runs
 *	without TLS when they do not load, so whether they load is part of
 *	its verdict on every next hop that needs TLS, and the probe must
 *	present what it presents.
 * DESCRIPTION
 *	smtp_tls_chain_files, when set, replaces the other settings: its
 *	files (a list, separated by commas or white space) are read in
 *	order as one sequence of PEM objects in which every private key
 *	comes first, followed by its certificate, then that certificate's
 *	issuers. So one file may hold several (key, chain) groups, or each
 *	file one, and nothing else is accepted: a certificate before any
 *	key, two keys in a row, a key without a certificate, a certificate
 *	that is not its key's, a second key of an algorithm already loaded.
 *	PEM objects of other types are skipped.
 *
 *	Otherwise smtp_tls_cert_file with smtp_tls_key_file, then
 *	smtp_tls_eccert_file with smtp_tls_eckey_file, each pair through
 *	OpenSSL's own file loaders; when the two names are one file, its one
 *	key may be anywhere in it ("mixed" below: a second key is ignored),
 *	read in a single pass as Postfix does to survive a key rollover.
 *	(smtp_tls_dcert_file, DSA, is not modelled.)
 *
 *	Relative names are resolved by the caller (client.c: Postfix opens
 *	them from queue_directory). The reasons are Postfix's warnings.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "diag.h"
#include "ossl.h"

#define SEPARATORS ", \t\r\n"

enum pem_state {
	PEM_NOGO = -2,		/* an object or sequence Postfix refuses */
	PEM_FAIL = -1,		/* OpenSSL could not decode */
	PEM_DONE = 0,		/* end of a file (a result, never a state) */
	PEM_INIT,		/* nothing yet */
	PEM_PKEY,		/* the last object was a key */
	PEM_CERT,		/* the last object was a certificate */
	PEM_BOTH		/* mixed: the key and a first certificate seen */
};

struct loader {
	SSL_CTX *ctx;
	int mixed;
	enum pem_state state;
	EVP_PKEY *pkey;		/* the group being read */
	X509 *cert;
	STACK_OF(X509) *chain;
	const char *origin;	/* the setting's value, for the last words */
	const char *source;	/* the file being read */
	const char *keysrc;	/* the file of the last key */
	int objnum, keynum;
	tp_buf why;		/* the first problem */
	int nomem;
};

static void say(struct loader *ld, const char *fmt, ...) TP_PRINTF(2, 3);

/* Keeps the first problem: the one Postfix warns about first. */
static void
say(struct loader *ld, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (ld->why.size > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (tp__buf_puts(&ld->why, line) != TP_OK)
		ld->nomem = 1;
}

static void
forget_group(struct loader *ld)
{
	X509_free(ld->cert);
	ld->cert = NULL;
	EVP_PKEY_free(ld->pkey);
	ld->pkey = NULL;
	sk_X509_pop_free(ld->chain, X509_free);
	ld->chain = NULL;
}

/* Installs the group read (OpenSSL checks that the key is the certificate's
 * and refuses a second one of an algorithm). */
static int
use_group(struct loader *ld)
{
	int ok = SSL_CTX_use_cert_and_key(ld->ctx, ld->cert, ld->pkey, ld->chain, 0) == 1;

	forget_group(ld);
	return ok;
}

static void
load_cert(struct loader *ld, const unsigned char *der, long len)
{
	const unsigned char *p = der;
	X509 *cert = d2i_X509(NULL, &p, len);

	if (!ld->mixed && ld->state == PEM_INIT) {
		say(ld, "error loading chain from %s: key not first", ld->source);
		X509_free(cert);
		ld->state = PEM_NOGO;
		return;
	}
	if (cert == NULL) {
		say(ld, "error loading certificate (PEM object number %d) from %s",
		    ld->objnum, ld->source);
		ld->state = PEM_FAIL;
		return;
	}
	if (p - der != len) {
		say(ld, "error loading certificate (PEM object number %d) from %s: excess data",
		    ld->objnum, ld->source);
		X509_free(cert);
		ld->state = PEM_NOGO;
		return;
	}
	switch (ld->state) {
	case PEM_PKEY:		/* the key's own certificate */
		ld->cert = cert;
		ld->state = ld->mixed ? PEM_BOTH : PEM_CERT;
		return;
	case PEM_INIT:		/* mixed: the certificate before its key */
		ld->cert = cert;
		ld->state = PEM_CERT;
		return;
	default:		/* an issuer */
		if ((ld->chain == NULL && (ld->chain = sk_X509_new_null()) == NULL) ||
		    sk_X509_push(ld->chain, cert) == 0) {
			X509_free(cert);
			ld->nomem = 1;
			ld->state = PEM_FAIL;
		}
		return;
	}
}

static void
load_pkey(struct loader *ld, int type, const unsigned char *der, long len)
{
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8;
	EVP_PKEY *pkey = NULL;

	if (type != NID_undef)
		pkey = d2i_PrivateKey(type, NULL, &p, len);
	else if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len)) != NULL) {
		pkey = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
	}
	if (ld->state == PEM_PKEY || ld->state == PEM_BOTH) {	/* a second key */
		EVP_PKEY_free(pkey);
		if (ld->mixed)	/* Postfix warns and goes on with the first */
			return;
		say(ld, "error loading certificate chain: key at index %d in %s not followed by a certificate",
		    ld->keynum, ld->keysrc);
		ld->state = PEM_NOGO;
		return;
	}
	/* After a certificate: the previous group is complete. */
	if (ld->state == PEM_CERT && !ld->mixed && !use_group(ld)) {
		say(ld, "error loading certificate chain: key at index %d in %s does not match the certificate",
		    ld->keynum, ld->keysrc);
		EVP_PKEY_free(pkey);
		ld->state = PEM_FAIL;
		return;
	}
	if (pkey == NULL) {
		say(ld, "error loading private key (PEM object number %d) from %s",
		    ld->objnum, ld->source);
		ld->state = PEM_FAIL;
		return;
	}
	if (p - der != len) {
		say(ld, "error loading private key (PEM object number %d) from %s: excess data",
		    ld->objnum, ld->source);
		EVP_PKEY_free(pkey);
		ld->state = PEM_NOGO;
		return;
	}
	ld->pkey = pkey;
	ld->state = ld->state == PEM_CERT && ld->mixed ? PEM_BOTH : PEM_PKEY;
}

/* The next object of bio: the state it leaves, or PEM_DONE at the end. */
static int
load_object(struct loader *ld, BIO *bio)
{
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long len;
	int type = NID_undef;

	if (!PEM_read_bio(bio, &name, &header, &der, &len)) {
		if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
			say(ld, "error reading PEM object number %d from %s", ld->objnum, ld->source);
			return ld->state = PEM_FAIL;
		}
		ERR_clear_error();
		return PEM_DONE;
	}
	if (strcmp(name, PEM_STRING_X509) == 0 || strcmp(name, PEM_STRING_X509_OLD) == 0)
		load_cert(ld, der, len);
	else if (strcmp(name, PEM_STRING_PKCS8INF) == 0 ||
		 ((type = EVP_PKEY_RSA), strcmp(name, PEM_STRING_RSA) == 0) ||
		 ((type = EVP_PKEY_EC), strcmp(name, PEM_STRING_ECPRIVATEKEY) == 0) ||
		 ((type = EVP_PKEY_DSA), strcmp(name, PEM_STRING_DSA) == 0))
		load_pkey(ld, type, der, len);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	return ld->state;
}

/* Reads one file of the sequence; more: others follow. 0 or -1. */
static int
load_file(struct loader *ld, const char *file, int more)
{
	int state = ld->state;
	BIO *bio;

	ERR_clear_error();
	ld->source = file;
	if ((bio = BIO_new_file(file, "r")) == NULL) {
		say(ld, "error opening chain file: %s: %s", file, strerror(errno ? errno : EIO));
		ld->state = PEM_NOGO;
		goto fail;
	}
	for (ld->objnum = 1; state > PEM_DONE; ld->objnum++) {
		state = load_object(ld, bio);
		if (ld->mixed ? ld->keynum == 0 && (state == PEM_PKEY || state == PEM_BOTH)
			      : state == PEM_PKEY) {
			ld->keynum = ld->objnum;
			ld->keysrc = ld->source;
		}
	}
	BIO_free(bio);
	if (more && state >= PEM_DONE)
		return 0;
	switch (ld->state) {
	case PEM_INIT:
		say(ld, "No PEM data in %s", ld->origin);
		break;
	case PEM_PKEY:
		say(ld, "No certs for key at index %d in %s", ld->keynum, ld->keysrc);
		break;
	case PEM_CERT:
	case PEM_BOTH:
		if (ld->state == PEM_CERT && ld->mixed) {
			say(ld, "No private key found in %s", ld->origin);
			break;
		}
		if (use_group(ld))
			return 0;
		say(ld, "key at index %d in %s does not match next certificate",
		    ld->keynum, ld->keysrc);
		break;
	default:		/* the reason is said */
		break;
	}
fail:
	forget_group(ld);
	say(ld, "error loading private keys and certificates from: %s", ld->origin);
	return -1;
}

static void
loader_init(struct loader *ld, SSL_CTX *ctx, const char *origin, int mixed)
{
	memset(ld, 0, sizeof(*ld));
	ld->ctx = ctx;
	ld->origin = origin;
	ld->mixed = mixed;
	ld->state = PEM_INIT;
}

static int
load_chain_files(struct loader *ld, const char *files)
{
	char *list, *next, *file;
	int rc = 0;

	if ((list = strdup(files)) == NULL) {
		ld->nomem = 1;
		return -1;
	}
	next = list + strspn(list, SEPARATORS);
	if (*next == '\0') {	/* Postfix finds no file, so nothing to use */
		free(list);
		return 0;
	}
	while (rc == 0 && *next != '\0') {
		file = next;
		next += strcspn(next, SEPARATORS);
		if (*next != '\0')
			*next++ = '\0';
		next += strspn(next, SEPARATORS);
		rc = load_file(ld, file, *next != '\0');
	}
	free(list);
	return rc;
}

/* set_cert_stuff(): one certificate file and its key file. */
static int
load_pair(struct loader *ld, const char *type, const char *cert, const char *key)
{
	if (strcmp(cert, key) == 0) {
		loader_init(ld, ld->ctx, cert, 1);
		return load_file(ld, cert, 0);
	}
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ld->ctx, cert) <= 0) {
		say(ld, "cannot get %s certificate from file \"%s\"", type, cert);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ld->ctx, key, SSL_FILETYPE_PEM) <= 0) {
		say(ld, "cannot get %s private key from file \"%s\"", type, key);
		return -1;
	}
	if (!SSL_CTX_check_private_key(ld->ctx)) {
		say(ld, "%s private key in %s does not match public key in %s", type, key, cert);
		return -1;
	}
	return 0;
}

int
tp__client_certs_use(SSL_CTX *ctx, const tp_client_info *in, char **why)
{
	struct loader ld;
	int rc;

	*why = NULL;
	loader_init(&ld, ctx, in->chain_files, 0);
	if (*in->chain_files != '\0')
		rc = load_chain_files(&ld, in->chain_files);
	else
		rc = (*in->cert_file == '\0' ||
		      load_pair(&ld, "RSA", in->cert_file, in->key_file) == 0) &&
		     (*in->eccert_file == '\0' ||
		      load_pair(&ld, "ECDSA", in->eccert_file, in->eckey_file) == 0) ? 0 : -1;
	ERR_clear_error();
	if (ld.nomem || (rc != 0 && ld.why.size == 0)) {
		tp_buf_dispose(&ld.why);
		return TP_ENOMEM;
	}
	if (rc != 0)
		*why = ld.why.ptr;
	else
		tp_buf_dispose(&ld.why);
	return TP_OK;
}
