/*
 * NAME
 *	rotate - re-pin entries whose servers present a new certificate,
 *	when that certificate can be trusted
 * SYNOPSIS
 *	tlspolicy rotate [KEY...] [--yes] [--dry-run] [--trust LIST]
 *		[--accept FP]... [--ca-file F] [--ca-path D] [--keep-old[=DURATION]]
 *		[--jobs N] [--timeout S] [--reload] [--flush]
 *		[--postfix-command PATH] [--json]
 * DESCRIPTION
 *	Probes, all at once, the servers Postfix's SMTP client would try for
 *	every fingerprint entry (or each KEY), with the settings it would
 *	use (the library's delivery model, targets.h). An entry is stale
 *	when some server no longer presents a leaf matching its pins. Each
 *	certificate presented that the pins do not match is a candidate,
 *	and the library's trust module (tlspolicy/trust.h) weighs the
 *	evidence for it against the trust policy: unattended (--yes, or no
 *	terminal) the default admits a renewal with the same key, a
 *	certificate a trusted CA issued for the next hop, or one the
 *	server's DNSSEC-validated TLSA records vouch for; tofu and hold=
 *	must be named, and --accept FP admits a fingerprint confirmed out of
 *	band. An entry is rotated only when every candidate is trusted: its
 *	new pins are every fingerprint of its pin kind presented now (after
 *	the old ones with --keep-old). Refused entries stay as they are and
 *	make the exit status 1, with what to do. At a terminal without
 *	--yes, candidates without evidence are pinned only on the
 *	administrator's "yes".
 *
 *	State kept in the annotation: next= and since= (a candidate held
 *	down with hold=, written even when nothing is pinned), old= and
 *	old-until= (pins kept with --keep-old=DURATION, removed by a later
 *	run once the time has passed and no server presents them). keys=
 *	(sha256 ids of the pinned certificates' public keys) is rewritten
 *	with the new pins. The plan shows each change; it is written with
 *	--yes, or after "yes" typed at a terminal, in one table commit under
 *	the lock. Probing happens without the lock; under the lock each
 *	entry is read again, and one changed meanwhile is left alone and
 *	reported. --json prints the plan and its outcome as one object
 *	instead, and never asks. Each pin written is recorded, with the
 *	reason it was trusted, in syslog (mail.notice) when stderr is not a
 *	terminal, even with -q. --flush then asks Postfix to retry the
 *	messages deferred with a TLS failure for the entries rotated (stuck.h).
 * DIAGNOSTICS
 *	Exit 0 when all pins are current or were rotated (and reloaded); 1
 *	when an entry could not be probed, a candidate was refused, an entry
 *	changed meanwhile, the plan was not confirmed, --dry-run shows
 *	pending changes, or the reload or the flush failed; 64 usage.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "stuck.h"
#include "targets.h"

static void
rotate_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] rotate [KEY...] [--yes] [--dry-run]\n"
		"           [--trust LIST] [--accept FP]... [--ca-file FILE] [--ca-path DIR]\n"
		"           [--keep-old[=DURATION]] [--jobs N] [--timeout S] [--reload]\n"
		"           [--flush] [--postfix-command PATH] [--json]\n"
		"\n"
		"For every fingerprint entry (or each KEY), probe the servers Postfix's SMTP\n"
		"client would try (the MX hosts of a domain or domain:port, the host of\n"
		"[host]:port; the hosts recorded above a .domain pattern), all at once, as\n"
		"Postfix connects (SNI, protocols, ciphers, address families, wrapper\n"
		"mode). Where some server no longer presents a pinned certificate or public\n"
		"key, weigh the evidence for what it presents now and, when it can be\n"
		"trusted, replace the pins; show each change: old and new fingerprints,\n"
		"subject, issuer, validity, the evidence, and why it is trusted or not.\n"
		"\n"
		"  --yes                write without asking; otherwise the plan is shown\n"
		"                       and written only after 'yes' typed at a terminal\n"
		"                       (exit 1 when there is no terminal)\n"
		"  --dry-run            show the plan and the unified diff, write nothing\n"
		"                       (exit 1 when changes are pending)\n"
		"  --trust LIST         what lets a new certificate be pinned, of\n"
		"                       same-key (a renewal), pkix (a trusted CA issued it\n"
		"                       for the next hop), dane (DNSSEC-validated TLSA\n"
		"                       records match, of a host no unvalidated MX\n"
		"                       answer named), hold=DURATION (every server has\n"
		"                       shown it on every run for that long, e.g. 7d), tofu\n"
		"                       (anything: trust on first use); default\n"
		"                       same-key,pkix,dane\n"
		"  --accept FP          pin this fingerprint (certificate or public key, any\n"
		"                       digest) once it is presented: confirmed with the\n"
		"                       partner; repeatable\n"
		"  --ca-file FILE       CAs for pkix (default: main.cf's smtp_tls_CAfile,\n"
		"  --ca-path DIR        smtp_tls_CApath as Postfix loads them, else the\n"
		"                       system's)\n"
		"  --keep-old[=DURATION]  keep the old pins beside the new ones (Postfix\n"
		"                       accepts any of them); with a duration, a later run\n"
		"                       removes them once it has passed\n"
		"  --jobs N             connections at once (default 16)\n"
		"  --timeout S          seconds allowed per address (default 30)\n"
		"  --reload             run 'postfix -c DIR reload' when something changed\n"
		"  --flush              then ask Postfix to retry now the messages deferred\n"
		"                       with a TLS failure for the entries rotated (postqueue\n"
		"                       -i each one; never the whole queue)\n"
		"  --postfix-command P  the postfix program for --reload\n"
		"                       (default: $command_directory/postfix of main.cf)\n"
		"  --json               the plan, the evidence and the outcome as one JSON\n"
		"                       object instead of text; never asks\n"
		"\n"
		"Unreachable servers and refused candidates leave their entry untouched\n"
		"and make the exit status 1; the other entries are still rotated. Nothing\n"
		"to do: 'all pins current', exit 0. Each pin written is logged with the\n"
		"reason it was trusted (syslog, mail.notice) when stderr is not a terminal.\n");
}

enum change_kind {
	CH_ROTATE,		/* new pins */
	CH_HOLD,		/* refused, and next=/since= record it held down */
	CH_UNHOLD,		/* the held candidate is gone */
	CH_EXPIRE,		/* old pins past old-until= removed */
	CH_REFUSED,		/* a candidate without evidence: nothing written */
	CH_FAILED		/* not probed, or no value Postfix accepts: nothing written */
};

static const char *const change_names[] = {
	[CH_ROTATE] = "rotate", [CH_HOLD] = "hold", [CH_UNHOLD] = "unhold",
	[CH_EXPIRE] = "remove-old", [CH_REFUSED] = "refused", [CH_FAILED] = "failed",
};

#define MAX_FIELDS 4

struct change {
	enum change_kind kind;
	struct cli_target *t;
	const tp_delivery_key *k;
	int set_pins;
	tp_strarray pins;	/* the new pin set */
	tp_strarray keys;	/* its public keys (keys=), when known */
	int keys_known;
	struct {
		const char *name;
		char *value;	/* NULL removes the field */
	} fields[MAX_FIELDS];
	size_t nfields;
	tp_trust_result *trust;	/* the candidates (CH_ROTATE, CH_HOLD, CH_REFUSED) */
	char *error;		/* CH_FAILED: why */
	int confirmed_only;	/* some candidate pinned only on the administrator's word */
	int done;		/* written */
};

struct rotate_opts {
	int keep_old;
	double keep_old_seconds; /* 0: kept with no end */
	const char *digest;
	time_t now;
	int interactive;	/* a terminal will be asked */
};

static void
change_dispose(struct change *c)
{
	tp_strarray_dispose(&c->pins);
	tp_strarray_dispose(&c->keys);
	for (size_t i = 0; i < c->nfields; i++)
		free(c->fields[i].value);
	tp_trust_result_free(c->trust);
	free(c->error);
}

/* Does the change write anything? */
static int
writes(const struct change *c)
{
	return c->set_pins || c->nfields > 0;
}

static int
set_field(struct change *c, const char *name, const char *value)
{
	if (c->nfields == MAX_FIELDS)
		return -1;
	c->fields[c->nfields].name = name;
	c->fields[c->nfields].value = NULL;
	if (value != NULL && (c->fields[c->nfields].value = strdup(value)) == NULL)
		return -1;
	c->nfields++;
	return 0;
}

/* The servers of a key Postfix may try, for the loops below. */
#define EACH_TRIED(k, s) \
	for (const tp_server *s = (k)->servers; s < (k)->servers + (k)->server_count; s++) \
		if (s->tried != TP_TRY_NO || s->address == NULL)

/* The recorded keys=, when they can be compared (sha256 ids, or the pins' digest). */
static int
have_keys(const struct cli_target *t, const char *digest)
{
	size_t want = tp_digest_size(digest);

	if (t->kind != TP_PIN_CERT || t->keys.count == 0)
		return 0;
	for (size_t i = 0; i < t->keys.count; i++) {
		size_t bytes = (strlen(t->keys.strings[i]) + 1) / 3;

		if (bytes != TP_KEY_ID_BYTES && bytes != want)
			return 0;
	}
	return 1;
}

/* Is the pin presented by a server Postfix tries? */
static int
presented(const tp_delivery_key *k, const char *pin)
{
	EACH_TRIED(k, s)
		if (s->probe != NULL && s->probe->status == TP_OK && s->probe->chain_len > 0 &&
		    (strcmp(s->probe->chain[0].fingerprint, pin) == 0 ||
		     strcmp(s->probe->chain[0].pkey_fingerprint, pin) == 0))
			return 1;
	return 0;
}

/* Old pins past old-until= that no server presents any more. */
static int
expired(const struct cli_target *t, const char *pin, time_t now)
{
	return t->old_until != 0 && now >= t->old_until && cli_strarray_has(&t->old, pin);
}

/*
 * keys= after rotation: only keys known to belong to pins that stay, or
 * a key whose pin was dropped (expired, another digest) would pass later
 * as "the same public key". A staying pin a server presents brings its
 * leaf's key; the recorded keys only when every old pin stays, since
 * they do not say which pin each is for. Unknown (keys= removed) when a
 * staying pin no server presents has no such key, and for pkey pins.
 */
static int
new_key_set(struct change *c, const struct rotate_opts *o)
{
	const struct cli_target *t = c->t;
	const tp_client_info *in = tp_client_settings_info(c->k->settings);
	int all_stay = 1, unseen = 0;

	c->keys_known = t->kind == TP_PIN_CERT;
	if (!c->keys_known)
		return 0;
	for (size_t i = 0; i < in->pin_count; i++) {
		if (!cli_strarray_has(&c->pins, in->pins[i]))
			all_stay = 0;
		else if (!presented(c->k, in->pins[i]))
			unseen = 1;
	}
	if (unseen) {
		c->keys_known = all_stay && have_keys(t, o->digest);
		for (size_t i = 0; c->keys_known && i < t->keys.count; i++)
			if (!cli_strarray_has(&c->keys, t->keys.strings[i])
			    && cli_strarray_push(&c->keys, t->keys.strings[i]) != 0)
				return -1;
	}
	EACH_TRIED(c->k, s) {
		const char *fp = cli_server_fingerprint(s, t->kind);
		char id[TP_FINGERPRINT_MAX];

		if (!c->keys_known || fp == NULL || !cli_strarray_has(&c->pins, fp))
			continue;
		if (cli_key_id(id, &s->probe->chain[0], o->digest) != 0)
			return -1;
		if (!cli_strarray_has(&c->keys, id) && cli_strarray_push(&c->keys, id) != 0)
			return -1;
	}
	return 0;
}

/* Old pins that can still match (configured digest) first, then the new. */
static int
new_pin_set(struct change *c, const struct rotate_opts *o)
{
	const tp_client_info *in = tp_client_settings_info(c->k->settings);
	size_t want = tp_digest_size(o->digest);

	for (size_t i = 0; o->keep_old && i < in->pin_count; i++) {
		const char *pin = in->pins[i];

		if ((strlen(pin) + 1) / 3 == want && !expired(c->t, pin, o->now) &&
		    !cli_strarray_has(&c->pins, pin) && cli_strarray_push(&c->pins, pin) != 0)
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

/* Would the entry's value, with these pins, be one Postfix accepts? */
static int
check_new_value(const struct change *c, const tp_doc_opts *dopts, char *why, size_t size)
{
	tp_doc *doc = NULL;
	tp_policy *p = NULL;
	tp_diag diag = TP_DIAG_INIT;
	tp_entry e;
	int ok = -1;
	char *s;

	if (asprintf(&s, "k\t%s\n", c->t->value) < 0)
		return -1;
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
	free(s);
	return ok;
}

static void
print_evidence(const tp_candidate *c)
{
	const tp_evidence *ev = &c->ev;
	char since[32];

	printf("      evidence: same key %s; CA %s%s%s; DANE %s%s%s; seen at %zu of %zu server%s",
	       ev->same_key ? "yes" : "no", ev->pkix ? "yes, for " : "no (",
	       ev->pkix ? ev->pkix_name : ev->pkix_why ? ev->pkix_why : "?", ev->pkix ? "" : ")",
	       ev->dane ? "yes" : "no (", ev->dane ? "" : ev->dane_why ? ev->dane_why : "?",
	       ev->dane ? "" : ")", ev->seen_at, ev->servers, ev->servers == 1 ? "" : "s");
	if (ev->seen_since)
		printf("; held since %s", cli_iso_time(since, sizeof(since), ev->seen_since));
	if (ev->accepted)
		printf("; accepted");
	printf("\n      %s: %s\n", c->trusted ? "trusted" : "REFUSED", c->why);
}

static void
print_change(const struct change *c, const char *digest, const char *source)
{
	const struct cli_target *t = c->t;
	const tp_client_info *in = tp_client_settings_info(c->k->settings);
	char nb[32], na[32], label[600];

	if (c->kind == CH_EXPIRE) {
		printf("%s (%s:%lu): old pins kept until %s are removed\n", t->key, source,
		       t->line, cli_iso_time(na, sizeof(na), t->old_until));
		for (size_t i = 0; i < in->pin_count; i++)
			if (!cli_strarray_has(&c->pins, in->pins[i]))
				printf("  removed: %s\n", in->pins[i]);
		return;
	}
	if (c->kind == CH_UNHOLD || c->kind == CH_FAILED)
		return;		/* silent, or said on stderr */
	printf("%s (%s:%lu): %s pins stale, servers from %s%s\n", t->key, source, t->line,
	       t->kind == TP_PIN_PKEY ? "pkey" : "cert", c->k->servers_from,
	       c->kind == CH_ROTATE ? "" : ": NOT ROTATED");
	for (size_t i = 0; i < in->pin_count; i++) {
		const char *pin = in->pins[i];

		printf("  %s %s %s%s\n", i == 0 ? "old:" : "    ", pin,
		       c->kind != CH_ROTATE || cli_strarray_has(&c->pins, pin) ? "(kept)" : "(removed)",
		       tp_digest_size(digest) * 3 - 1 == strlen(pin) ? ""
		       : " [not a configured-digest pin: never matched]");
	}
	if (in->pin_count == 0)
		printf("  old: (none)\n");
	for (size_t i = 0; i < c->pins.count; i++)
		printf("  %s %s\n", i == 0 ? "new:" : "    ", c->pins.strings[i]);
	if (c->kind == CH_HOLD)
		printf("  new: (none yet: candidate held since %s)\n", c->nfields > 1
		       ? c->fields[1].value : cli_iso_time(nb, sizeof(nb), t->since));
	else if (c->kind == CH_REFUSED)
		printf("  new: (none: refused)\n");
	EACH_TRIED(c->k, s) {
		const tp_probe_cert *leaf;
		const char *key_changed = "unknown (cert pins do not record the key)";

		cli_server_label(label, sizeof(label), s);
		if (s->outcome == TP_OUTCOME_MATCH) {
			printf("  %s: presents a pinned certificate (unchanged)\n", label);
			continue;
		}
		if (cli_server_fingerprint(s, t->kind) == NULL)
			continue;
		leaf = &s->probe->chain[0];
		for (size_t j = 0; c->trust && j < c->trust->count; j++)
			if (c->trust->candidates[j].leaf->der_len == leaf->der_len &&
			    strcmp(c->trust->candidates[j].leaf->fingerprint, leaf->fingerprint) == 0)
				key_changed = c->trust->candidates[j].ev.same_key ? "no" : "yes";
		if (t->kind == TP_PIN_PKEY)
			key_changed = "yes";
		else if (!have_keys(t, digest) && strcmp(key_changed, "yes") == 0)
			key_changed = "unknown (cert pins do not record the key)";
		printf("  %s: presents %s %s\n", label,
		       t->kind == TP_PIN_PKEY ? "pkey" : "cert",
		       t->kind == TP_PIN_PKEY ? leaf->pkey_fingerprint : leaf->fingerprint);
		printf("      subject: %s\n      issuer:  %s\n", leaf->subject, leaf->issuer);
		printf("      valid:   %s to %s%s\n", cli_iso_time(nb, sizeof(nb), leaf->not_before),
		       cli_iso_time(na, sizeof(na), leaf->not_after),
		       leaf->not_after < time(NULL) ? " (expired)" : "");
		printf("      public key changed: %s\n", key_changed);
	}
	for (size_t j = 0; c->trust && j < c->trust->count; j++) {
		printf("  candidate %s\n", c->trust->candidates[j].fingerprint);
		print_evidence(&c->trust->candidates[j]);
	}
	if (c->confirmed_only)
		printf("  NO EVIDENCE for some candidate: pinned only if you confirm, having checked the fingerprint with the partner\n");
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

		if (!writes(&ch[i]))
			continue;
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
		if (ch[i].set_pins &&
		    (tp_doc_set_pins(doc, idx, (const char *const *)ch[i].pins.strings,
				     ch[i].pins.count) != 0
		     || tp_doc_set_annotation_keys(doc, idx, (const char *const *)ch[i].keys.strings,
						   ch[i].keys_known ? ch[i].keys.count : 0) != 0))
			return -1;
		for (size_t f = 0; f < ch[i].nfields; f++)
			if (tp_doc_set_annotation_field(doc, idx, ch[i].fields[f].name,
							ch[i].fields[f].value) != 0)
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

/* The pins kept with a duration, for old=. */
static int
old_fields(struct change *c, const struct rotate_opts *o)
{
	const tp_client_info *in = tp_client_settings_info(c->k->settings);
	char *list = NULL, until[32];
	size_t len = 0;
	int rc = 0;

	for (size_t i = 0; i < in->pin_count; i++) {
		const char *pin = in->pins[i];
		char *l;

		/* Kept, and not presented now: the ones to drop later. */
		if (!cli_strarray_has(&c->pins, pin) || presented(c->k, pin))
			continue;
		if ((l = realloc(list, len + strlen(pin) + 2)) == NULL) {
			free(list);
			return -1;
		}
		list = l;
		len += (size_t)sprintf(list + len, "%s%s", len ? "|" : "", pin);
	}
	if (list == NULL)
		return set_field(c, "old", NULL) || set_field(c, "old-until", NULL) ? -1 : 0;
	cli_iso_time(until, sizeof(until), o->now + (time_t)o->keep_old_seconds);
	if (set_field(c, "old", list) != 0 || set_field(c, "old-until", until) != 0)
		rc = -1;
	free(list);
	return rc;
}

/* The change for a stale entry, once its candidates are weighed. */
static int
plan_rotation(struct change *c, const struct rotate_opts *o)
{
	c->kind = CH_ROTATE;
	c->set_pins = 1;
	if (new_pin_set(c, o) != 0 || new_key_set(c, o) != 0)
		return -1;
	if (c->t->next != NULL && (set_field(c, "next", NULL) || set_field(c, "since", NULL)))
		return -1;
	if (o->keep_old && o->keep_old_seconds > 0)
		return old_fields(c, o);
	return 0;
}

/*
 * A candidate refused under a policy with hold=: held from now on (or
 * still held since the recorded time). The candidate must be the only
 * one, and every server must present it; otherwise a recorded one is
 * dropped.
 */
static int
plan_hold(struct change *c, const tp_trust_result *tr, time_t now)
{
	char since[32];
	const tp_candidate *cand;

	if (tr->count != 1 || !tr->candidates[0].ev.consistent)
		return c->t->next != NULL && (set_field(c, "next", NULL) || set_field(c, "since", NULL))
		    ? -1 : 0;
	cand = &tr->candidates[0];
	c->kind = CH_HOLD;
	if (c->t->next != NULL && strcmp(c->t->next, cand->fingerprint) == 0 && c->t->since != 0)
		return 0;	/* already held; the record stands */
	cli_iso_time(since, sizeof(since), now);
	return set_field(c, "next", cand->fingerprint) || set_field(c, "since", since) ? -1 : 0;
}

struct plan {
	struct change *v;
	size_t n;
	size_t writes;		/* changes that write something */
};

static struct change *
plan_add(struct plan *p, struct cli_target *t, const tp_delivery_key *k)
{
	struct change *c = &p->v[p->n++];

	memset(c, 0, sizeof(*c));
	c->t = t;
	c->k = k;
	return c;
}

/* An entry left alone for a reason the plan (--json) shows. */
static int
plan_failed(struct plan *p, struct cli_target *t, const tp_delivery_key *k, const char *why)
{
	struct change *c = plan_add(p, t, k);

	c->kind = CH_FAILED;
	return (c->error = strdup(why)) == NULL ? -1 : 0;
}

/*
 * What to change. Returns 0, -1 when out of memory; *failed for entries
 * that could not be probed or whose candidates were refused.
 */
static int
plan_changes(struct cli *cli, struct cli_targets *targets, tp_trust *trust,
	     const tp_trust_policy *policy, const tp_strarray *accept,
	     const struct rotate_opts *o, const char *source, struct plan *p, int *failed)
{
	tp_doc_opts dopts = cli_doc_opts(cli);

	for (size_t i = 0; i < targets->n; i++) {
		struct cli_target *t = &targets->v[i];
		const tp_delivery_key *k = cli_target_key(targets, i);
		tp_trust_hints h = TP_TRUST_HINTS_INIT;
		tp_trust_result *tr = NULL;
		tp_diag diag = TP_DIAG_INIT;
		size_t probed = 0, lost = 0, matched = 0, refused = 0;
		struct change *c;
		char why[TP_DIAG_MESSAGE_MAX], *msg;
		int rc;

		if (k->error != NULL) {
			cli_errorf("%s: not rotated: %s", t->key, k->error);
			*failed = 1;
			if (plan_failed(p, t, k, k->error) != 0)
				return -1;
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
			snprintf(why, sizeof(why), "%zu of %zu server%s could not be probed",
				 lost, probed, probed == 1 ? "" : "s");
			cli_errorf("%s: not rotated: %s", t->key, why);
			*failed = 1;
			if (plan_failed(p, t, k, why) != 0)
				return -1;
			continue;
		}
		if (matched == probed) {
			const tp_client_info *in = tp_client_settings_info(k->settings);
			int due = 0;

			if (cli->verbose)
				fprintf(stderr, "tlspolicy: %s: pins current\n", t->key);
			for (size_t j = 0; j < in->pin_count; j++)
				due |= expired(t, in->pins[j], o->now) && !presented(k, in->pins[j]);
			if (due) {
				c = plan_add(p, t, k);
				c->kind = CH_EXPIRE;
				c->set_pins = 1;
				for (size_t j = 0; j < in->pin_count; j++)
					if (!(expired(t, in->pins[j], o->now) && !presented(k, in->pins[j])) &&
					    cli_strarray_push(&c->pins, in->pins[j]) != 0)
						return -1;
				if (set_field(c, "old", NULL) || set_field(c, "old-until", NULL) ||
				    new_key_set(c, &(struct rotate_opts){ 1, 0, o->digest, o->now, 0 }) != 0)
					return -1;
			} else if (t->next != NULL) {
				c = plan_add(p, t, k);
				c->kind = CH_UNHOLD;
				if (set_field(c, "next", NULL) || set_field(c, "since", NULL))
					return -1;
			}
			continue;
		}
		h.kind = t->kind;
		h.keys = (const char *const *)t->keys.strings;
		h.key_count = t->keys.count;
		h.held = t->next;
		h.held_since = t->since;
		h.accepted = (const char *const *)accept->strings;
		h.accepted_count = accept->count;
		if (tp_trust_evaluate(&tr, trust, targets->delivery, t->dindex, &h, &diag) != 0)
			return -1;
		for (size_t j = 0; j < tr->count; j++)
			refused += !tr->candidates[j].trusted;
		c = plan_add(p, t, k);
		c->trust = tr;
		if (refused > 0 && !o->interactive) {
			for (size_t j = 0; j < tr->count; j++)
				if (!tr->candidates[j].trusted)
					cli_errorf("%s: not rotated: %s presented: %s", t->key,
						   tr->candidates[j].fingerprint, tr->candidates[j].why);
			*failed = 1;
			c->kind = CH_REFUSED;
			if (policy->flags & TP_TRUST_HOLD && plan_hold(c, tr, o->now) != 0)
				return -1;
			continue;
		}
		c->confirmed_only = refused > 0;
		if (plan_rotation(c, o) != 0)
			return -1;
		if (check_new_value(c, &dopts, why, sizeof(why)) == 0) {
			cli_errorf("%s:%lu: %s: not rotated: Postfix would reject the entry even with new pins (%s)",
				   source, t->line, t->key, why);
			change_dispose(c);
			p->n--;
			*failed = 1;
			if (asprintf(&msg, "Postfix would reject the entry even with new pins (%s)", why) < 0)
				return -1;
			rc = plan_failed(p, t, k, msg);
			free(msg);
			if (rc != 0)
				return -1;
			continue;
		}
	}
	for (size_t i = 0; i < p->n; i++)
		p->writes += writes(&p->v[i]) ? 1 : 0;
	return 0;
}

static json_t *
strings_json(const char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *
change_json(const struct change *c)
{
	const tp_client_info *in = tp_client_settings_info(c->k->settings);
	json_t *o = json_object();
	int bad = o == NULL;

	if (bad)
		return NULL;
	bad |= cli_jset(o, "key", json_string(c->t->key));
	bad |= cli_jset(o, "line", json_integer((json_int_t)c->t->line));
	bad |= cli_jset(o, "action", json_string(change_names[c->kind]));
	bad |= cli_jset(o, "written", json_boolean(c->done));
	bad |= cli_jset(o, "error", cli_jstr(c->error));
	bad |= cli_jset(o, "pin_kind", json_string(tp_pin_kind_name(c->t->kind)));
	bad |= cli_jset(o, "servers_from", cli_jstr(c->k->servers_from));
	bad |= cli_jset(o, "old_pins", strings_json(in->pins, in->pin_count));
	bad |= cli_jset(o, "new_pins", c->set_pins
			? strings_json((const char *const *)c->pins.strings, c->pins.count)
			: json_null());
	bad |= cli_jset(o, "candidates", cli_candidates_json(c->trust));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* --json: the plan and what became of it, on stdout. */
static int
print_json(const struct plan *p, const char *source, const char *digest, const char *trust,
	   int reloaded, long flushed, int rc)
{
	json_t *root = json_object(), *a = json_array();
	int bad = root == NULL || a == NULL, written = 0;

	for (size_t i = 0; i < p->n; i++)
		written |= p->v[i].done;
	if (!bad) {
		bad |= cli_jset(root, "table", json_string(source));
		bad |= cli_jset(root, "digest", json_string(digest));
		bad |= cli_jset(root, "trust", json_string(trust));
		bad |= cli_jset(root, "exit", json_integer(rc));
		bad |= cli_jset(root, "written", json_boolean(written));
		bad |= cli_jset(root, "reloaded", json_boolean(reloaded));
		bad |= cli_jset(root, "flushed", flushed < 0 ? json_null() : json_integer(flushed));
		bad |= cli_jset(root, "entries", json_incref(a));
		for (size_t i = 0; i < p->n; i++)
			bad |= json_array_append_new(a, change_json(&p->v[i]));
	}
	if (!bad)
		bad = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0
		    || putchar('\n') == EOF;
	json_decref(a);
	json_decref(root);
	return bad ? cli_errorf("out of memory") : rc;
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

/* The trust decision on record: each pin written, and why. */
static void
log_change(const struct change *c, const char *source)
{
	char until[32];

	if (c->kind == CH_EXPIRE)
		cli_logf("%s: old pins kept until %s removed (%s:%lu)", c->t->key,
			 cli_iso_time(until, sizeof(until), c->t->old_until), source, c->t->line);
	else if (c->kind == CH_HOLD && c->nfields > 0)
		cli_logf("%s: candidate %s held (%s:%lu)", c->t->key, c->fields[0].value,
			 source, c->t->line);
	for (size_t i = 0; c->kind == CH_ROTATE && c->trust && i < c->trust->count; i++)
		cli_logf("%s: pinned %s (%s:%lu): %s", c->t->key, c->trust->candidates[i].fingerprint,
			 source, c->t->line, c->trust->candidates[i].why);
}

/*
 * Under the lock: read the table again, apply what still holds, write,
 * and reload when pins changed. *failed when an entry moved meanwhile or
 * the reload failed.
 */
static int
write_changes(struct cli *cli, struct change *changes, size_t nchanges, int reload,
	      const char *postfix_command, int report, int *failed, int *reloaded)
{
	tp_table *table = NULL;
	tp_diag diag = TP_DIAG_INIT;
	size_t moved;
	int applied, pins_changed = 0;

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
	for (size_t i = 0; applied > 0 && i < nchanges; i++) {
		const struct change *c = &changes[i];
		char since[32];

		if (!c->done)
			continue;
		pins_changed |= c->set_pins;
		log_change(c, tp_table_source(table));
		if (!report)
			continue;
		if (c->kind == CH_ROTATE || c->kind == CH_EXPIRE)
			printf("%s: %s, %zu pin%s (%s:%lu; %s)\n", c->t->key,
			       c->kind == CH_ROTATE ? "rotated" : "old pins removed",
			       c->pins.count, c->pins.count == 1 ? "" : "s",
			       tp_table_source(table), c->t->line, cli_written_note(table));
		else if (c->kind == CH_HOLD)
			printf("%s: candidate %s held since %s\n", c->t->key, c->fields[0].value,
			       c->fields[1].value ? c->fields[1].value
			       : cli_iso_time(since, sizeof(since), time(NULL)));
	}
	/* Release the lock before reloading: Postfix may read the table. */
	tp_table_free(table);
	if (pins_changed && reload) {
		if (cli_reload(cli, postfix_command) != EX_SUCCESS)
			*failed = 1;
		else
			*reloaded = 1;
	}
	return EX_SUCCESS;
}

int
cmd_rotate(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "yes", no_argument, NULL, 'y' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "keep-old", optional_argument, NULL, 'k' },
		{ "trust", required_argument, NULL, 'T' },
		{ "accept", required_argument, NULL, 'A' },
		{ "ca-file", required_argument, NULL, 'F' },
		{ "ca-path", required_argument, NULL, 'D' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "reload", no_argument, NULL, 'r' },
		{ "flush", no_argument, NULL, 'L' },
		{ "postfix-command", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_delivery_opts dopts = TP_DELIVERY_OPTS_INIT;
	tp_trust_opts topts = TP_TRUST_OPTS_INIT;
	struct rotate_opts o = { 0, 0, NULL, 0, 0 };
	int yes = 0, dry_run = 0, reload = 0, json = 0, reloaded = 0, ch, rc = EX_FAIL, failed = 0;
	int flush = 0;
	long flushed = -1;
	const char *postfix_command = NULL, *trust_list = NULL;
	char *source = NULL;
	struct cli_targets targets = { NULL, 0, NULL };
	struct plan plan = { NULL, 0, 0 };
	tp_strarray accept = TP_STRARRAY_INIT;
	tp_trust *trust = NULL;
	tp_table *table = NULL;
	tp_diag diag = TP_DIAG_INIT;
	char *end, norm[TP_FINGERPRINT_MAX];
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
			o.keep_old = 1;
			if (optarg != NULL) {
				tp_trust_policy tmp;
				char spec[64];

				/* The duration syntax of hold=. */
				snprintf(spec, sizeof(spec), "hold=%s", optarg);
				if (tp_trust_policy_parse(&tmp, spec, NULL) != 0 || tmp.hold_seconds <= 0) {
					rc = cli_usage("rotate", "--keep-old=%s: say a duration (7d, 12h)", optarg);
					goto out;
				}
				o.keep_old_seconds = tmp.hold_seconds;
			}
			break;
		case 'T':
			trust_list = optarg;
			break;
		case 'A':
			if (tp_pin_normalize(norm, optarg, &diag) != 0) {
				rc = cli_usage("rotate", "--accept %s: %s", optarg, diag.message);
				goto out;
			}
			if (cli_strarray_push(&accept, norm) != 0) {
				rc = cli_errorf("out of memory");
				goto out;
			}
			break;
		case 'F':
			topts.ca_file = optarg;
			break;
		case 'D':
			topts.ca_path = optarg;
			break;
		case 'j':
			jobs = strtol(optarg, &end, 10);
			if (end == optarg || *end || jobs < 1 || jobs > 1024) {
				rc = cli_usage("rotate", "--jobs %s: say 1 to 1024", optarg);
				goto out;
			}
			dopts.jobs = (unsigned int)jobs;
			break;
		case 't':
			if ((dopts.timeout = cli_parse_seconds(optarg)) < 0) {
				rc = cli_usage("rotate", "--timeout %s: say a number of seconds", optarg);
				goto out;
			}
			break;
		case 'r':
			reload = 1;
			break;
		case 'L':
			flush = 1;
			break;
		case 'P':
			postfix_command = optarg;
			break;
		case 'J':
			json = 1;
			break;
		case 'h':
			rotate_usage(stdout);
			rc = EX_SUCCESS;
			goto out;
		default:
			rc = cli_bad_option("rotate", ch, argv);
			goto out;
		}
	}
	if (tp_trust_policy_parse(&topts.policy, trust_list ? trust_list : TP_TRUST_DEFAULT,
				  &diag) != 0) {
		rc = cli_usage("rotate", "--trust %s: %s", trust_list, diag.message);
		goto out;
	}
	if ((o.digest = cli_checked_digest(cli)) == NULL)
		goto out;
	o.now = topts.now = cli_now();
	/* At a terminal the administrator sees the evidence and may say yes. */
	o.interactive = !yes && !dry_run && !json && isatty(0);
	cli_delivery_defaults(cli, &dopts);

	/* Probe without the lock: it may take --timeout. */
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		goto out;
	if ((source = strdup(tp_table_source(table))) == NULL) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	if (cli_targets_collect(table, argv + optind, (size_t)(argc - optind), 0, NULL,
				&targets) != EX_SUCCESS)
		goto out;
	if (targets.n == 0) {
		if (json)
			rc = print_json(&plan, source, o.digest, trust_list ? trust_list
					: TP_TRUST_DEFAULT, 0, flush ? 0 : -1, EX_SUCCESS);
		else {
			if (!cli->quiet)
				printf("no fingerprint entries in %s\n", source);
			rc = EX_SUCCESS;
		}
		goto out;
	}
	if (tp_trust_new(&trust, cli_config(cli), &topts, &diag) != 0) {
		rc = cli_error(&diag);
		goto out;
	}
	if (cli_targets_run(cli, &targets, &dopts) != EX_SUCCESS)
		goto out;
	if ((plan.v = calloc(targets.n, sizeof(*plan.v))) == NULL ||
	    plan_changes(cli, &targets, trust, &topts.policy, &accept, &o,
			 tp_table_source(table), &plan, &failed) != 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	/* A yes counts only after reading the plan: -q does not hide it then. */
	for (size_t i = 0, shown = 0; !json && (!cli->quiet || (o.interactive && plan.writes > 0)) &&
	     i < plan.n; i++) {
		if (plan.v[i].kind == CH_UNHOLD || plan.v[i].kind == CH_FAILED)
			continue;
		if (shown++ > 0)
			putchar('\n');
		print_change(&plan.v[i], o.digest, tp_table_source(table));
	}
	if (plan.writes == 0) {
		if (plan.n == 0 && !failed && !json && !cli->quiet)
			printf("all pins current\n");
		rc = failed ? EX_FAIL : EX_SUCCESS;
	} else if (dry_run) {
		rc = json ? EX_FAIL : show_diff(table, plan.v, plan.n);
	} else if (!yes && (json || !confirm())) {	/* --json never asks */
		cli_errorf("%zu entr%s to change; nothing written (confirm with --yes, or answer 'yes' at a terminal)",
			   plan.writes, plan.writes == 1 ? "y" : "ies");
		rc = EX_FAIL;
	} else {
		tp_table_free(table);
		table = NULL;
		rc = write_changes(cli, plan.v, plan.n, reload, postfix_command,
				   !json && !cli->quiet, &failed, &reloaded);
		if (rc == EX_SUCCESS && failed)
			rc = EX_FAIL;
		if (rc != EX_SUCCESS && !failed)
			flush = 0;	/* nothing was written */
	}
	if (flush && !dry_run) {
		char **keys = calloc(plan.n + 1, sizeof(*keys));
		size_t nkeys = 0, n = 0;

		if (keys == NULL) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		for (size_t i = 0; i < plan.n; i++)
			if (plan.v[i].done && plan.v[i].kind == CH_ROTATE)
				keys[nkeys++] = plan.v[i].t->key;
		/* No key would mean every entry: flush only what was repaired. */
		if (nkeys > 0 && cli_stuck_release(cli, keys, nkeys, dopts.timeout,
						   !json && !cli->quiet, &n) != EX_SUCCESS)
			rc = EX_FAIL;
		flushed = (long)n;
		free(keys);
	}
	if (json)
		rc = print_json(&plan, source, o.digest, trust_list ? trust_list : TP_TRUST_DEFAULT,
				reloaded, flushed, rc);
out:
	for (size_t i = 0; i < plan.n; i++)
		change_dispose(&plan.v[i]);
	free(plan.v);
	tp_strarray_dispose(&accept);
	free(source);
	tp_trust_free(trust);
	cli_targets_free(&targets);
	tp_table_free(table);
	return rc;
}
