/*
 * Fuzz target: the client certificate loader (certkey.c) on arbitrary
 * file contents, as smtp_tls_chain_files (each key first) and as one
 * file for smtp_tls_cert_file and its key (the key anywhere). Checks
 * that it answers, with a reason exactly when nothing is loaded, and
 * that a file it loads as a chain file loads as a mixed file too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "ossl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loads in a new context; 1 loaded, 0 refused with a reason. */
static int
loads(const tp_client_info *in)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char *why = NULL;
	int rc;

	if (ctx == NULL)
		abort();
	SSL_CTX_set_security_level(ctx, 0);
	rc = tp__client_certs_use(ctx, in, &why);
	SSL_CTX_free(ctx);
	if (rc != TP_OK)
		abort();	/* only out of memory, which this run is not */
	if (why != NULL && *why == '\0')
		abort();
	free(why);
	return why == NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tp_client_info in;
	char name[64];
	int fd, chain, mixed;

	if ((fd = memfd_create("certkey", 0)) < 0)
		return 0;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
	memset(&in, 0, sizeof(in));
	in.cert_file = in.key_file = in.eccert_file = in.eckey_file = "";
	in.chain_files = name;
	chain = loads(&in);
	in.chain_files = "";
	in.cert_file = in.key_file = name;
	mixed = loads(&in);
	/* A chain file's first group (key, certificate) is a mixed file's. */
	if (chain && !mixed)
		abort();
	close(fd);
	return 0;
}
