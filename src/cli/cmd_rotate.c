/*
 * NAME
 *	rotate - re-pin entries whose servers present a new certificate
 * SYNOPSIS
 *	tlspolicy rotate [KEY...] [--yes] [--dry-run] [--keep-old] [--jobs N]
 *		[--timeout S] [--reload] [--postfix-command PATH]
 * DESCRIPTION
 *	Probes, all at once, where every fingerprint entry (or each KEY) is
 *	pinned from (targets.h). An entry is stale when some address no
 *	longer presents a leaf matching its pins; its new pins are every
 *	fingerprint of its pin kind presented now (after the old ones with
 *	--keep-old). For certificate pins the annotation's keys= (public
 *	keys of the pinned certificates) tells whether the key changed, and
 *	is rewritten with the keys of the new pin set (removed when a kept
 *	old pin's key was never recorded). The plan shows each change; it is
 *	written with --yes,
 *	or after "yes" typed at a terminal, in one table commit under the
 *	lock. Probing happens without the lock (it can take --timeout); under
 *	the lock each entry is read again, and one changed meanwhile (by a
 *	concurrent set, or by hand) is left alone and reported.
 * DIAGNOSTICS
 *	Exit 0 when all pins are current or were rotated (and reloaded); 1
 *	when an entry could not be probed or was changed meanwhile, when the
 *	plan was not confirmed, when --dry-run shows pending changes, or
 *	when the reload failed; 64 usage.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "targets.h"

static void
rotate_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] rotate [KEY...] [--yes] [--dry-run]\n"
		"           [--keep-old] [--jobs N] [--timeout S] [--reload]\n"
		"           [--postfix-command PATH]\n"
		"\n"
		"For every fingerprint entry (or each KEY), probe where it is pinned from\n"
		"(the hosts recorded above it by set --fingerprint-from; else the host of a\n"
		"[host]:port or host:port key; else the MX hosts of the domain), all at\n"
		"once. Where some address no longer presents a pinned certificate or public\n"
		"key, replace the pins by what the servers present now, and show each\n"
		"change: old and new fingerprints, subject, issuer, validity, and whether\n"
		"the public key changed. For certificate pins that answer comes from the\n"
		"public keys recorded above the entry (keys=, written by set\n"
		"--fingerprint-from and by rotate itself); without them it is 'unknown'.\n"
		"\n"
		"  --yes                write without asking; otherwise the plan is shown\n"
		"                       and written only after 'yes' typed at a terminal\n"
		"                       (exit 1 when there is no terminal)\n"
		"  --dry-run            show the plan and the unified diff, write nothing\n"
		"                       (exit 1 when changes are pending)\n"
		"  --keep-old           keep the old pins beside the new ones (Postfix\n"
		"                       accepts any of them)\n"
		"  --jobs N             connections at once (default 16)\n"
		"  --timeout S          seconds allowed per address (default 30)\n"
		"  --reload             run 'postfix -c DIR reload' when something changed\n"
		"  --postfix-command P  the postfix program for --reload\n"
		"                       (default: $command_directory/postfix of main.cf)\n"
		"\n"
		"Unreachable hosts leave their entry untouched and make the exit status 1;\n"
		"the other entries are still rotated. Nothing to do: 'all pins current',\n"
		"exit 0.\n");
}

struct change {
	struct cli_target *t;
	tp_strarray pins;	/* the new pin set */
	tp_strarray keys;	/* its public keys (keys=), when known */
	int keys_known;
	int done;		/* written */
};

/* The recorded keys=, when made with the configured digest. */
static int
have_keys(const struct cli_target *t, const char *digest)
{
	size_t want = tp_digest_size(digest);

	if (t->kind != TP_PIN_CERT || t->keys.count == 0)
		return 0;
	for (size_t i = 0; i < t->keys.count; i++)
		if ((strlen(t->keys.strings[i]) + 1) / 3 != want)
			return 0;
	return 1;
}

/*
 * keys= after rotation: every public key presented now, after the old
 * recorded ones when old pins are kept; unknown (keys= removed) when an
 * old pin is kept whose key was not recorded, and for pkey pins.
 */
static int
new_key_set(struct change *c, const tp_prober *prober, int keep_old, const char *digest)
{
	const struct cli_target *t = c->t;
	const tp_probe_result *r;
	size_t cur = 0;

	c->keys_known = t->kind == TP_PIN_CERT;
	if (c->keys_known && keep_old && tp_policy_pin_count(t->policy) > 0) {
		c->keys_known = have_keys(t, digest);
		for (size_t i = 0; c->keys_known && i < t->keys.count; i++)
			if (!cli_strarray_has(&c->keys, t->keys.strings[i])
			    && cli_strarray_push(&c->keys, t->keys.strings[i]) != 0)
				return -1;
	}
	while (c->keys_known && (r = cli_target_result_at(prober, t, &cur)) != NULL)
		if (r->status == TP_OK && r->chain_len > 0
		    && !cli_strarray_has(&c->keys, r->chain[0].pkey_fingerprint)
		    && cli_strarray_push(&c->keys, r->chain[0].pkey_fingerprint) != 0)
			return -1;
	return 0;
}

/* Old pins that can still match (configured digest) first, then the new. */
static int
new_pin_set(const struct cli_target *t, const struct cli_eval *ev, int keep_old,
	    const char *digest, tp_strarray *out)
{
	size_t want = tp_digest_size(digest);

	if (keep_old)
		for (size_t i = 0; i < tp_policy_pin_count(t->policy); i++) {
			const char *pin = tp_policy_pin_at(t->policy, i);

			if ((strlen(pin) + 1) / 3 == want && !cli_strarray_has(out, pin)
			    && cli_strarray_push(out, pin) != 0)
				return -1;
		}
	for (size_t i = 0; i < ev->presented.count; i++)
		if (!cli_strarray_has(out, ev->presented.strings[i])
		    && cli_strarray_push(out, ev->presented.strings[i]) != 0)
			return -1;
	return 0;
}

static void
print_change(const struct change *c, const tp_prober *prober, const char *digest,
	     const char *source)
{
	const struct cli_target *t = c->t;
	const tp_probe_result *r;
	size_t cur = 0;
	char nb[32], na[32];

	printf("%s (%s:%lu): %s pins stale, hosts from %s\n", t->key, source, t->line,
	       t->kind == TP_PIN_PKEY ? "pkey" : "cert", t->hosts_from);
	for (size_t i = 0; i < tp_policy_pin_count(t->policy); i++) {
		const char *pin = tp_policy_pin_at(t->policy, i);

		printf("  %s %s %s%s\n", i == 0 ? "old:" : "    ", pin,
		       cli_strarray_has(&c->pins, pin) ? "(kept)" : "(removed)",
		       tp_digest_size(digest) * 3 - 1 == strlen(pin) ? ""
		       : " [not a configured-digest pin: never matched]");
	}
	if (tp_policy_pin_count(t->policy) == 0)
		printf("  old: (none)\n");
	for (size_t i = 0; i < c->pins.count; i++)
		printf("  %s %s\n", i == 0 ? "new:" : "    ", c->pins.strings[i]);
	while ((r = cli_target_result_at(prober, t, &cur)) != NULL) {
		const tp_probe_cert *leaf = &r->chain[0];
		const char *key_changed;
		const tp_probe_result *o;
		size_t cur2 = 0;

		char label[600];

		cli_result_label(label, sizeof(label), r);
		if (cli_target_pinned(t, leaf)) {
			printf("  %s: presents a pinned certificate (unchanged)\n", label);
			continue;
		}
		/* Did the key change? A pkey pin not matching says yes; for cert
		 * pins, the keys recorded above the entry (keys=) say; without
		 * them, another address still presenting a pinned certificate. */
		key_changed = t->kind == TP_PIN_PKEY ? "yes" : "unknown (cert pins do not record the key)";
		if (have_keys(t, digest))
			key_changed = cli_strarray_has(&t->keys, leaf->pkey_fingerprint) ? "no" : "yes";
		else
			while ((o = cli_target_result_at(prober, t, &cur2)) != NULL)
				if (cli_target_pinned(t, &o->chain[0]))
					key_changed = strcmp(o->chain[0].pkey_fingerprint,
							     leaf->pkey_fingerprint) ? "yes" : "no";
		printf("  %s: presents %s %s\n", label,
		       t->kind == TP_PIN_PKEY ? "pkey" : "cert",
		       t->kind == TP_PIN_PKEY ? leaf->pkey_fingerprint : leaf->fingerprint);
		printf("      subject: %s\n      issuer:  %s\n", leaf->subject, leaf->issuer);
		printf("      valid:   %s to %s%s\n", cli_iso_time(nb, sizeof(nb), leaf->not_before),
		       cli_iso_time(na, sizeof(na), leaf->not_after),
		       leaf->not_after < time(NULL) ? " (expired)" : "");
		printf("      public key changed: %s\n", key_changed);
	}
}

/* Would the entry's value, with these pins, be one Postfix accepts? */
static int
check_new_value(const struct change *c, const tp_doc_opts *dopts, char *why, size_t size)
{
	tp_buf line = TP_BUF_INIT, val = TP_BUF_INIT;
	tp_doc *doc = NULL;
	tp_policy *p = NULL;
	tp_diag diag = TP_DIAG_INIT;
	tp_entry e;
	size_t n;
	int ok = -1;
	char *s;

	n = strlen(c->t->value) + 8;
	if ((s = malloc(n)) == NULL)
		return -1;
	snprintf(s, n, "k\t%s\n", c->t->value);
	if (tp_doc_parse(&doc, s, strlen(s), "-", dopts) == 0
	    && tp_doc_set_pins(doc, 0, (const char *const *)c->pins.strings, c->pins.count) == 0
	    && tp_doc_entry_at(doc, 0, &e) == 0) {
		int rc = tp_policy_parse(&p, e.value, e.value_len, &diag);

		ok = rc == 0;
		if (!ok)
			snprintf(why, size, "%s", diag.message);
	}
	tp_policy_free(p);
	tp_doc_free(doc);
	tp_buf_dispose(&line);
	tp_buf_dispose(&val);
	free(s);
	return ok;
}

/*
 * Apply the changes to doc: only to entries whose value is still the one
 * probed. Returns how many were applied; *moved counts those changed
 * meanwhile (reported), -1 on no memory.
 */
static int
apply(tp_doc *doc, struct change *ch, size_t nch, const char *source, int report,
      size_t *moved)
{
	int applied = 0;

	*moved = 0;
	for (size_t i = 0; i < nch; i++) {
		struct cli_target *t = ch[i].t;
		size_t idx;
		tp_entry e;

		if (tp_doc_find(doc, t->key, &idx) != 0
		    || tp_doc_entry_at(doc, idx, &e) != 0
		    || e.value_len != strlen(t->value)
		    || memcmp(e.value, t->value, e.value_len) != 0) {
			(*moved)++;
			if (report)
				cli_errorf("%s: %s: changed while probing (by another tlspolicy or by hand); not rotated, run rotate again",
					   source, t->key);
			continue;
		}
		if (tp_doc_set_pins(doc, idx, (const char *const *)ch[i].pins.strings,
				    ch[i].pins.count) != 0
		    || tp_doc_set_annotation_keys(doc, idx, (const char *const *)ch[i].keys.strings,
						  ch[i].keys_known ? ch[i].keys.count : 0) != 0)
			return -1;
		ch[i].done = 1;
		applied++;
	}
	return applied;
}

static int
confirm(void)
{
	char line[64];

	if (!isatty(0))
		return 0;
	fprintf(stdout, "Write these changes? Type 'yes' to confirm: ");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, "yes") == 0;
}

int
cmd_rotate(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "yes", no_argument, NULL, 'y' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "keep-old", no_argument, NULL, 'k' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "reload", no_argument, NULL, 'r' },
		{ "postfix-command", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_probe_opts popts = TP_PROBE_OPTS_INIT;
	int yes = 0, dry_run = 0, keep_old = 0, reload = 0, ch, rc = EX_FAIL;
	int failed = 0;
	const char *postfix_command = NULL, *digest;
	struct cli_targets targets = { NULL, 0 };
	struct change *changes = NULL;
	size_t nchanges = 0, moved;
	tp_prober *prober = NULL;
	tp_table *table = NULL;
	tp_buf before = TP_BUF_INIT, after = TP_BUF_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_doc_opts dopts;
	char *end;
	long jobs;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 'y':
			yes = 1;
			break;
		case 'n':
			dry_run = 1;
			break;
		case 'k':
			keep_old = 1;
			break;
		case 'j':
			jobs = strtol(optarg, &end, 10);
			if (end == optarg || *end || jobs < 1 || jobs > 1024)
				return cli_usage("rotate", "--jobs %s: say 1 to 1024", optarg);
			popts.jobs = (unsigned int)jobs;
			break;
		case 't':
			if ((popts.timeout = cli_parse_seconds(optarg)) < 0)
				return cli_usage("rotate", "--timeout %s: say a number of seconds", optarg);
			break;
		case 'r':
			reload = 1;
			break;
		case 'P':
			postfix_command = optarg;
			break;
		case 'h':
			rotate_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("rotate", ch, argv);
		}
	}
	if ((digest = cli_checked_digest(cli)) == NULL)
		return EX_FAIL;
	popts.digest = digest;
	cli_probe_defaults(cli, &popts);
	dopts = cli_doc_opts(cli);

	/* Probe without the lock: it may take --timeout. */
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		goto out;
	if (cli_targets_collect(tp_table_doc(table), argv + optind,
				(size_t)(argc - optind), 0, &targets) != EX_SUCCESS)
		goto out;
	if (targets.n == 0) {
		if (!cli->quiet)
			printf("no fingerprint entries in %s\n", tp_table_source(table));
		rc = EX_SUCCESS;
		goto out;
	}
	if (cli_targets_probe(cli, &targets, &popts, &prober) != EX_SUCCESS)
		goto out;
	if ((changes = calloc(targets.n, sizeof(*changes))) == NULL) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	for (size_t i = 0; i < targets.n; i++) {
		struct cli_target *t = &targets.v[i];
		struct cli_eval ev;
		const tp_probe_result *r;
		size_t cur = 0;
		char why[TP_DIAG_MESSAGE_MAX];

		if (t->host_error != NULL) {
			cli_errorf("%s: not rotated: %s", t->key, t->host_error);
			failed = 1;
			continue;
		}
		if (cli_target_eval(t, prober, &ev) != 0) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		if (!ev.reachable) {
			while ((r = cli_target_result_at(prober, t, &cur)) != NULL)
				if (r->status != TP_OK)
					cli_errorf("%s: %s", t->key, r->error);
			cli_errorf("%s: not rotated: %zu of %zu address%s could not be probed",
				   t->key, ev.failed, ev.addresses, ev.addresses == 1 ? "" : "es");
			failed = 1;
		} else if (!ev.matched) {
			struct change *c = &changes[nchanges];

			c->t = t;
			if (new_pin_set(t, &ev, keep_old, digest, &c->pins) != 0
			    || new_key_set(c, prober, keep_old, digest) != 0) {
				cli_eval_dispose(&ev);
				rc = cli_errorf("out of memory");
				goto out;
			}
			if (check_new_value(c, &dopts, why, sizeof(why)) == 0) {
				cli_errorf("%s:%lu: %s: not rotated: Postfix would reject the entry even with new pins (%s)",
					   tp_table_source(table), t->line, t->key, why);
				tp_strarray_dispose(&c->pins);
				tp_strarray_dispose(&c->keys);
				failed = 1;
			} else
				nchanges++;
		} else if (cli->verbose)
			fprintf(stderr, "tlspolicy: %s: pins current\n", t->key);
		cli_eval_dispose(&ev);
	}
	if (nchanges == 0) {
		if (!failed && !cli->quiet)
			printf("all pins current\n");
		rc = failed ? EX_FAIL : EX_SUCCESS;
		goto out;
	}
	for (size_t i = 0; i < nchanges; i++) {
		if (i > 0)
			putchar('\n');
		print_change(&changes[i], prober, digest, tp_table_source(table));
	}
	if (dry_run) {
		if (tp_doc_serialize(tp_table_doc(table), &before) != 0
		    || apply(tp_table_doc(table), changes, nchanges, tp_table_source(table), 0, &moved) < 0
		    || tp_doc_serialize(tp_table_doc(table), &after) != 0) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		putchar('\n');
		cli_print_diff(stdout, tp_table_source(table), before.ptr ? before.ptr : "",
			       before.size, after.ptr ? after.ptr : "", after.size);
		rc = EX_FAIL;	/* changes pending */
		goto out;
	}
	if (!yes && !confirm()) {
		cli_errorf("%zu entr%s to rotate; nothing written (confirm with --yes, or answer 'yes' at a terminal)",
			   nchanges, nchanges == 1 ? "y" : "ies");
		rc = EX_FAIL;
		goto out;
	}

	/* Under the lock: read the table again and apply what still holds. */
	tp_table_free(table);
	table = NULL;
	if (cli_table_open(cli, TP_TABLE_WRITE, &table) != EX_SUCCESS)
		goto out;
	{
		int applied = apply(tp_table_doc(table), changes, nchanges,
				    tp_table_source(table), 1, &moved);

		if (applied < 0) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		if (moved)
			failed = 1;
		if (applied > 0) {
			if (tp_table_commit(table, &diag) != 0) {
				rc = cli_error(&diag);
				goto out;
			}
			for (size_t i = 0; i < nchanges; i++)
				if (changes[i].done && !cli->quiet)
					printf("%s: rotated, %zu pin%s (%s:%lu; db rebuilt)\n",
					       changes[i].t->key, changes[i].pins.count,
					       changes[i].pins.count == 1 ? "" : "s",
					       tp_table_source(table), changes[i].t->line);
		}
		/* Release the lock before reloading: Postfix may read the table. */
		tp_table_free(table);
		table = NULL;
		if (applied > 0 && reload && cli_reload(cli, postfix_command) != EX_SUCCESS)
			failed = 1;
	}
	rc = failed ? EX_FAIL : EX_SUCCESS;
out:
	for (size_t i = 0; i < nchanges; i++) {
		tp_strarray_dispose(&changes[i].pins);
		tp_strarray_dispose(&changes[i].keys);
	}
	free(changes);
	tp_buf_dispose(&before);
	tp_buf_dispose(&after);
	tp_prober_free(prober);
	cli_targets_free(&targets);
	tp_table_free(table);
	return rc;
}
