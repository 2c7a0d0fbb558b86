/*
 * NAME
 *	probe - show the certificates an SMTP server presents after STARTTLS
 * SYNOPSIS
 *	tlspolicy probe HOST[:PORT]... [--servername NAME] [--timeout S]
 *		[--jobs N] [--json]
 * DESCRIPTION
 *	Probes every address of every HOST given (all at once) and shows,
 *	per address, the TLS version and cipher, and for each certificate
 *	of the chain its subject, issuer, validity and its certificate and
 *	public-key fingerprints in the configured digest (cli_digest()).
 *	Text and --json carry the same data. -v traces the SMTP dialogue
 *	on stderr.
 * DIAGNOSTICS
 *	Each address that could not be probed: one line on stderr, e.g.
 *	"tlspolicy: mx.example.com[192.0.2.1]:25: no STARTTLS in EHLO
 *	reply". Exit 0 when every address was probed, 1 otherwise, 64 on a
 *	usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

static void
probe_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy probe HOST[:PORT]... [--servername NAME] [--timeout S]\n"
		"                       [--jobs N] [--json]\n"
		"\n"
		"Connect to every address of HOST, say EHLO and STARTTLS, and show the\n"
		"certificate chain the server presents: subjects, issuers, validity, and\n"
		"the certificate and public-key fingerprints in the configured digest\n"
		"(smtp_tls_fingerprint_digest, or -d).\n"
		"\n"
		"HOST: mx.example.com, mx.example.com:587, 192.0.2.1:25, [2001:db8::1]:25\n"
		"(port 25 by default).\n"
		"\n"
		"Options:\n"
		"  --servername NAME  TLS SNI name (default: the host name; none for an\n"
		"                     address)\n"
		"  --timeout S        seconds allowed per address, and per step (default 30)\n"
		"  --jobs N           connections at once (default 16)\n"
		"  --json             JSON output with the same data\n"
		"  -h, --help         this help\n"
		"\n"
		"Exit status: 0 when every address was probed, 1 otherwise, 64 usage error.\n");
}

static void
print_text(const tp_prober *prober, const char *digest, time_t now)
{
	size_t n = tp_prober_result_count(prober), shown = 0;

	for (size_t i = 0; i < n; i++) {
		const tp_probe_result *r = tp_prober_result(prober, i);

		if (r->status != TP_OK)
			continue;
		if (shown++ > 0)
			putchar('\n');
		printf("%s[%s]:%u: %s, %s, SNI %s\n", r->host, r->address, r->port,
		       r->tls_version, r->cipher,
		       r->servername ? r->servername : "(none)");
		printf("  verified: %s%s%s%s, name matches: %s (for information: the\n"
		       "  fingerprint level checks neither)\n",
		       r->verified ? "yes" : "no", r->verified ? "" : " (",
		       r->verify_error, r->verified ? "" : ")",
		       r->name_matches ? "yes" : "no");
		for (size_t k = 0; k < r->chain_len; k++) {
			const tp_probe_cert *c = &r->chain[k];
			char nb[32], na[32];

			printf("  certificate %zu%s\n", k, k == 0 ? " (leaf)" : "");
			printf("    subject:          %s\n", c->subject);
			printf("    issuer:           %s\n", c->issuer);
			printf("    not before:       %s\n",
			       cli_iso_time(nb, sizeof(nb), c->not_before));
			printf("    not after:        %s%s\n",
			       cli_iso_time(na, sizeof(na), c->not_after),
			       c->not_after < now ? " (expired)" : "");
			printf("    fingerprint:      %s %s\n", digest, c->fingerprint);
			printf("    pkey_fingerprint: %s %s\n", digest, c->pkey_fingerprint);
		}
	}
}

/* json_object_set_new with a check we cannot skip: jansson returns -1 on ENOMEM. */
static int
set(json_t *obj, const char *key, json_t *value)
{
	return value == NULL || json_object_set_new(obj, key, value) != 0 ? -1 : 0;
}

static json_t *
json_string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
result_json(const tp_probe_result *r)
{
	json_t *o = json_object(), *chain;
	char buf[32];
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= set(o, "target", json_string(r->target_spec));
	bad |= set(o, "host", json_string(r->host));
	bad |= set(o, "address", json_string_or_null(r->address));
	bad |= set(o, "port", json_integer(r->port));
	bad |= set(o, "ok", json_boolean(r->status == TP_OK));
	bad |= set(o, "error", r->status == TP_OK ? json_null() : json_string(r->error));
	bad |= set(o, "step", json_string(r->step));
	if (r->status != TP_OK)
		return bad ? (json_decref(o), NULL) : o;
	bad |= set(o, "servername", json_string_or_null(r->servername));
	bad |= set(o, "tls_version", json_string(r->tls_version));
	bad |= set(o, "cipher", json_string(r->cipher));
	bad |= set(o, "verified", json_boolean(r->verified));
	bad |= set(o, "verify_error", r->verified ? json_null() : json_string(r->verify_error));
	bad |= set(o, "name_matches", json_boolean(r->name_matches));
	if ((chain = json_array()) == NULL || set(o, "chain", chain) != 0) {
		json_decref(o);
		return NULL;
	}
	for (size_t k = 0; k < r->chain_len; k++) {
		const tp_probe_cert *c = &r->chain[k];
		json_t *co = json_object();

		if (co == NULL || json_array_append_new(chain, co) != 0) {
			json_decref(o);
			return NULL;
		}
		bad |= set(co, "subject", json_string(c->subject));
		bad |= set(co, "issuer", json_string(c->issuer));
		bad |= set(co, "not_before", json_string(cli_iso_time(buf, sizeof(buf), c->not_before)));
		bad |= set(co, "not_after", json_string(cli_iso_time(buf, sizeof(buf), c->not_after)));
		bad |= set(co, "not_before_epoch", json_integer((json_int_t)c->not_before));
		bad |= set(co, "not_after_epoch", json_integer((json_int_t)c->not_after));
		bad |= set(co, "fingerprint", json_string(c->fingerprint));
		bad |= set(co, "pkey_fingerprint", json_string(c->pkey_fingerprint));
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
print_json(const tp_prober *prober, const char *digest)
{
	json_t *root = json_object(), *results = json_array();
	size_t n = tp_prober_result_count(prober);
	int rc = -1;

	if (root == NULL || results == NULL || set(root, "digest", json_string(digest)) ||
	    json_object_set(root, "results", results) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_t *r = result_json(tp_prober_result(prober, i));

		if (r == NULL || json_array_append_new(results, r) != 0)
			goto out;
	}
	if (json_dumpf(root, stdout, JSON_INDENT(2)) != 0)
		goto out;
	putchar('\n');
	rc = 0;
out:
	json_decref(results);
	json_decref(root);
	return rc;
}

int
cmd_probe(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "servername", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *prober = NULL;
	int json = 0, ch, failed = 0;
	char *end;
	long jobs;

	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			opts.servername = optarg;
			break;
		case 't':
			if ((opts.timeout = cli_parse_seconds(optarg)) < 0)
				return cli_usage("probe", "bad --timeout \"%s\"", optarg);
			break;
		case 'j':
			jobs = strtol(optarg, &end, 10);
			if (end == optarg || *end || jobs < 1 || jobs > 1024)
				return cli_usage("probe", "bad --jobs \"%s\" (want 1 to 1024)",
						 optarg);
			opts.jobs = (unsigned int)jobs;
			break;
		case 'J':
			json = 1;
			break;
		case 'h':
			probe_usage(stdout);
			return EX_SUCCESS;
		default:
			if (optopt == 's' || optopt == 't' || optopt == 'j')
				return cli_usage("probe", "option %s needs an argument",
						 argv[optind - 1]);
			return cli_usage("probe", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage("probe", "missing HOST[:PORT]");
	opts.digest = cli_digest(cli);
	cli_probe_defaults(cli, &opts);
	if (tp_prober_new(&prober, &opts, &diag) != 0) {
		if (diag.status == TP_EUSAGE)
			return cli_usage("probe", "%s", diag.message);
		return cli_error(&diag);
	}
	for (int i = optind; i < argc; i++) {
		if (tp_prober_add(NULL, prober, argv[i], NULL, &diag) != 0) {
			tp_prober_free(prober);
			return cli_usage("probe", "%s", diag.message);
		}
	}
	if (tp_prober_run(prober, &diag) != 0) {
		tp_prober_free(prober);
		return cli_error(&diag);
	}
	for (size_t i = 0; i < tp_prober_result_count(prober); i++) {
		const tp_probe_result *r = tp_prober_result(prober, i);

		if (r->status != TP_OK) {
			cli_errorf("%s", r->error);
			failed = 1;
		}
	}
	if (json) {
		if (print_json(prober, opts.digest) != 0) {
			tp_prober_free(prober);
			return cli_errorf("probe: out of memory writing JSON");
		}
	} else if (!cli->quiet) {
		print_text(prober, opts.digest, time(NULL));
	}
	tp_prober_free(prober);
	return failed ? EX_FAIL : EX_SUCCESS;
}
