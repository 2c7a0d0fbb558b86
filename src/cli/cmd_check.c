/*
 * NAME
 *	check - monitor the pins, Nagios style
 * SYNOPSIS
 *	tlspolicy check [KEY...] [--warn-days N] [--critical-days N] [--jobs N]
 *		[--timeout S] [--json] [--trust LIST] [--ca-file F] [--ca-path D]
 *		[--prometheus FILE]
 * DESCRIPTION
 *	For every fingerprint entry (or each KEY), asks the library's
 *	delivery model what Postfix's SMTP client does with the value
 *	Postfix reads for it (the database's): which servers it tries, with
 *	which settings, and whether they present a pinned certificate; the
 *	verdict is the model's (tp_delivery_verdict). To it this command
 *	adds what is about the table rather than Postfix's client: a
 *	database out of step with the source, and what rotate would do with
 *	each certificate no pin matches (the trust module's verdict under
 *	--trust, in rotate's words, and its advice where a level without
 *	pins would do). The first output line is the
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

#include "json.h"
#include "prom.h"
#include "stuck.h"
#include "targets.h"

enum { EX_CHECK_UNKNOWN = 3 };

static void
check_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] check [KEY...] [--warn-days N]\n"
		"           [--critical-days N] [--jobs N] [--timeout S] [--json]\n"
		"           [--trust LIST] [--ca-file FILE] [--ca-path DIR]\n"
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
		"            within --critical-days; for the whole check, a main.cf\n"
		"            that cannot be used (unreadable, or a macro loop Postfix\n"
		"            stops on)\n"
		"  WARNING   some servers match and some do not (deliveries are slowed),\n"
		"            a pinned certificate expires within --warn-days, or the\n"
		"            .db is out of step with the source\n"
		"  UNKNOWN   nothing could be probed (DNS failure, no answer)\n"
		"Mail in Postfix's queue deferred for an entry with a TLS failure (read with\n"
		"postqueue -j, routed as Postfix routes it) makes the entry CRITICAL: \"N\n"
		"messages deferred, oldest T ago\".\n"
		"The first line is a summary with performance data, then one line per\n"
		"entry.\n"
		"\n"
		"  --warn-days N      warn this many days before expiry (default 30)\n"
		"  --critical-days N  CRITICAL this many days before expiry (default: never)\n"
		"  --jobs N           connections at once (default 16)\n"
		"  --timeout S        seconds allowed per address (default 30)\n"
		"  --json             all details as JSON\n"
		"  --trust LIST       the trust policy rotate runs with (default\n"
		"                     same-key,pkix,dane): each certificate no pin matches\n"
		"                     is said to be one rotate would pin, or refuses, and why\n"
		"  --ca-file FILE     CAs for rotate's pkix evidence, as for rotate (default:\n"
		"  --ca-path DIR      main.cf's smtp_tls_CAfile, smtp_tls_CApath, else the\n"
		"                     system's; main.cf's that do not load leave Postfix\n"
		"                     without TLS: CRITICAL for every entry that needs it);\n"
		"                     level secure is advised (no pins needed) only when\n"
		"                     every server is CA-valid for the next hop by\n"
		"                     main.cf's CAs, the ones Postfix verifies with\n"
		"  --prometheus FILE  also write the results as a node_exporter textfile\n"
		"                     (FILE ending in .prom, replaced atomically): per\n"
		"                     entry status, days until the pinned certificate\n"
		"                     expires, last successful probe (kept from FILE while\n"
		"                     a host fails)\n"
		"\n"
		"Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the worst of\n"
		"CRITICAL > WARNING > UNKNOWN > OK), 64 usage error.\n");
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
	bad |= cli_jset(p, "host", cli_jstr(s->host));
	bad |= cli_jset(p, "address", cli_jstr(s->address));
	bad |= cli_jset(p, "port", json_integer(s->port));
	bad |= cli_jset(p, "preference", json_integer(s->preference));
	bad |= cli_jset(p, "tried", json_string(s->tried == TP_TRY_YES ? "yes"
					      : s->tried == TP_TRY_MAYBE ? "maybe" : "no"));
	bad |= cli_jset(p, "outcome", json_string(tp_outcome_name(s->outcome)));
	bad |= cli_jset(p, "error", cli_jstr(s->error));
	if (r != NULL) {
		bad |= cli_jset(p, "servername", cli_jstr(r->servername));
		bad |= cli_jset(p, "elapsed", json_real(r->elapsed));
	}
	if (r != NULL && r->status == TP_OK && r->chain_len > 0) {
		const tp_probe_cert *leaf = &r->chain[0];

		bad |= cli_jset(p, "pinned", json_boolean(s->outcome == TP_OUTCOME_MATCH));
		bad |= cli_jset(p, "fingerprint", json_string(leaf->fingerprint));
		bad |= cli_jset(p, "pkey_fingerprint", json_string(leaf->pkey_fingerprint));
		bad |= cli_jset(p, "subject", json_string(leaf->subject));
		bad |= cli_jset(p, "issuer", json_string(leaf->issuer));
		bad |= cli_jset(p, "not_before", json_string(cli_iso_time(date, sizeof(date), leaf->not_before)));
		bad |= cli_jset(p, "not_after", json_string(cli_iso_time(date, sizeof(date), leaf->not_after)));
		bad |= cli_jset(p, "not_after_epoch", json_integer((json_int_t)leaf->not_after));
		bad |= cli_jset(p, "days_left", json_real(difftime(leaf->not_after, now) / 86400.0));
		bad |= cli_jset(p, "tls_version", cli_jstr(r->tls_version));
		bad |= cli_jset(p, "cipher", cli_jstr(r->cipher));
	}
	if (bad) {
		json_decref(p);
		return NULL;
	}
	return p;
}

static json_t *
deferred_json(const struct cli_stuck *stuck, const char *key, time_t now)
{
	const struct cli_stuck_entry *e = cli_stuck_find(stuck, key);
	json_t *o, *ids;
	char iso[32];
	int bad = 0;

	if (!stuck->available)
		return json_null();
	o = json_object();
	bad |= cli_jset(o, "messages", json_integer(e ? (json_int_t)e->messages : 0));
	bad |= cli_jset(o, "oldest", e && e->oldest ? json_string(cli_iso_time(iso, sizeof(iso), e->oldest))
			: json_null());
	bad |= cli_jset(o, "oldest_age_seconds", e && e->oldest ? json_integer((json_int_t)(now - e->oldest))
			: json_null());
	bad |= cli_jset(o, "reason", e ? json_string(tp_queue_tls_name(e->tls)) : json_null());
	bad |= cli_jset(o, "queue_ids", ids = json_array());
	for (size_t i = 0; e && ids && i < e->ids.count; i++)
		bad |= json_array_append_new(ids, json_string(e->ids.strings[i]));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
entry_json(const struct cli_target *t, const tp_delivery_key *k, const tp_verdict *v,
	   const tp_trust_result *tr, const char *digest, const struct cli_stuck *stuck,
	   time_t now)
{
	const tp_client_info *in = tp_client_settings_info(k->settings);
	json_t *o = json_object(), *a;
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= cli_jset(o, "key", json_string(t->key));
	bad |= cli_jset(o, "line", json_integer((json_int_t)t->line));
	bad |= cli_jset(o, "status", json_string(tp_state_name(v->state)));
	bad |= cli_jset(o, "value", json_string(t->value));
	bad |= cli_jset(o, "judged_value", cli_jstr(t->judged));
	bad |= cli_jset(o, "judged_from", json_string(t->judged_from));
	bad |= cli_jset(o, "judged_where", cli_jstr(t->judged_where));
	bad |= cli_jset(o, "db_in_step", json_boolean(!t->db_differs));
	bad |= cli_jset(o, "valid", json_boolean(in->valid));
	bad |= cli_jset(o, "problem", in->valid ? json_null() : json_string(in->problem));
	bad |= cli_jset(o, "level", json_string(tp_level_name(in->level)));
	bad |= cli_jset(o, "pin_kind", json_string(tp_pin_kind_name(t->kind)));
	bad |= cli_jset(o, "servers_from", cli_jstr(k->servers_from));
	bad |= cli_jset(o, "servername", json_string(in->servername));
	bad |= cli_jset(o, "protocols", json_string(in->protocols));
	bad |= cli_jset(o, "cipherlist", cli_jstr(in->cipherlist));
	bad |= cli_jset(o, "wrappermode", json_boolean(in->wrappermode));
	bad |= cli_jset(o, "bind_address", cli_jstr(*in->bind_address ? in->bind_address : NULL));
	bad |= cli_jset(o, "bind_address6", cli_jstr(*in->bind_address6 ? in->bind_address6 : NULL));
	bad |= cli_jset(o, "hosts", a = json_array());
	for (size_t i = 0; a && i < t->hosts.count; i++)
		bad |= json_array_append_new(a, json_string(t->hosts.strings[i]));
	bad |= cli_jset(o, "pins", a = json_array());
	for (size_t i = 0; a && i < in->pin_count; i++) {
		const char *pd = tp_pin_digest(in->pins[i]);
		json_t *p = json_object();

		bad |= json_array_append_new(a, p);
		bad |= cli_jset(p, "fingerprint", json_string(in->pins[i]));
		bad |= cli_jset(p, "digest", cli_jstr(pd));
		bad |= cli_jset(p, "digest_matches", json_boolean(pd && cli_digest_equal(pd, digest)));
	}
	bad |= cli_jset(o, "reasons", a = json_array());
	for (size_t i = 0; a && i < v->reason_count; i++) {
		json_t *p = json_object();

		bad |= json_array_append_new(a, p);
		bad |= cli_jset(p, "status", json_string(tp_state_name(v->reasons[i].state)));
		bad |= cli_jset(p, "text", json_string(v->reasons[i].text));
	}
	bad |= cli_jset(o, "candidates", cli_candidates_json(tr));
	bad |= cli_jset(o, "deferred", deferred_json(stuck, t->key, now));
	bad |= cli_jset(o, "servers", a = json_array());
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

/* Nagios: a one-line summary even when we cannot look at the entries. */
static int
early(int json, tp_state state, const char *what)
{
	char summary[TP_DIAG_MESSAGE_MAX + 64];

	if (prom_path != NULL)
		(void)cli_prom_write(prom_path, prom_table, NULL, 0, (int)state, time(NULL));
	snprintf(summary, sizeof(summary), "TLSPOLICY %s - %s", tp_state_name(state), what);
	if (json) {
		json_t *o = json_object();
		int bad = o == NULL;

		bad |= cli_jset(o, "status", json_string(tp_state_name(state)));
		bad |= cli_jset(o, "exit", json_integer((int)state));
		bad |= cli_jset(o, "summary", json_string(summary));
		bad |= cli_jset(o, "entries", json_array());
		if (bad || json_dumpf(o, stdout, JSON_PRESERVE_ORDER) != 0)
			printf("{\"status\": \"UNKNOWN\", \"exit\": 3, \"entries\": []}");
		putchar('\n');
		json_decref(o);
	} else
		printf("%s\n", summary);
	return (int)state;
}

static int
unknown(int json, const char *what)
{
	return early(json, TP_STATE_UNKNOWN, what);
}

/*
 * What rotate would do with what the servers present now, in its words,
 * and advice where a level without pins would do.
 */
static int
trust_reasons(tp_verdict *v, tp_trust *trust, const struct cli_targets *targets, size_t i,
	      tp_trust_result **result)
{
	const struct cli_target *t = &targets->v[i];
	tp_trust_hints h = TP_TRUST_HINTS_INIT;
	tp_trust_result *tr = NULL;
	tp_state fail = v->matched > 0 ? TP_STATE_WARNING : TP_STATE_CRITICAL;
	char buf[2600];
	int rc = 0;

	h.kind = t->kind;
	h.keys = (const char *const *)t->keys.strings;
	h.key_count = t->keys.count;
	h.held = t->next;
	h.held_since = t->since;
	if (trust == NULL)	/* main.cf's CAs do not load: no evidence to weigh */
		return 0;
	if (tp_trust_evaluate(&tr, trust, targets->delivery, t->dindex, &h, NULL) != 0)
		return -1;
	for (size_t j = 0; rc == 0 && j < tr->count; j++) {
		const tp_candidate *c = &tr->candidates[j];

		snprintf(buf, sizeof(buf), "rotate %s %s: %s",
			 c->trusted ? "would pin" : "refuses", c->fingerprint, c->why);
		rc = tp_verdict_add(v, c->trusted ? TP_STATE_OK : fail, buf);
	}
	if (rc == 0 && tr->all_dane)
		rc = tp_verdict_add(v, TP_STATE_OK, "every server matches DNSSEC-validated TLSA records: level dane-only would need no pins");
	/* Secure is advice only with the CAs Postfix verifies with. */
	if (rc == 0 && tr->all_pkix) {
		const char *advice =
		    tr->ca_source == TP_CA_POSTFIX || tr->ca_source == TP_CA_POSTFIX_AND_SYSTEM
		    ? ": level secure would need no pins"
		    : tr->ca_source == TP_CA_SYSTEM
		    ? " by the system's CAs, which Postfix does not use: level secure would need smtp_tls_CAfile or smtp_tls_CApath, then no pins"
		    : " by the CAs given: level secure would need no pins if smtp_tls_CAfile or smtp_tls_CApath holds them";

		snprintf(buf, sizeof(buf), "every server's certificate is CA-valid for %s%s",
			 tr->pkix_name, advice);
		rc = tp_verdict_add(v, TP_STATE_OK, buf);
	}
	*result = tr;
	return rc;
}

/* What the table says beside Postfix's client: a database out of step. */
static int
table_reasons(tp_verdict *v, const struct cli_target *t, tp_table *table,
	      tp_db_state state)
{
	char buf[2048];

	if (t->maps_note != NULL && tp_verdict_add(v, t->maps_state, t->maps_note) != 0)
		return -1;
	if (t->db_differs && strcmp(t->judged_from, "map") == 0)
		snprintf(buf, sizeof(buf), "%s is out of step with the source: run 'tlspolicy rebuild'",
			 tp_table_db_path(table));
	else if (t->db_differs && t->judged == NULL)
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

/* Mail waiting for the entry is mail not delivered: CRITICAL. */
static int
queue_reasons(tp_verdict *v, const struct cli_target *t, const struct cli_stuck *stuck,
	      time_t now)
{
	const struct cli_stuck_entry *e = cli_stuck_find(stuck, t->key);
	char buf[256];

	if (e == NULL || e->messages == 0)
		return 0;
	cli_stuck_words(buf, sizeof(buf), e, now);
	return tp_verdict_add(v, TP_STATE_CRITICAL, buf);
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
		{ "trust", required_argument, NULL, 'T' },
		{ "ca-file", required_argument, NULL, 'F' },
		{ "ca-path", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_delivery_opts dopts = TP_DELIVERY_OPTS_INIT;
	tp_trust_opts topts = TP_TRUST_OPTS_INIT;
	tp_trust *trust = NULL;
	const char *trust_list = TP_TRUST_DEFAULT;
	tp_verdict_opts vopts = TP_VERDICT_OPTS_INIT;
	struct cli_targets targets = { NULL, 0, NULL };
	tp_verdict **v = NULL;
	tp_trust_result **trs = NULL;
	struct cli_maps maps = { NULL, 0 };
	struct cli_stuck stuck;
	char unusable[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32];
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

	memset(&stuck, 0, sizeof(stuck));
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
		case 'T':
			trust_list = optarg;
			break;
		case 'F':
			topts.ca_file = optarg;
			break;
		case 'D':
			topts.ca_path = optarg;
			break;
		case 'h':
			check_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("check", ch, argv);
		}
	}
	if (tp_trust_policy_parse(&topts.policy, trust_list, &diag) != 0)
		return cli_usage("check", "--trust %s: %s", trust_list, diag.message);
	/* Postfix stops on a main.cf it cannot use: no mail goes out. */
	if (cli_config_unusable(cli, unusable, sizeof(unusable)))
		return early(json, TP_STATE_CRITICAL, unusable);
	if ((digest = cli_checked_digest(cli)) == NULL)
		return unknown(json, "no usable fingerprint digest");
	cli_delivery_defaults(cli, &dopts);
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS) {
		char why[TP_DIAG_MESSAGE_MAX];

		/* A list Postfix cannot use defers all mail: that is no doubt. */
		if (cli_maps_broken(cli, why, sizeof(why)))
			return early(json, TP_STATE_CRITICAL, why);
		return unknown(json, "cannot read the policy table");
	}
	prom_table = tp_table_source(table);
	if (tp_table_db_state(table, &db_state, &diag) != 0)
		db_state = TP_DB_STALE;
	cli_maps_open(cli, tp_map_type_name(tp_table_type(table)), tp_table_source(table), &maps);
	if (cli_stuck_read(cli, &maps, dopts.timeout, &stuck) != EX_SUCCESS) {
		rc = unknown(json, "out of memory");
		goto out;
	}
	if (cli_targets_collect(table, argv + optind, (size_t)(argc - optind), 1, &maps,
				&targets) != EX_SUCCESS) {
		rc = unknown(json, "cannot select the entries");
		goto out;
	}
	if (targets.n > 0 && cli_targets_run(cli, &targets, &dopts) != EX_SUCCESS) {
		rc = unknown(json, "probing failed");
		goto out;
	}
	if (targets.n > 0 && ((v = calloc(targets.n, sizeof(*v))) == NULL ||
			      (trs = calloc(targets.n, sizeof(*trs))) == NULL)) {
		rc = unknown(json, "out of memory");
		goto out;
	}
	now = cli_now();
	vopts.now = topts.now = now;
	/*
	 * CAs of --ca-file or --ca-path that do not load are the caller's to
	 * fix. main.cf's leave Postfix's SMTP client without TLS: that is the
	 * verdict of every entry that needs TLS, and check goes on to give it.
	 */
	if (targets.n > 0 && tp_trust_new(&trust, cli_config(cli), &topts, &diag) != 0 &&
	    (diag.status != TP_EIO || topts.ca_file != NULL || topts.ca_path != NULL)) {
		cli_error(&diag);
		rc = unknown(json, "cannot load the CA store");
		goto out;
	}
	for (size_t i = 0; i < targets.n; i++) {
		if (tp_delivery_verdict(&v[i], targets.delivery, targets.v[i].dindex, &vopts,
					&diag) != 0 ||
		    trust_reasons(v[i], trust, &targets, i, &trs[i]) != 0 ||
		    table_reasons(v[i], &targets.v[i], table, db_state) != 0 ||
		    queue_reasons(v[i], &targets.v[i], &stuck, now) != 0) {
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
			if (stuck.available) {
				const struct cli_stuck_entry *se = cli_stuck_find(&stuck, targets.v[i].key);

				pe[i].deferred = se ? (long)se->messages : 0;
			} else
				pe[i].deferred = -1;
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
	if (stuck.available) {
		size_t deferred = 0;

		for (size_t i = 0; i < targets.n; i++) {
			const struct cli_stuck_entry *se = cli_stuck_find(&stuck, targets.v[i].key);

			deferred += se ? se->messages : 0;
		}
		snprintf(perf + strlen(perf), sizeof(perf) - strlen(perf), " deferred=%zu", deferred);
	}
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
		bad |= cli_jset(root, "status", json_string(tp_state_name(worst)));
		bad |= cli_jset(root, "exit", json_integer((int)worst));
		bad |= cli_jset(root, "summary", json_string(summary));
		bad |= cli_jset(root, "table", json_string(tp_table_source(table)));
		bad |= cli_jset(root, "db_state", json_string(cli_db_state_name(db_state)));
		bad |= cli_jset(root, "digest", json_string(digest));
		bad |= cli_jset(root, "warn_days", json_integer(vopts.warn_days));
		bad |= cli_jset(root, "critical_days", vopts.critical_days >= 0
			    ? json_integer(vopts.critical_days) : json_null());
		bad |= cli_jset(root, "queue_read", json_boolean(stuck.available));
		bad |= cli_jset(root, "queue_error", stuck.available ? json_null() : json_string(stuck.why));
		for (size_t i = 0; i < targets.n; i++)
			bad |= json_array_append_new(entries,
						     entry_json(&targets.v[i], cli_target_key(&targets, i),
								v[i], trs[i], digest, &stuck, now));
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
	for (size_t i = 0; trs != NULL && i < targets.n; i++)
		tp_trust_result_free(trs[i]);
	free(v);
	free(trs);
	tp_trust_free(trust);
	cli_targets_free(&targets);
	cli_stuck_free(&stuck);
	cli_maps_close(&maps);
	tp_table_free(table);
	return rc;
}
