/*
 * NAME
 *	check - monitor the pins, Nagios style
 * SYNOPSIS
 *	tlspolicy check [KEY...] [--warn-days N] [--jobs N] [--timeout S] [--json]
 *		[--prometheus FILE]
 * DESCRIPTION
 *	Probes, all at once, where every fingerprint entry (or each KEY) is
 *	pinned from (targets.h) and rates each entry:
 *	CRITICAL  an address presents no pinned certificate or public key
 *		  (Postfix defers the mail: "Server certificate not
 *		  verified"), or Postfix would reject the entry;
 *	WARNING	  a pinned certificate presented expires within --warn-days
 *		  (or has expired), a pin is made with another digest than
 *		  the configured one, or the db does not hold the source's
 *		  value for the key;
 *	UNKNOWN	  an address could not be probed, or no host is known;
 *	OK	  otherwise.
 *	The first output line is the Nagios summary, then one line per
 *	entry; --json carries all details. --prometheus also writes the
 *	states, pin expiry and last successful probe to a node_exporter
 *	textfile (prom.h), even when the check fails early.
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

enum state { ST_OK = 0, ST_UNKNOWN = 1, ST_WARNING = 2, ST_CRITICAL = 3 };

static const char *const state_names[] = { "OK", "UNKNOWN", "WARNING", "CRITICAL" };
static const int state_exit[] = { 0, 3, 1, 2 };

enum { EX_CHECK_UNKNOWN = 3 };

static void
check_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] check [KEY...] [--warn-days N] [--jobs N]\n"
		"           [--timeout S] [--json] [--prometheus FILE]\n"
		"\n"
		"Monitor the pins (Nagios/Icinga plugin). For every fingerprint entry (or\n"
		"each KEY), probe where it is pinned from, all at once, and rate it:\n"
		"  CRITICAL  a server presents no pinned certificate any more (Postfix\n"
		"            defers the mail), or Postfix would reject the entry\n"
		"  WARNING   a pinned certificate presented expires within --warn-days,\n"
		"            a pin is made with another digest than the configured one,\n"
		"            or the .db is out of step with the source\n"
		"  UNKNOWN   a server cannot be reached, or no host is known\n"
		"The first line is a summary, then one line per entry.\n"
		"\n"
		"  --warn-days N  warn this many days before expiry (default 30)\n"
		"  --jobs N       connections at once (default 16)\n"
		"  --timeout S    seconds allowed per address (default 30)\n"
		"  --json         all details as JSON\n"
		"  --prometheus FILE  also write the results as a node_exporter textfile\n"
		"                 (FILE ending in .prom, replaced atomically): per entry\n"
		"                 status, days until the pinned certificate expires, last\n"
		"                 successful probe (kept from FILE while a host fails)\n"
		"\n"
		"Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the worst of\n"
		"CRITICAL > WARNING > UNKNOWN > OK), 64 usage error.\n");
}

struct verdict {
	enum state state;
	tp_strarray reasons;	/* "STATE: text", worst first when printed */
	tp_strarray reason_states;
	int db_in_step;
	time_t not_after;	/* earliest pinned certificate presented; 0: none */
	int probe_ok;		/* every address probed, a certificate seen */
	int bad;		/* out of memory */
};

static void reason(struct verdict *v, enum state s, const char *fmt, ...)
	TP_CLI_PRINTF(3, 4);

static void
reason(struct verdict *v, enum state s, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (s > v->state)
		v->state = s;
	if (cli_strarray_push(&v->reasons, buf) != 0 ||
	    cli_strarray_push(&v->reason_states, state_names[s]) != 0)
		v->bad = 1;
}

static void
judge(struct verdict *v, const struct cli_target *t, const tp_prober *prober,
      tp_table *table, const char *digest, long warn_days, time_t now)
{
	const tp_probe_result *r;
	size_t cur = 0, pinned = 0, want = tp_digest_size(digest);
	time_t earliest = 0;
	tp_buf val = TP_BUF_INIT;
	tp_diag diag = TP_DIAG_INIT;
	char label[600], date[32];
	int lrc;

	if (!t->valid)
		reason(v, ST_CRITICAL, "Postfix would reject this entry (%s): mail to it is deferred",
		       t->problem);
	if (t->host_error != NULL)
		reason(v, ST_UNKNOWN, "%s", t->host_error);
	v->probe_ok = t->probed && t->host_error == NULL;
	if (t->probed && cli_target_result_at(prober, t, &cur) == NULL)
		v->probe_ok = 0;	/* nothing was probed */
	cur = 0;
	while (t->probed && (r = cli_target_result_at(prober, t, &cur)) != NULL) {
		const tp_probe_cert *leaf;
		double days;

		cli_result_label(label, sizeof(label), r);
		if (r->status != TP_OK || r->chain_len == 0) {
			reason(v, ST_UNKNOWN, "%s", r->status != TP_OK ? r->error : "no certificate");
			v->probe_ok = 0;
			continue;
		}
		leaf = &r->chain[0];
		if (!cli_target_pinned(t, leaf)) {
			reason(v, ST_CRITICAL, "%s presents %s cert %s (%s, issuer %s, until %s), not pinned: Postfix defers mail (Server certificate not verified)",
			       label, digest, leaf->fingerprint, leaf->subject, leaf->issuer,
			       cli_iso_time(date, sizeof(date), leaf->not_after));
			continue;
		}
		pinned++;
		if (earliest == 0 || leaf->not_after < earliest)
			earliest = leaf->not_after;
		days = difftime(leaf->not_after, now) / 86400.0;
		if (leaf->not_after < now)
			reason(v, ST_WARNING, "%s: pinned certificate %s expired on %s (Postfix still accepts it at this level; expect it to be replaced)",
			       label, leaf->subject, cli_iso_time(date, sizeof(date), leaf->not_after));
		else if (days < (double)warn_days)
			reason(v, ST_WARNING, "%s: pinned certificate %s expires in %ld day%s (%s)",
			       label, leaf->subject, (long)days, (long)days == 1 ? "" : "s",
			       cli_iso_time(date, sizeof(date), leaf->not_after));
	}
	v->not_after = earliest;
	for (size_t i = 0; i < tp_policy_pin_count(t->policy); i++) {
		const char *pin = tp_policy_pin_at(t->policy, i);
		const char *pd = tp_pin_digest(pin);

		if ((strlen(pin) + 1) / 3 != want)
			reason(v, ST_WARNING, "pin %s is %s, but Postfix compares %s fingerprints: it never matches",
			       pin, pd ? pd : "of no known digest", digest);
	}
	lrc = tp_map_lookup(tp_table_type(table), tp_table_db_path(table), t->key, &val, &diag);
	v->db_in_step = lrc == 0 && val.size == strlen(t->value)
	    && memcmp(val.ptr, t->value, val.size) == 0;
	if (lrc == TP_ENOTFOUND)
		reason(v, ST_WARNING, "%s lacks the entry: run 'tlspolicy rebuild'", tp_table_db_path(table));
	else if (lrc != 0)
		reason(v, ST_WARNING, "%s", diag.message);
	else if (!v->db_in_step)
		reason(v, ST_WARNING, "%s holds another value than the source (\"%s\"): run 'tlspolicy rebuild'",
		       tp_table_db_path(table), val.ptr);
	tp_buf_dispose(&val);
	if (v->state == ST_OK)
		reason(v, ST_OK, "%zu address%s present%s a pinned %s; expires %s",
		       pinned, pinned == 1 ? "" : "es", pinned == 1 ? "s" : "",
		       t->kind == TP_PIN_PKEY ? "public key" : "certificate",
		       cli_iso_time(date, sizeof(date), earliest));
}

static int
jset(json_t *o, const char *k, json_t *v)
{
	return v == NULL || json_object_set_new(o, k, v) != 0 ? -1 : 0;
}

static json_t *
entry_json(const struct cli_target *t, const struct verdict *v, const tp_prober *prober,
	   const char *digest, time_t now)
{
	json_t *o = json_object(), *a;
	const tp_probe_result *r;
	size_t cur = 0;
	char date[32];
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= jset(o, "key", json_string(t->key));
	bad |= jset(o, "line", json_integer((json_int_t)t->line));
	bad |= jset(o, "status", json_string(state_names[v->state]));
	bad |= jset(o, "value", json_string(t->value));
	bad |= jset(o, "valid", json_boolean(t->valid));
	bad |= jset(o, "problem", t->problem ? json_string(t->problem) : json_null());
	bad |= jset(o, "pin_kind", json_string(tp_pin_kind_name(t->kind)));
	bad |= jset(o, "hosts_from", t->hosts_from ? json_string(t->hosts_from) : json_null());
	bad |= jset(o, "servername", t->sni ? json_string(t->sni) : json_null());
	bad |= jset(o, "db_in_step", json_boolean(v->db_in_step));
	bad |= jset(o, "hosts", a = json_array());
	for (size_t i = 0; a && i < t->hosts.count; i++)
		bad |= json_array_append_new(a, json_string(t->hosts.strings[i]));
	bad |= jset(o, "pins", a = json_array());
	for (size_t i = 0; a && i < tp_policy_pin_count(t->policy); i++) {
		const char *pin = tp_policy_pin_at(t->policy, i), *pd = tp_pin_digest(pin);
		json_t *p = json_object();

		bad |= json_array_append_new(a, p);
		bad |= jset(p, "fingerprint", json_string(pin));
		bad |= jset(p, "digest", pd ? json_string(pd) : json_null());
		bad |= jset(p, "digest_matches", json_boolean(pd && cli_digest_equal(pd, digest)));
	}
	bad |= jset(o, "reasons", a = json_array());
	for (size_t i = 0; a && i < v->reasons.count; i++) {
		json_t *p = json_object();

		bad |= json_array_append_new(a, p);
		bad |= jset(p, "status", json_string(v->reason_states.strings[i]));
		bad |= jset(p, "text", json_string(v->reasons.strings[i]));
	}
	bad |= jset(o, "addresses", a = json_array());
	while (a && t->probed && (r = cli_target_result_at(prober, t, &cur)) != NULL) {
		json_t *p = json_object();

		bad |= json_array_append_new(a, p);
		bad |= jset(p, "target", json_string(r->target_spec));
		bad |= jset(p, "host", json_string(r->host));
		bad |= jset(p, "address", r->address ? json_string(r->address) : json_null());
		bad |= jset(p, "port", json_integer(r->port));
		bad |= jset(p, "ok", json_boolean(r->status == TP_OK && r->chain_len > 0));
		bad |= jset(p, "error", r->status == TP_OK ? json_null() : json_string(r->error));
		bad |= jset(p, "elapsed", json_real(r->elapsed));
		if (r->status != TP_OK || r->chain_len == 0)
			continue;
		bad |= jset(p, "pinned", json_boolean(cli_target_pinned(t, &r->chain[0])));
		bad |= jset(p, "fingerprint", json_string(r->chain[0].fingerprint));
		bad |= jset(p, "pkey_fingerprint", json_string(r->chain[0].pkey_fingerprint));
		bad |= jset(p, "subject", json_string(r->chain[0].subject));
		bad |= jset(p, "issuer", json_string(r->chain[0].issuer));
		bad |= jset(p, "not_before", json_string(cli_iso_time(date, sizeof(date), r->chain[0].not_before)));
		bad |= jset(p, "not_after", json_string(cli_iso_time(date, sizeof(date), r->chain[0].not_after)));
		bad |= jset(p, "not_after_epoch", json_integer((json_int_t)r->chain[0].not_after));
		bad |= jset(p, "days_left", json_real(difftime(r->chain[0].not_after, now) / 86400.0));
		bad |= jset(p, "tls_version", json_string(r->tls_version));
	}
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

int
cmd_check(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "warn-days", required_argument, NULL, 'w' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'J' },
		{ "prometheus", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_probe_opts popts = TP_PROBE_OPTS_INIT;
	struct cli_targets targets = { NULL, 0 };
	struct verdict *v = NULL;
	tp_prober *prober = NULL;
	tp_table *table = NULL;
	const char *digest;
	long warn_days = 30, jobs;
	size_t count[4] = { 0, 0, 0, 0 };
	enum state worst = ST_OK;
	int json = 0, ch, rc = EX_CHECK_UNKNOWN;
	time_t now;
	char *end, summary[256];
	json_t *root = NULL, *entries = NULL;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 'w':
			warn_days = strtol(optarg, &end, 10);
			if (end == optarg || *end || warn_days < 0 || warn_days > 36500)
				return cli_usage("check", "--warn-days %s: say 0 to 36500", optarg);
			break;
		case 'j':
			jobs = strtol(optarg, &end, 10);
			if (end == optarg || *end || jobs < 1 || jobs > 1024)
				return cli_usage("check", "--jobs %s: say 1 to 1024", optarg);
			popts.jobs = (unsigned int)jobs;
			break;
		case 't':
			if ((popts.timeout = cli_parse_seconds(optarg)) < 0)
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
	popts.digest = digest;
	cli_probe_defaults(cli, &popts);
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		return unknown(json, "cannot read the policy table");
	prom_table = tp_table_source(table);
	if (cli_targets_collect(tp_table_doc(table), argv + optind,
				(size_t)(argc - optind), 1, &targets) != EX_SUCCESS) {
		rc = unknown(json, "cannot select the entries");
		goto out;
	}
	if (targets.n > 0 && cli_targets_probe(cli, &targets, &popts, &prober) != EX_SUCCESS) {
		rc = unknown(json, "probing failed");
		goto out;
	}
	if (targets.n > 0 && (v = calloc(targets.n, sizeof(*v))) == NULL) {
		rc = unknown(json, "out of memory");
		goto out;
	}
	now = time(NULL);
	for (size_t i = 0; i < targets.n; i++) {
		judge(&v[i], &targets.v[i], prober, table, digest, warn_days, now);
		if (v[i].bad) {
			rc = unknown(json, "out of memory");
			goto out;
		}
		count[v[i].state]++;
		if (v[i].state > worst)
			worst = v[i].state;
	}
	if (prom_path != NULL) {
		struct cli_prom_entry *pe = calloc(targets.n + 1, sizeof(*pe));

		for (size_t i = 0; pe != NULL && i < targets.n; i++) {
			pe[i].key = targets.v[i].key;
			pe[i].status = state_exit[v[i].state];
			pe[i].not_after = v[i].not_after;
			pe[i].probe_ok = v[i].probe_ok;
		}
		if (pe == NULL) {
			rc = unknown(json, "out of memory");
			goto out;
		}
		/* A monitor that cannot report is not OK: UNKNOWN at least. */
		if (cli_prom_write(prom_path, prom_table, pe, targets.n,
				   state_exit[worst],
				   now) != 0 && worst < ST_UNKNOWN)
			worst = ST_UNKNOWN;
		free(pe);
	}
	if (targets.n == 0)
		snprintf(summary, sizeof(summary), "TLSPOLICY OK - no fingerprint entries in %s",
			 tp_table_source(table));
	else
		snprintf(summary, sizeof(summary),
			 "TLSPOLICY %s - %zu critical, %zu warning, %zu unknown, %zu ok",
			 state_names[worst], count[ST_CRITICAL], count[ST_WARNING],
			 count[ST_UNKNOWN], count[ST_OK]);
	if (json) {
		int bad = 0;

		root = json_object();
		entries = json_array();
		if (root == NULL || entries == NULL) {
			rc = unknown(json, "out of memory");
			goto out;
		}
		bad |= jset(root, "status", json_string(state_names[worst]));
		bad |= jset(root, "exit", json_integer(state_exit[worst]));
		bad |= jset(root, "summary", json_string(summary));
		bad |= jset(root, "table", json_string(tp_table_source(table)));
		bad |= jset(root, "digest", json_string(digest));
		bad |= jset(root, "warn_days", json_integer(warn_days));
		for (size_t i = 0; i < targets.n; i++)
			bad |= json_array_append_new(entries,
						     entry_json(&targets.v[i], &v[i], prober, digest, now));
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
		for (int s = ST_CRITICAL; s >= ST_OK; s--)
			for (size_t i = 0; i < targets.n; i++) {
				if ((int)v[i].state != s)
					continue;
				printf("%s %s:", state_names[s], targets.v[i].key);
				for (size_t k = 0, first = 1; k < v[i].reasons.count; k++) {
					/* Only the reasons that make the state, then the rest. */
					if (strcmp(v[i].reason_states.strings[k], state_names[s]) != 0)
						continue;
					printf("%s %s", first ? "" : ";", v[i].reasons.strings[k]);
					first = 0;
				}
				for (size_t k = 0; k < v[i].reasons.count; k++)
					if (strcmp(v[i].reason_states.strings[k], state_names[s]) != 0)
						printf("; %s: %s", v[i].reason_states.strings[k],
						       v[i].reasons.strings[k]);
				putchar('\n');
			}
	}
	rc = state_exit[worst];
out:
	json_decref(entries);
	json_decref(root);
	for (size_t i = 0; v && i < targets.n; i++) {
		tp_strarray_dispose(&v[i].reasons);
		tp_strarray_dispose(&v[i].reason_states);
	}
	free(v);
	tp_prober_free(prober);
	cli_targets_free(&targets);
	tp_table_free(table);
	return rc;
}
