/*
 * NAME
 *	rotate - re-pin entries whose servers present a new certificate
 * SYNOPSIS
 *	tlspolicy rotate [KEY...] [--yes] [--dry-run] [--keep-old] [--jobs N]
 *		[--timeout S] [--reload] [--postfix-command PATH]
 * DESCRIPTION
 *	Probes, all at once, the servers Postfix's SMTP client would try for
 *	every fingerprint entry (or each KEY), with the settings it would
 *	use (the library's delivery model, targets.h). An entry is stale
 *	when some server no longer presents a leaf matching its pins; its
 *	new pins are every fingerprint of its pin kind presented now (after
 *	the old ones with --keep-old). For certificate pins the annotation's keys= (public
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
		"For every fingerprint entry (or each KEY), probe the servers Postfix's SMTP\n"
		"client would try (the MX hosts of a domain or domain:port, the host of\n"
		"[host]:port; the hosts recorded above a .domain pattern), all at once, as\n"
		"Postfix connects (SNI, protocols, ciphers, address families, wrapper\n"
		"mode). Where some server no longer presents a pinned certificate or public\n"
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
		"  --postfix-command P  the postfix program for --reload (default: postfix)\n"
		"\n"
		"Unreachable hosts leave their entry untouched and make the exit status 1;\n"
		"the other entries are still rotated. Nothing to do: 'all pins current',\n"
		"exit 0.\n");
}

struct change {
	struct cli_target *t;
	const tp_delivery_key *k;
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
	/* sha256 key ids, or (written before they were) the pins' digest. */
	for (size_t i = 0; i < t->keys.count; i++) {
		size_t bytes = (strlen(t->keys.strings[i]) + 1) / 3;

		if (bytes != TP_KEY_ID_BYTES && bytes != want)
			return 0;
	}
	return 1;
}

/* Is the leaf's public key among the recorded ones? */
static int
key_recorded(const struct cli_target *t, const tp_probe_cert *leaf, const char *digest)
{
	char id[TP_FINGERPRINT_MAX];
	size_t want = tp_digest_size(digest);

	if (cli_key_id(id, leaf) != 0)
		return 0;
	for (size_t i = 0; i < t->keys.count; i++) {
		const char *k = t->keys.strings[i];
		size_t bytes = (strlen(k) + 1) / 3;

		if ((bytes == TP_KEY_ID_BYTES && strcmp(k, id) == 0) ||
		    (bytes == want && strcmp(k, leaf->pkey_fingerprint) == 0))
			return 1;
	}
	return 0;
}

/* The servers of a key Postfix may try, for the loops below. */
#define EACH_TRIED(k, s) \
	for (const tp_server *s = (k)->servers; s < (k)->servers + (k)->server_count; s++) \
		if (s->tried != TP_TRY_NO || s->address == NULL)

/*
 * keys= after rotation: every public key presented now, after the old
 * recorded ones when old pins are kept; unknown (keys= removed) when an
 * old pin is kept whose key was not recorded, and for pkey pins.
 */
static int
new_key_set(struct change *c, int keep_old, const char *digest)
{
	const struct cli_target *t = c->t;
	const tp_client_info *in = tp_client_settings_info(c->k->settings);

	c->keys_known = t->kind == TP_PIN_CERT;
	if (c->keys_known && keep_old && in->pin_count > 0) {
		c->keys_known = have_keys(t, digest);
		for (size_t i = 0; c->keys_known && i < t->keys.count; i++)
			if (!cli_strarray_has(&c->keys, t->keys.strings[i])
			    && cli_strarray_push(&c->keys, t->keys.strings[i]) != 0)
				return -1;
	}
	EACH_TRIED(c->k, s) {
		char id[TP_FINGERPRINT_MAX];

		if (!c->keys_known || cli_server_fingerprint(s, TP_PIN_PKEY) == NULL)
			continue;
		if (cli_key_id(id, &s->probe->chain[0]) != 0)
			return -1;
		if (!cli_strarray_has(&c->keys, id) && cli_strarray_push(&c->keys, id) != 0)
			return -1;
	}
	return 0;
}

/* Old pins that can still match (configured digest) first, then the new. */
static int
new_pin_set(struct change *c, int keep_old, const char *digest)
{
	const tp_client_info *in = tp_client_settings_info(c->k->settings);
	size_t want = tp_digest_size(digest);

	if (keep_old)
		for (size_t i = 0; i < in->pin_count; i++) {
			const char *pin = in->pins[i];

			if ((strlen(pin) + 1) / 3 == want && !cli_strarray_has(&c->pins, pin)
			    && cli_strarray_push(&c->pins, pin) != 0)
				return -1;
		}
	EACH_TRIED(c->k, s) {
		const char *fp = cli_server_fingerprint(s, c->t->kind);

		if (fp != NULL && !cli_strarray_has(&c->pins, fp)
		    && cli_strarray_push(&c->pins, fp) != 0)
			return -1;
	}
	return 0;
}

static void
print_change(const struct change *c, const char *digest, const char *source)
{
	const struct cli_target *t = c->t;
	const tp_client_info *in = tp_client_settings_info(c->k->settings);
	char nb[32], na[32], label[600];

	printf("%s (%s:%lu): %s pins stale, servers from %s\n", t->key, source, t->line,
	       t->kind == TP_PIN_PKEY ? "pkey" : "cert", c->k->servers_from);
	for (size_t i = 0; i < in->pin_count; i++) {
		const char *pin = in->pins[i];

		printf("  %s %s %s%s\n", i == 0 ? "old:" : "    ", pin,
		       cli_strarray_has(&c->pins, pin) ? "(kept)" : "(removed)",
		       tp_digest_size(digest) * 3 - 1 == strlen(pin) ? ""
		       : " [not a configured-digest pin: never matched]");
	}
	if (in->pin_count == 0)
		printf("  old: (none)\n");
	for (size_t i = 0; i < c->pins.count; i++)
		printf("  %s %s\n", i == 0 ? "new:" : "    ", c->pins.strings[i]);
	EACH_TRIED(c->k, s) {
		const tp_probe_cert *leaf;
		const char *key_changed;

		cli_server_label(label, sizeof(label), s);
		if (s->outcome == TP_OUTCOME_MATCH) {
			printf("  %s: presents a pinned certificate (unchanged)\n", label);
			continue;
		}
		if (cli_server_fingerprint(s, t->kind) == NULL)
			continue;
		leaf = &s->probe->chain[0];
		/* Did the key change? A pkey pin not matching says yes; for cert
		 * pins, the keys recorded above the entry (keys=) say; without
		 * them, another server still presenting a pinned certificate. */
		key_changed = t->kind == TP_PIN_PKEY ? "yes" : "unknown (cert pins do not record the key)";
		if (have_keys(t, digest))
			key_changed = key_recorded(t, leaf, digest) ? "no" : "yes";
		else
			EACH_TRIED(c->k, o)
				if (o->outcome == TP_OUTCOME_MATCH)
					key_changed = strcmp(o->probe->chain[0].pkey_fingerprint,
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

/*
 * What to change: an entry is stale when a server Postfix tries presents
 * a certificate its pins do not match. One that cannot be probed, or
 * that Postfix would reject even with new pins, is reported and left
 * alone (*failed). Returns the number of changes, -1 when out of memory.
 */
static long
plan_changes(struct cli *cli, struct cli_targets *targets, struct change *changes,
	     int keep_old, const char *digest, const char *source, int *failed)
{
	tp_doc_opts dopts = cli_doc_opts(cli);
	size_t nchanges = 0;

	for (size_t i = 0; i < targets->n; i++) {
		struct cli_target *t = &targets->v[i];
		const tp_delivery_key *k = cli_target_key(targets, i);
		struct change *c = &changes[nchanges];
		size_t probed = 0, lost = 0, matched = 0;
		char why[TP_DIAG_MESSAGE_MAX];

		if (k->error != NULL) {
			cli_errorf("%s: not rotated: %s", t->key, k->error);
			*failed = 1;
			continue;
		}
		EACH_TRIED(k, s) {
			probed++;
			if (cli_server_fingerprint(s, t->kind) == NULL) {
				cli_errorf("%s: %s", t->key, s->error ? s->error : "not probed");
				lost++;
			}
			matched += s->outcome == TP_OUTCOME_MATCH;
		}
		if (lost > 0) {
			cli_errorf("%s: not rotated: %zu of %zu server%s could not be probed",
				   t->key, lost, probed, probed == 1 ? "" : "s");
			*failed = 1;
			continue;
		}
		if (matched == probed) {
			if (cli->verbose)
				fprintf(stderr, "tlspolicy: %s: pins current\n", t->key);
			continue;
		}
		c->t = t;
		c->k = k;
		if (new_pin_set(c, keep_old, digest) != 0 || new_key_set(c, keep_old, digest) != 0)
			return -1;
		if (check_new_value(c, &dopts, why, sizeof(why)) == 0) {
			cli_errorf("%s:%lu: %s: not rotated: Postfix would reject the entry even with new pins (%s)",
				   source, t->line, t->key, why);
			tp_strarray_dispose(&c->pins);
			tp_strarray_dispose(&c->keys);
			*failed = 1;
			continue;
		}
		nchanges++;
	}
	return (long)nchanges;
}

/* --dry-run: the plan's effect on the source, as a unified diff. */
static int
show_diff(tp_table *table, struct change *changes, size_t nchanges)
{
	tp_buf before = TP_BUF_INIT, after = TP_BUF_INIT;
	size_t moved;
	int rc = EX_FAIL;	/* changes pending */

	if (tp_doc_serialize(tp_table_doc(table), &before) != 0
	    || apply(tp_table_doc(table), changes, nchanges, tp_table_source(table), 0, &moved) < 0
	    || tp_doc_serialize(tp_table_doc(table), &after) != 0)
		rc = cli_errorf("out of memory");
	else {
		putchar('\n');
		cli_print_diff(stdout, tp_table_source(table), before.ptr ? before.ptr : "",
			       before.size, after.ptr ? after.ptr : "", after.size);
	}
	tp_buf_dispose(&before);
	tp_buf_dispose(&after);
	return rc;
}

/*
 * Under the lock: read the table again, apply what still holds, write,
 * and reload when something changed. *failed when an entry moved
 * meanwhile or the reload failed.
 */
static int
write_changes(struct cli *cli, struct change *changes, size_t nchanges, int reload,
	      const char *postfix_command, int *failed)
{
	tp_table *table = NULL;
	tp_diag diag = TP_DIAG_INIT;
	size_t moved;
	int applied;

	if (cli_table_open(cli, TP_TABLE_WRITE, &table) != EX_SUCCESS)
		return EX_FAIL;
	applied = apply(tp_table_doc(table), changes, nchanges, tp_table_source(table), 1,
			&moved);
	if (applied < 0) {
		tp_table_free(table);
		return cli_errorf("out of memory");
	}
	if (moved)
		*failed = 1;
	if (applied > 0 && tp_table_commit(table, &diag) != 0) {
		tp_table_free(table);
		return cli_error(&diag);
	}
	for (size_t i = 0; applied > 0 && i < nchanges; i++)
		if (changes[i].done && !cli->quiet)
			printf("%s: rotated, %zu pin%s (%s:%lu; db rebuilt)\n",
			       changes[i].t->key, changes[i].pins.count,
			       changes[i].pins.count == 1 ? "" : "s",
			       tp_table_source(table), changes[i].t->line);
	/* Release the lock before reloading: Postfix may read the table. */
	tp_table_free(table);
	if (applied > 0 && reload && cli_reload(cli, postfix_command) != EX_SUCCESS)
		*failed = 1;
	return EX_SUCCESS;
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
	tp_delivery_opts dopts = TP_DELIVERY_OPTS_INIT;
	int yes = 0, dry_run = 0, keep_old = 0, reload = 0, ch, rc = EX_FAIL;
	int failed = 0;
	const char *postfix_command = NULL, *digest;
	struct cli_targets targets = { NULL, 0, NULL };
	struct change *changes = NULL;
	long nchanges = 0;
	tp_table *table = NULL;
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
			dopts.jobs = (unsigned int)jobs;
			break;
		case 't':
			if ((dopts.timeout = cli_parse_seconds(optarg)) < 0)
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
	cli_delivery_defaults(cli, &dopts);

	/* Probe without the lock: it may take --timeout. */
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		goto out;
	if (cli_targets_collect(table, argv + optind, (size_t)(argc - optind), 0, 0,
				&targets) != EX_SUCCESS)
		goto out;
	if (targets.n == 0) {
		if (!cli->quiet)
			printf("no fingerprint entries in %s\n", tp_table_source(table));
		rc = EX_SUCCESS;
		goto out;
	}
	if (cli_targets_run(cli, &targets, &dopts) != EX_SUCCESS)
		goto out;
	if ((changes = calloc(targets.n, sizeof(*changes))) == NULL) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	nchanges = plan_changes(cli, &targets, changes, keep_old, digest,
				tp_table_source(table), &failed);
	if (nchanges < 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	if (nchanges == 0) {
		if (!failed && !cli->quiet)
			printf("all pins current\n");
		rc = failed ? EX_FAIL : EX_SUCCESS;
		goto out;
	}
	for (long i = 0; i < nchanges; i++) {
		if (i > 0)
			putchar('\n');
		print_change(&changes[i], digest, tp_table_source(table));
	}
	if (dry_run) {
		rc = show_diff(table, changes, (size_t)nchanges);
		goto out;
	}
	if (!yes && !confirm()) {
		cli_errorf("%ld entr%s to rotate; nothing written (confirm with --yes, or answer 'yes' at a terminal)",
			   nchanges, nchanges == 1 ? "y" : "ies");
		rc = EX_FAIL;
		goto out;
	}
	tp_table_free(table);
	table = NULL;
	rc = write_changes(cli, changes, (size_t)nchanges, reload, postfix_command, &failed);
	if (rc == EX_SUCCESS && failed)
		rc = EX_FAIL;
out:
	for (long i = 0; i < nchanges; i++) {
		tp_strarray_dispose(&changes[i].pins);
		tp_strarray_dispose(&changes[i].keys);
	}
	free(changes);
	cli_targets_free(&targets);
	tp_table_free(table);
	return rc;
}
