/*
 * NAME
 *	check - monitor the pins, Nagios style
 * SYNOPSIS
 *	tlspolicy check [KEY...] [--warn-days N] [--critical-days N] [--jobs N]
 *		[--timeout S] [--json] [--prometheus FILE]
 * DESCRIPTION
 *	For every fingerprint entry (or each KEY), asks the library's
 *	delivery model what Postfix's SMTP client does with the value
 *	Postfix reads for it (the database's): which servers it tries, with
 *	which settings, and whether they present a pinned certificate; the
 *	verdict is the model's (tp_delivery_verdict). To it this command
 *	adds what is about the table rather than Postfix's client: a
 *	database out of step with the source. The first output line is the
 *	Nagios summary with performance data, then one line per entry;
 *	--json carries all details; --prometheus also writes a
 *	node_exporter textfile (prom.h), even when the check fails early.
 * DIAGNOSTICS
 *	Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN: the worst of CRITICAL >
 *	WARNING > UNKNOWN > OK over the entries. 3 also when the table cannot
 *	be read, or when the --prometheus file cannot be written; 64 usage.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "prom.h"
#include "targets.h"

enum { EX_CHECK_UNKNOWN = 3 };

static void
check_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] check [KEY...] [--warn-days N]\n"
		"           [--critical-days N] [--jobs N] [--timeout S] [--json]\n"
		"           [--prometheus FILE]\n"
		"\n"
		"Monitor the pins (Nagios/Icinga plugin). For every fingerprint entry (or\n"
		"each KEY), probe the servers Postfix's SMTP client would try for it (MX\n"
		"hosts of a domain, the host of [host]:port; within smtp_mx_address_limit),\n"
		"all at once, with the settings it would use (SNI, protocols, ciphers,\n"
		"address families, client certificate, wrapper mode), and judge the value\n"
		"Postfix reads (the .db):\n"
		"  CRITICAL  no server Postfix tries presents a pinned certificate (mail\n"
		"            is deferred), no pin has the configured digest, Postfix\n"
		"            would reject the entry, or a pinned certificate expires\n"
		"            within --critical-days\n"
		"  WARNING   some servers match and some do not (deliveries are slowed),\n"
		"            a pinned certificate expires within --warn-days, or the\n"
		"            .db is out of step with the source\n"
		"  UNKNOWN   nothing could be probed (DNS failure, no answer)\n"
		"The first line is a summary with performance data, then one line per\n"
		"entry.\n"
		"\n"
		"  --warn-days N      warn this many days before expiry (default 30)\n"
		"  --critical-days N  CRITICAL this many days before expiry (default: never)\n"
		"  --jobs N           connections at once (default 16)\n"
		"  --timeout S        seconds allowed per address (default 30)\n"
		"  --json             all details as JSON\n"
		"  --prometheus FILE  also write the results as a node_exporter textfile\n"
		"                     (FILE ending in .prom, replaced atomically): per\n"
		"                     entry status, days until the pinned certificate\n"
		"                     expires, last successful probe (kept from FILE while\n"
		"                     a host fails)\n"
		"\n"
		"Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the worst of\n"
		"CRITICAL > WARNING > UNKNOWN > OK), 64 usage error.\n");
}

static int
jset(json_t *o, const char *k, json_t *v)
{
	return v == NULL || json_object_set_new(o, k, v) != 0 ? -1 : 0;
}

static json_t *
jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
server_json(const tp_server *s, time_t now)
{
	json_t *p = json_object();
	const tp_probe_result *r = s->probe;
	char date[32];
	int bad = 0;

	if (p == NULL)
		return NULL;
	bad |= jset(p, "host", jstr(s->host));
	bad |= jset(p, "address", jstr(s->address));
	bad |= jset(p, "port", json_integer(s->port));
	bad |= jset(p, "preference", json_integer(s->preference));
	bad |= jset(p, "tried", json_string(s->tried == TP_TRY_YES ? "yes"
					      : s->tried == TP_TRY_MAYBE ? "maybe" : "no"));
	bad |= jset(p, "outcome", json_string(tp_outcome_name(s->outcome)));
	bad |= jset(p, "error", jstr(s->error));
	if (r != NULL) {
		bad |= jset(p, "servername", jstr(r->servername));
		bad |= jset(p, "elapsed", json_real(r->elapsed));
	}
	if (r != NULL && r->status == TP_OK && r->chain_len > 0) {
		const tp_probe_cert *leaf = &r->chain[0];

		bad |= jset(p, "pinned", json_boolean(s->outcome == TP_OUTCOME_MATCH));
		bad |= jset(p, "fingerprint", json_string(leaf->fingerprint));
		bad |= jset(p, "pkey_fingerprint", json_string(leaf->pkey_fingerprint));
		bad |= jset(p, "subject", json_string(leaf->subject));
		bad |= jset(p, "issuer", json_string(leaf->issuer));
		bad |= jset(p, "not_before", json_string(cli_iso_time(date, sizeof(date), leaf->not_before)));
		bad |= jset(p, "not_after", json_string(cli_iso_time(date, sizeof(date), leaf->not_after)));
		bad |= jset(p, "not_after_epoch", json_integer((json_int_t)leaf->not_after));
		bad |= jset(p, "days_left", json_real(difftime(leaf->not_after, now) / 86400.0));
		bad |= jset(p, "tls_version", jstr(r->tls_version));
		bad |= jset(p, "cipher", jstr(r->cipher));
	}
	if (bad) {
		json_decref(p);
		return NULL;
	}
	return p;
}

static json_t *
entry_json(const struct cli_target *t, const tp_delivery_key *k, const tp_verdict *v,
	   const char *digest, time_t now)
{
	const tp_client_info *in = tp_client_settings_info(k->settings);
	json_t *o = json_object(), *a;
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= jset(o, "key", json_string(t->key));
	bad |= jset(o, "line", json_integer((json_int_t)t->line));
	bad |= jset(o, "status", json_string(tp_state_name(v->state)));
	bad |= jset(o, "value", json_string(t->value));
	bad |= jset(o, "judged_value", jstr(t->judged));
	bad |= jset(o, "judged_from", json_string(t->judged_from));
	bad |= jset(o, "db_in_step", json_boolean(!t->db_differs));
	bad |= jset(o, "valid", json_boolean(in->valid));
	bad |= jset(o, "problem", in->valid ? json_null() : json_string(in->problem));
	bad |= jset(o, "level", json_string(tp_level_name(in->level)));
	bad |= jset(o, "pin_kind", json_string(tp_pin_kind_name(t->kind)));
	bad |= jset(o, "servers_from", jstr(k->servers_from));
	bad |= jset(o, "servername", json_string(in->servername));
	bad |= jset(o, "protocols", json_string(in->protocols));
	bad |= jset(o, "cipherlist", jstr(in->cipherlist));
	bad |= jset(o, "wrappermode", json_boolean(in->wrappermode));
	bad |= jset(o, "hosts", a = json_array());
	for (size_t i = 0; a && i < t->hosts.count; i++)
		bad |= json_array_append_new(a, json_string(t->hosts.strings[i]));
	bad |= jset(o, "pins", a = json_array());
	for (size_t i = 0; a && i < in->pin_count; i++) {
		const char *pd = tp_pin_digest(in->pins[i]);
		json_t *p = json_object();

		bad |= json_array_append_new(a, p);
		bad |= jset(p, "fingerprint", json_string(in->pins[i]));
		bad |= jset(p, "digest", jstr(pd));
		bad |= jset(p, "digest_matches", json_boolean(pd && cli_digest_equal(pd, digest)));
	}
	bad |= jset(o, "reasons", a = json_array());
	for (size_t i = 0; a && i < v->reason_count; i++) {
		json_t *p = json_object();

		bad |= json_array_append_new(a, p);
		bad |= jset(p, "status", json_string(tp_state_name(v->reasons[i].state)));
		bad |= jset(p, "text", json_string(v->reasons[i].text));
	}
	bad |= jset(o, "servers", a = json_array());
	for (size_t i = 0; a && i < k->server_count; i++)
		bad |= json_array_append_new(a, server_json(&k->servers[i], now));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* --prometheus FILE, and the table once known, for unknown(). */
static const char *prom_path;
static const char *prom_table = "";

/* Nagios: a one-line summary even when we cannot look at anything. */
static int
unknown(int json, const char *what)
{
	if (prom_path != NULL)
		(void)cli_prom_write(prom_path, prom_table, NULL, 0, EX_CHECK_UNKNOWN,
				     time(NULL));
	if (json)
		printf("{\"status\": \"UNKNOWN\", \"exit\": 3, \"summary\": \"TLSPOLICY UNKNOWN - %s\", \"entries\": []}\n",
		       what);
	else
		printf("TLSPOLICY UNKNOWN - %s\n", what);
	return EX_CHECK_UNKNOWN;
}

/* What the table says beside Postfix's client: a database out of step. */
static int
table_reasons(tp_verdict *v, const struct cli_target *t, tp_table *table,
	      tp_db_state state)
{
	char buf[2048];

	if (t->db_differs && t->judged == NULL)
		snprintf(buf, sizeof(buf), "%s lacks the entry: Postfix does not use these pins; run 'tlspolicy rebuild'",
			 tp_table_db_path(table));
	else if (t->db_differs && strcmp(t->judged_from, "database") == 0)
		snprintf(buf, sizeof(buf), "%s holds another value than the source (\"%s\"), and Postfix reads the .db: run 'tlspolicy rebuild'",
			 tp_table_db_path(table), t->judged);
	else if (t->db_differs)
		snprintf(buf, sizeof(buf), "%s cannot be read: run 'tlspolicy rebuild'",
			 tp_table_db_path(table));
	else if (state != TP_DB_IN_STEP)
		snprintf(buf, sizeof(buf), "%s is %s: run 'tlspolicy rebuild'",
			 tp_table_db_path(table), cli_db_state_name(state));
	else
		return 0;
	return tp_verdict_add(v, TP_STATE_WARNING, buf);
}

static void
print_entry(const struct cli_target *t, const tp_verdict *v)
{
	printf("%s %s:", tp_state_name(v->state), t->key);
	/* The reasons that make the state first, then the rest. */
	for (size_t k = 0, first = 1; k < v->reason_count; k++) {
		if (v->reasons[k].state != v->state)
			continue;
		printf("%s %s", first ? "" : ";", v->reasons[k].text);
		first = 0;
	}
	for (size_t k = 0; k < v->reason_count; k++)
		if (v->reasons[k].state != v->state)
			printf("; %s: %s", tp_state_name(v->reasons[k].state),
			       v->reasons[k].text);
	putchar('\n');
}

int
cmd_check(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "warn-days", required_argument, NULL, 'w' },
		{ "critical-days", required_argument, NULL, 'c' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'J' },
		{ "prometheus", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_delivery_opts dopts = TP_DELIVERY_OPTS_INIT;
	tp_verdict_opts vopts = TP_VERDICT_OPTS_INIT;
	struct cli_targets targets = { NULL, 0, NULL };
	tp_verdict **v = NULL;
	tp_table *table = NULL;
	tp_db_state db_state = TP_DB_IN_STEP;
	tp_diag diag = TP_DIAG_INIT;
	const char *digest;
	long jobs, days;
	size_t count[4] = { 0, 0, 0, 0 };
	tp_state worst = TP_STATE_OK;
	int json = 0, ch, rc = EX_CHECK_UNKNOWN;
	time_t now, first_expiry = 0;
	char *end, summary[512], perf[256];
	json_t *root = NULL, *entries = NULL;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 'w':
		case 'c':
			days = strtol(optarg, &end, 10);
			if (end == optarg || *end || days < 0 || days > 36500)
				return cli_usage("check", "--%s %s: say 0 to 36500",
						 ch == 'w' ? "warn-days" : "critical-days", optarg);
			if (ch == 'w')
				vopts.warn_days = days;
			else
				vopts.critical_days = days;
			break;
		case 'j':
			jobs = strtol(optarg, &end, 10);
			if (end == optarg || *end || jobs < 1 || jobs > 1024)
				return cli_usage("check", "--jobs %s: say 1 to 1024", optarg);
			dopts.jobs = (unsigned int)jobs;
			break;
		case 't':
			if ((dopts.timeout = cli_parse_seconds(optarg)) < 0)
				return cli_usage("check", "--timeout %s: say a number of seconds", optarg);
			break;
		case 'J':
			json = 1;
			break;
		case 'P':
			if (*optarg == '\0')
				return cli_usage("check", "--prometheus: say a file name");
			prom_path = optarg;
			break;
		case 'h':
			check_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("check", ch, argv);
		}
	}
	if ((digest = cli_checked_digest(cli)) == NULL)
		return unknown(json, "no usable fingerprint digest");
	cli_delivery_defaults(cli, &dopts);
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		return unknown(json, "cannot read the policy table");
	prom_table = tp_table_source(table);
	if (tp_table_db_state(table, &db_state, &diag) != 0)
		db_state = TP_DB_STALE;
	if (cli_targets_collect(table, argv + optind, (size_t)(argc - optind), 1, 1,
				&targets) != EX_SUCCESS) {
		rc = unknown(json, "cannot select the entries");
		goto out;
	}
	if (targets.n > 0 && cli_targets_run(cli, &targets, &dopts) != EX_SUCCESS) {
		rc = unknown(json, "probing failed");
		goto out;
	}
	if (targets.n > 0 && (v = calloc(targets.n, sizeof(*v))) == NULL) {
		rc = unknown(json, "out of memory");
		goto out;
	}
	now = time(NULL);
	vopts.now = now;
	for (size_t i = 0; i < targets.n; i++) {
		if (tp_delivery_verdict(&v[i], targets.delivery, targets.v[i].dindex, &vopts,
					&diag) != 0 ||
		    table_reasons(v[i], &targets.v[i], table, db_state) != 0) {
			rc = unknown(json, "out of memory");
			goto out;
		}
		count[v[i]->state]++;
		if (tp_state_worse(v[i]->state, worst))
			worst = v[i]->state;
		if (v[i]->first_expiry && (first_expiry == 0 || v[i]->first_expiry < first_expiry))
			first_expiry = v[i]->first_expiry;
	}
	if (prom_path != NULL) {
		struct cli_prom_entry *pe = calloc(targets.n + 1, sizeof(*pe));

		for (size_t i = 0; pe != NULL && i < targets.n; i++) {
			pe[i].key = targets.v[i].key;
			pe[i].status = (int)v[i]->state;
			pe[i].not_after = v[i]->first_expiry;
			pe[i].probe_ok = v[i]->servers > 0 && v[i]->unreachable == 0
			    && v[i]->tls_failed == 0;
		}
		if (pe == NULL) {
			rc = unknown(json, "out of memory");
			goto out;
		}
		/* A monitor that cannot report is not OK: UNKNOWN at least. */
		if (cli_prom_write(prom_path, prom_table, pe, targets.n, (int)worst,
				   now) != 0 && worst == TP_STATE_OK)
			worst = TP_STATE_UNKNOWN;
		free(pe);
	}
	/* Nagios performance data: counts, and days to the first expiry. */
	snprintf(perf, sizeof(perf), "critical=%zu warning=%zu unknown=%zu ok=%zu",
		 count[TP_STATE_CRITICAL], count[TP_STATE_WARNING],
		 count[TP_STATE_UNKNOWN], count[TP_STATE_OK]);
	if (first_expiry != 0) {
		char crit[32] = "";

		if (vopts.critical_days >= 0)
			snprintf(crit, sizeof(crit), "%ld", vopts.critical_days);
		/* label=value;warn;crit, the thresholds as the plugin uses them */
		snprintf(perf + strlen(perf), sizeof(perf) - strlen(perf),
			 " first_expiry_days=%.1f;%ld;%s", difftime(first_expiry, now) / 86400.0,
			 vopts.warn_days, crit);
	}
	if (targets.n == 0)
		snprintf(summary, sizeof(summary), "TLSPOLICY OK - no fingerprint entries in %s | %s",
			 tp_table_source(table), perf);
	else
		snprintf(summary, sizeof(summary),
			 "TLSPOLICY %s - %zu critical, %zu warning, %zu unknown, %zu ok | %s",
			 tp_state_name(worst), count[TP_STATE_CRITICAL], count[TP_STATE_WARNING],
			 count[TP_STATE_UNKNOWN], count[TP_STATE_OK], perf);
	if (json) {
		int bad = 0;

		root = json_object();
		entries = json_array();
		if (root == NULL || entries == NULL) {
			rc = unknown(json, "out of memory");
			goto out;
		}
		bad |= jset(root, "status", json_string(tp_state_name(worst)));
		bad |= jset(root, "exit", json_integer((int)worst));
		bad |= jset(root, "summary", json_string(summary));
		bad |= jset(root, "table", json_string(tp_table_source(table)));
		bad |= jset(root, "db_state", json_string(cli_db_state_name(db_state)));
		bad |= jset(root, "digest", json_string(digest));
		bad |= jset(root, "warn_days", json_integer(vopts.warn_days));
		bad |= jset(root, "critical_days", vopts.critical_days >= 0
			    ? json_integer(vopts.critical_days) : json_null());
		for (size_t i = 0; i < targets.n; i++)
			bad |= json_array_append_new(entries,
						     entry_json(&targets.v[i], cli_target_key(&targets, i),
								v[i], digest, now));
		bad |= json_object_set(root, "entries", entries);
		if (bad) {
			rc = unknown(0, "out of memory");
			goto out;
		}
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		printf("%s\n", summary);
		/* Worst first, so the line that matters is near the top. */
		static const tp_state order[] = { TP_STATE_CRITICAL, TP_STATE_WARNING,
						  TP_STATE_UNKNOWN, TP_STATE_OK };

		for (size_t o = 0; o < 4; o++)
			for (size_t i = 0; i < targets.n; i++)
				if (v[i]->state == order[o])
					print_entry(&targets.v[i], v[i]);
	}
	rc = (int)worst;
out:
	json_decref(entries);
	json_decref(root);
	for (size_t i = 0; v && i < targets.n; i++)
		tp_verdict_free(v[i]);
	free(v);
	cli_targets_free(&targets);
	tp_table_free(table);
	return rc;
}
