/*
 * probe-fingerprints - what an SMTP server presents after STARTTLS
 *
 * usage: probe-fingerprints [-d DIGEST] [-t SECONDS] HOST[:PORT]...
 *
 * Probes every address of every HOST at once (port 25 by default) and
 * prints one line per address:
 *
 *	HOST[ADDRESS]:PORT cert=FINGERPRINT pkey=FINGERPRINT
 *
 * with the fingerprints of the leaf certificate in DIGEST (default
 * sha256): what "fingerprint" level pins in Postfix's smtp_tls_policy_maps
 * must match. A failed address prints its error on stderr and makes the
 * exit status 1. A small example of the libtlspolicy API: build it with
 *
 *	cc -o probe-fingerprints probe-fingerprints.c \
 *	    $(pkg-config --cflags --libs tlspolicy)
 */
#define _POSIX_C_SOURCE 200809L	/* getopt() under -std=c11 */

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <tlspolicy.h>

int
main(int argc, char **argv)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *prober = NULL;
	char msg[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32];
	int c, status = 0;

	while ((c = getopt(argc, argv, "d:t:")) != -1) {
		switch (c) {
		case 'd':
			opts.digest = optarg;
			break;
		case 't':
			opts.timeout = strtod(optarg, NULL);
			break;
		default:
			goto usage;
		}
	}
	if (optind == argc)
		goto usage;

	if (tp_prober_new(&prober, &opts, &diag) < 0)
		goto fail;
	for (int i = optind; i < argc; i++)
		if (tp_prober_add(NULL, prober, argv[i], NULL, &diag) < 0)
			goto fail;
	if (tp_prober_run(prober, &diag) < 0)
		goto fail;

	for (size_t i = 0; i < tp_prober_result_count(prober); i++) {
		const tp_probe_result *r = tp_prober_result(prober, i);

		if (r->status != TP_OK || r->chain_len == 0) {
			fprintf(stderr, "probe-fingerprints: %s\n",
				r->status != TP_OK ? r->error : "no certificate");
			status = 1;
			continue;
		}
		printf("%s[%s]:%u cert=%s pkey=%s\n", r->host, r->address,
		       r->port, r->chain[0].fingerprint,
		       r->chain[0].pkey_fingerprint);
	}
	tp_prober_free(prober);
	return status;

fail:
	fprintf(stderr, "probe-fingerprints: %s\n",
		tp_diag_format(&diag, msg, sizeof(msg)));
	tp_prober_free(prober);
	return 1;
usage:
	fprintf(stderr, "usage: probe-fingerprints [-d DIGEST] [-t SECONDS] "
		"HOST[:PORT]...\n");
	return 64;
}
