/*
 * NAME
 *	probe - show the certificates an SMTP server presents after STARTTLS
 * SYNOPSIS
 *	tlspolicy probe HOST[:PORT]... [--servername NAME] [--protocols LIST]
 *		[--ciphers GRADE] [--exclude LIST] [-4|-6] [--wrapper]
 *		[--timeout S] [--jobs N] [--json]
 * DESCRIPTION
 *	Probes every address of every HOST given (all at once), connecting
 *	as Postfix's SMTP client does for a next hop at level fingerprint
 *	(the library's client settings from main.cf: no SNI unless
 *	smtp_tls_servername says, smtp_tls_mandatory_protocols and _ciphers,
 *	EHLO smtp_helo_name, inet_protocols), with the options overriding
 *	them as an entry's attributes would. Shows the settings used, then
 *	per address the TLS version and cipher, and for each certificate of
 *	the chain its subject, issuer, validity and its certificate and
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

#include "cli.h"
#include "json.h"

static void
probe_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy probe HOST[:PORT]... [--servername NAME] [--protocols LIST]\n"
		"                       [--ciphers GRADE] [--exclude LIST] [-4|-6] [--wrapper]\n"
		"                       [--timeout S] [--jobs N] [--json]\n"
		"\n"
		"Connect to every address of HOST as Postfix's SMTP client connects to a\n"
		"server it pins (main.cf's settings: no SNI unless smtp_tls_servername\n"
		"says, smtp_tls_mandatory_protocols and _ciphers, smtp_helo_name,\n"
		"inet_protocols), say EHLO and STARTTLS, and show the settings used and the\n"
		"certificate chain the server presents: subjects, issuers, validity, and\n"
		"the certificate and public-key fingerprints in the configured digest\n"
		"(smtp_tls_fingerprint_digest, or -d).\n"
		"\n"
		"HOST: mx.example.com, mx.example.com:587, 192.0.2.1:25, [2001:db8::1]:25\n"
		"(port 25 by default).\n"
		"\n"
		"Options (each overrides main.cf as the policy attribute of that name would):\n"
		"  --servername NAME  TLS SNI name (default: none, as Postfix; 'hostname'\n"
		"                     for the host probed)\n"
		"  --protocols LIST   TLS protocols, in Postfix's syntax (>=TLSv1.2,\n"
		"                     !TLSv1.3, TLSv1.2:TLSv1.3)\n"
		"  --ciphers GRADE    cipher grade: high, medium, low, export, null\n"
		"  --exclude LIST     ciphers to exclude, e.g. aECDSA (or aRSA)\n"
		"  -4, -6             IPv4 or IPv6 addresses only\n"
		"  --wrapper          TLS from the first byte (SMTPS, port 465), not STARTTLS\n"
		"  --timeout S        seconds allowed per address, and per step (default 30)\n"
		"  --jobs N           connections at once (default 16)\n"
		"  --json             JSON output with the same data\n"
		"  -h, --help         this help\n"
		"\n"
		"Exit status: 0 when every address was probed, 1 otherwise, 64 usage error.\n");
}

static void
print_settings(const tp_client_info *in)
{
	printf("settings: level %s, SNI %s, protocols %s, ciphers %s",
	       tp_level_name(in->level), *in->servername ? in->servername : "(none)",
	       in->protocols, in->cipher_grade);
	if (*in->cipher_exclusions)
		printf(" excluding %s", in->cipher_exclusions);
	printf(", security level %d, EHLO %s, %s%s%s\n", in->security_level, in->helo_name,
	       (in->families & TP_FAMILY_IPV4) ? "IPv4" : "",
	       in->families == (TP_FAMILY_IPV4 | TP_FAMILY_IPV6) ? " and " : "",
	       (in->families & TP_FAMILY_IPV6) ? "IPv6" : "");
	printf("  %s; cipher list %s\n", in->wrappermode ? "wrapper mode (TLS first)" : "STARTTLS",
	       in->cipherlist);
	if (in->tls_error)
		printf("  Postfix cannot use these settings: %s\n", in->tls_error);
}

static void
print_text(const tp_prober *prober, const char *digest, time_t now)
{
	size_t n = tp_prober_result_count(prober), shown = 0;

	for (size_t i = 0; i < n; i++) {
		const tp_probe_result *r = tp_prober_result(prober, i);

		if (r->status != TP_OK)
			continue;
		putchar('\n');
		shown++;
		printf("%s[%s]:%u: %s, %s, SNI %s\n", r->host, r->address, r->port,
		       r->tls_version, r->cipher,
		       r->servername ? r->servername : "(none)");
		printf("  verified: %s%s%s%s, name matches: %s (for information: the fingerprint level checks neither)\n",
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

static json_t *
result_json(const tp_probe_result *r)
{
	json_t *o = json_object(), *chain;
	char buf[32];
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= cli_jset(o, "target", json_string(r->target_spec));
	bad |= cli_jset(o, "host", json_string(r->host));
	bad |= cli_jset(o, "address", cli_jstr(r->address));
	bad |= cli_jset(o, "port", json_integer(r->port));
	bad |= cli_jset(o, "ok", json_boolean(r->status == TP_OK));
	bad |= cli_jset(o, "error", r->status == TP_OK ? json_null() : json_string(r->error));
	bad |= cli_jset(o, "step", json_string(r->step));
	if (r->status != TP_OK)
		return bad ? (json_decref(o), NULL) : o;
	bad |= cli_jset(o, "servername", cli_jstr(r->servername));
	bad |= cli_jset(o, "tls_version", json_string(r->tls_version));
	bad |= cli_jset(o, "cipher", json_string(r->cipher));
	bad |= cli_jset(o, "verified", json_boolean(r->verified));
	bad |= cli_jset(o, "verify_error", r->verified ? json_null() : json_string(r->verify_error));
	bad |= cli_jset(o, "name_matches", json_boolean(r->name_matches));
	if ((chain = json_array()) == NULL || cli_jset(o, "chain", chain) != 0) {
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
		bad |= cli_jset(co, "subject", json_string(c->subject));
		bad |= cli_jset(co, "issuer", json_string(c->issuer));
		bad |= cli_jset(co, "not_before", json_string(cli_iso_time(buf, sizeof(buf), c->not_before)));
		bad |= cli_jset(co, "not_after", json_string(cli_iso_time(buf, sizeof(buf), c->not_after)));
		bad |= cli_jset(co, "not_before_epoch", json_integer((json_int_t)c->not_before));
		bad |= cli_jset(co, "not_after_epoch", json_integer((json_int_t)c->not_after));
		bad |= cli_jset(co, "fingerprint", json_string(c->fingerprint));
		bad |= cli_jset(co, "pkey_fingerprint", json_string(c->pkey_fingerprint));
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
settings_json(const tp_client_info *in)
{
	json_t *o = json_object();
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= cli_jset(o, "level", json_string(tp_level_name(in->level)));
	bad |= cli_jset(o, "servername", json_string(in->servername));
	bad |= cli_jset(o, "protocols", json_string(in->protocols));
	bad |= cli_jset(o, "cipher_grade", json_string(in->cipher_grade));
	bad |= cli_jset(o, "cipher_exclusions", json_string(in->cipher_exclusions));
	bad |= cli_jset(o, "cipherlist", json_string(in->cipherlist));
	bad |= cli_jset(o, "security_level", json_integer(in->security_level));
	bad |= cli_jset(o, "helo_name", json_string(in->helo_name));
	bad |= cli_jset(o, "ipv4", json_boolean(in->families & TP_FAMILY_IPV4));
	bad |= cli_jset(o, "ipv6", json_boolean(in->families & TP_FAMILY_IPV6));
	bad |= cli_jset(o, "wrappermode", json_boolean(in->wrappermode));
	bad |= cli_jset(o, "bind_address", cli_jstr(*in->bind_address ? in->bind_address : NULL));
	bad |= cli_jset(o, "bind_address6", cli_jstr(*in->bind_address6 ? in->bind_address6 : NULL));
	bad |= cli_jset(o, "error", cli_jstr(in->tls_error));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
print_json(const tp_prober *prober, const char *digest, const tp_client_info *in)
{
	json_t *root = json_object(), *results = json_array();
	size_t n = tp_prober_result_count(prober);
	int rc = -1;

	if (root == NULL || results == NULL || cli_jset(root, "digest", json_string(digest)) ||
	    cli_jset(root, "settings", settings_json(in)) ||
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

/*
 * The policy value the options amount to at level (attributes override
 * main.cf as in an entry).
 */
static int
options_value(char **out, const char *level, const char *servername,
	      const char *protocols, const char *ciphers, const char *exclude)
{
	if (asprintf(out, "%s%s%s%s%s%s%s%s%s", level, servername ? " servername=" : "",
		     servername ? servername : "", protocols ? " protocols=" : "",
		     protocols ? protocols : "", ciphers ? " ciphers=" : "",
		     ciphers ? ciphers : "", exclude ? " exclude=" : "",
		     exclude ? exclude : "") < 0) {
		*out = NULL;
		return -1;
	}
	return 0;
}

/* An option value that would not survive as a policy attribute. */
static int
bad_attr(const char *s)
{
	return s != NULL && (*s == '\0' || strpbrk(s, " \t\r\n,") != NULL);
}

int
cmd_probe(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "servername", required_argument, NULL, 's' },
		{ "protocols", required_argument, NULL, 'p' },
		{ "ciphers", required_argument, NULL, 'c' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "wrapper", no_argument, NULL, 'W' },
		{ "timeout", required_argument, NULL, 't' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *prober = NULL;
	tp_client_settings *settings = NULL;
	const char *servername = NULL, *protocols = NULL, *ciphers = NULL, *exclude = NULL;
	unsigned int families = 0;
	int json = 0, ch, failed = 0, wrapper = 0, rc = EX_FAIL;
	char *end, *value = NULL;
	long jobs;

	while ((ch = getopt_long(argc, argv, ":h46", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			servername = optarg;
			break;
		case 'p':
			protocols = optarg;
			break;
		case 'c':
			ciphers = optarg;
			break;
		case 'x':
			exclude = optarg;
			break;
		case '4':
			families = TP_FAMILY_IPV4;
			break;
		case '6':
			families = TP_FAMILY_IPV6;
			break;
		case 'W':
			wrapper = 1;
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
			return cli_bad_option("probe", ch, argv);
		}
	}
	if (optind >= argc)
		return cli_usage("probe", "missing HOST[:PORT]");
	if (bad_attr(servername) || bad_attr(protocols) || bad_attr(ciphers) || bad_attr(exclude))
		return cli_usage("probe", "option values must not be empty or hold blanks or commas (Postfix separates lists with ':' here)");
	/*
	 * The attributes as Postfix would check them, at a level that needs
	 * no pins (a probe has none); the settings are those of level
	 * fingerprint, where Postfix pins.
	 */
	if (options_value(&value, "encrypt", servername, protocols, ciphers, exclude) != 0)
		return cli_errorf("out of memory");
	{
		tp_policy *check = NULL;
		int prc = tp_policy_parse(&check, value, strlen(value), &diag);

		tp_policy_free(check);
		free(value);
		value = NULL;
		if (prc != 0)
			return prc == TP_ENOMEM ? cli_errorf("out of memory")
			    : cli_usage("probe", "%s", diag.message);
	}
	if (options_value(&value, "fingerprint", servername, protocols, ciphers, exclude) != 0)
		return cli_errorf("out of memory");
	if (tp_client_settings_new(&settings, cli_config(cli), NULL, value, &diag) != 0) {
		rc = cli_error(&diag);
		goto out;
	}
	tp_client_settings_set_families(settings, families);
	tp_client_settings_set_wrappermode(settings, wrapper);
	opts.digest = cli_digest(cli);
	opts.settings = settings;
	cli_probe_defaults(cli, &opts);
	if (tp_prober_new(&prober, &opts, &diag) != 0) {
		rc = diag.status == TP_EUSAGE ? cli_usage("probe", "%s", diag.message)
		    : cli_error(&diag);
		goto out;
	}
	for (int i = optind; i < argc; i++) {
		if (tp_prober_add(NULL, prober, argv[i], NULL, &diag) != 0) {
			rc = cli_usage("probe", "%s", diag.message);
			goto out;
		}
	}
	if (tp_prober_run(prober, &diag) != 0) {
		rc = cli_error(&diag);
		goto out;
	}
	for (size_t i = 0; i < tp_prober_result_count(prober); i++) {
		const tp_probe_result *r = tp_prober_result(prober, i);

		if (r->status != TP_OK) {
			cli_errorf("%s", r->error);
			failed = 1;
		}
	}
	if (json) {
		if (print_json(prober, opts.digest, tp_client_settings_info(settings)) != 0) {
			rc = cli_errorf("probe: out of memory writing JSON");
			goto out;
		}
	} else if (!cli->quiet) {
		print_settings(tp_client_settings_info(settings));
		print_text(prober, opts.digest, time(NULL));
	}
	rc = failed ? EX_FAIL : EX_SUCCESS;
out:
	tp_prober_free(prober);
	tp_client_settings_free(settings);
	free(value);
	return rc;
}
