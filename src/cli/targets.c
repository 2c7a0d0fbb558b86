/*
 * NAME
 *	targets - the entries check and rotate look at
 * DESCRIPTION
 *	See targets.h. Which servers, in which order, with which TLS
 *	settings, and how a presented certificate compares with the pins:
 *	all of it is the library's delivery model; this file only picks the
 *	entries and says what value each is judged by.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "targets.h"

static void
target_dispose(struct cli_target *t)
{
	free(t->key);
	free(t->value);
	free(t->judged);
	free(t->judged_where);
	free(t->maps_note);
	free(t->next);
	tp_strarray_dispose(&t->old);
	tp_strarray_dispose(&t->hosts);
	tp_strarray_dispose(&t->keys);
}

void
cli_targets_free(struct cli_targets *t)
{
	for (size_t i = 0; i < t->n; i++)
		target_dispose(&t->v[i]);
	free(t->v);
	tp_delivery_free(t->delivery);
	t->v = NULL;
	t->n = 0;
	t->delivery = NULL;
}

/*
 * The value Postfix reads for the key: the database's (with the NUL
 * conventions and lock Postfix uses), which is the source's only when
 * the database is in step. No entry there: Postfix finds none (NULL).
 * When the table is one of smtp_tls_policy_maps, through that map's
 * reader, opened once for all entries (and the key folded as Postfix
 * folds it); else one lookup in the database.
 */
static int
judged_value(struct cli_target *t, tp_table *table, struct cli_maps *maps)
{
	tp_buf val = TP_BUF_INIT;
	const char *found = NULL;
	int rc;

	t->judged_from = "source";
	if (maps == NULL)
		return (t->judged = strdup(t->value)) ? 0 : -1;
	if (maps->maps != NULL && maps->table != SIZE_MAX) {
		tp_map_answer a;

		rc = tp_maps_find_range(maps->maps, maps->table, maps->table + 1,
					t->key, &a, NULL);
		if (rc == 0 && a.status == TP_MAPS_NOTFOUND)
			rc = TP_ENOTFOUND;
		else if (rc == 0)	/* found, or a value Postfix fails on */
			found = a.value ? a.value : "";
	} else {
		rc = tp_map_lookup(tp_table_type(table), tp_table_db_path(table),
				   t->key, &val, NULL);
		if (rc == 0)
			found = val.ptr ? val.ptr : "";
	}
	if (rc == TP_ENOMEM)
		return -1;
	if (rc == 0) {
		t->judged_from = "database";
		t->judged = strdup(found);
		t->db_differs = strcmp(t->judged ? t->judged : "", t->value) != 0;
		tp_buf_dispose(&val);
		return t->judged ? 0 : -1;
	}
	tp_buf_dispose(&val);
	t->db_differs = 1;
	if (rc == TP_ENOTFOUND) {
		t->judged_from = "database";
		return 0;	/* Postfix finds no entry: judged = NULL */
	}
	/* A database we cannot read: judge the source, and say so. */
	return (t->judged = strdup(t->value)) ? 0 : -1;
}

static int
note(struct cli_target *t, tp_state state, const char *fmt, ...) TP_CLI_PRINTF(3, 4);

static int
note(struct cli_target *t, tp_state state, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&t->maps_note, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->maps_note = NULL;
		return -1;
	}
	t->maps_state = state;
	return 0;
}

/* "regexp:/etc/postfix/pre line 3", "hash:/etc/postfix/other", ... */
static char *
answer_where(const struct cli_maps *m, const tp_map_answer *a, const char *matched,
	     const char *key)
{
	const tp_map_info *info = tp_maps_at(m->maps, a->index);
	char *s = NULL;
	int n;

	if (a->line)
		n = asprintf(&s, "%s line %lu%s%s", info->spec, a->line,
			     strcmp(matched, key) ? " for " : "", strcmp(matched, key) ? matched : "");
	else
		n = asprintf(&s, "%s%s%s", info->spec,
			     strcmp(matched, key) ? " for " : "", strcmp(matched, key) ? matched : "");
	return n < 0 ? NULL : s;
}

/*
 * All of smtp_tls_policy_maps, as Postfix's SMTP client asks it for the
 * next hop (the key, then its parent domains, each through every map):
 * when another map, or another entry, answers first, that answer is
 * what Postfix uses and this entry's pins are not; a map reached first
 * that cannot be evaluated here leaves the verdict in doubt; a failed
 * lookup defers the mail.
 */
static int
judge_maps(struct cli_target *t, struct cli_maps *m)
{
	const tp_map_info *mine;
	tp_map_answer a;
	const char *matched = NULL;
	tp_diag d = TP_DIAG_INIT;
	char *where;
	int rc;

	if (m->maps == NULL || m->table == SIZE_MAX)
		return 0;	/* no list, or a table Postfix does not use: doctor says so */
	mine = tp_maps_at(m->maps, m->table);
	if (t->key[0] == '.') {
		/* A pattern is no next hop: only an exact answer before ours shadows it. */
		struct cli_shadow sh;
		char text[TP_DIAG_MESSAGE_MAX + 256];

		if (cli_maps_shadow(m, m->table, t->key, &sh) < 0)
			return note(t, TP_STATE_CRITICAL, "%s: Postfix's TLS policy lookups fail there and defer the mail",
				    sh.message);
		if (!sh.found && sh.unknown == SIZE_MAX)
			return 0;
		return note(t, TP_STATE_WARNING, "%s: pins unused",
			    cli_shadow_text(m, &sh, text, sizeof(text)));
	}
	rc = tp_maps_find_nexthop(m->maps, t->key, &a, &matched, &d);
	if (rc == TP_ENOMEM)
		return -1;
	if (rc != 0)
		return note(t, TP_STATE_CRITICAL, "%s: Postfix's TLS policy lookups fail there and defer the mail",
			    d.message);
	switch (a.status) {
	case TP_MAPS_NOTFOUND:
		return 0;	/* the database lacks the key: said with db_differs */
	case TP_MAPS_UNKNOWN:
		return note(t, TP_STATE_WARNING, "%s cannot be evaluated here and may answer first: the verdict assumes it does not",
			    tp_maps_at(m->maps, a.index)->spec);
	case TP_MAPS_ERROR:
		if ((where = answer_where(m, &a, matched, t->key)) == NULL)
			return -1;
		rc = note(t, TP_STATE_CRITICAL, "%s answers first with a lookup error: Postfix defers the mail (policy table lookup error)",
			  where);
		free(where);
		return rc;
	case TP_MAPS_FOUND:
		break;
	}
	if (a.index == m->table && strcmp(matched, t->key) == 0)
		return 0;	/* our entry, as judged from the database */
	if ((where = answer_where(m, &a, matched, t->key)) == NULL)
		return -1;
	free(t->judged);
	t->judged = strdup(a.value);
	t->judged_from = "map";
	t->judged_where = where;
	if (t->judged == NULL)
		return -1;
	return note(t, TP_STATE_WARNING, "shadowed by %s (\"%s\"), which Postfix asks first: pins of %s unused",
		    where, a.value, mine->spec);
}

static int
add_target(struct cli_targets *out, tp_table *table, size_t idx, struct cli_maps *maps)
{
	const tp_doc *doc = tp_table_doc(table);
	struct cli_target *t, *v;
	tp_buf wrap = TP_BUF_INIT;
	tp_entry e;

	if (tp_doc_entry_at(doc, idx, &e) != 0)
		return -1;
	v = realloc(out->v, (out->n + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	out->v = v;
	t = &v[out->n++];
	memset(t, 0, sizeof(*t));
	t->index = idx;
	t->line = e.line;
	if ((t->key = strndup(e.key, e.key_len)) == NULL ||
	    (t->value = strndup(e.value, e.value_len)) == NULL)
		return -1;
	t->kind = e.pin_kind && strcmp(e.pin_kind, "pkey") == 0 ? TP_PIN_PKEY : TP_PIN_CERT;
	for (size_t i = 0; i < e.key_count; i++)
		if (cli_strarray_push(&t->keys, e.keys[i]) != 0)
			return -1;
	for (size_t i = 0; i < e.from_count; i++)
		if (cli_strarray_push(&t->hosts, e.from[i]) != 0)
			return -1;
	if (tp_doc_annotation_field(doc, idx, "wrappermode", &wrap) == TP_OK)
		t->wrappermode = strcmp(wrap.ptr, "yes") == 0;
	if (tp_doc_annotation_field(doc, idx, "next", &wrap) == TP_OK &&
	    (t->next = strdup(wrap.ptr)) == NULL)
		goto nomem;
	if (tp_doc_annotation_field(doc, idx, "since", &wrap) == TP_OK)
		t->since = cli_parse_iso(wrap.ptr);
	if (tp_doc_annotation_field(doc, idx, "old-until", &wrap) == TP_OK)
		t->old_until = cli_parse_iso(wrap.ptr);
	if (tp_doc_annotation_field(doc, idx, "old", &wrap) == TP_OK)
		for (char *p = wrap.ptr, *bar; p != NULL; p = bar ? bar + 1 : NULL) {
			if ((bar = strchr(p, '|')) != NULL)
				*bar = '\0';
			if (*p && cli_strarray_push(&t->old, p) != 0)
				goto nomem;
		}
	tp_buf_dispose(&wrap);
	if (judged_value(t, table, maps) != 0)
		return -1;
	return maps != NULL ? judge_maps(t, maps) : 0;
nomem:
	tp_buf_dispose(&wrap);
	return -1;
}

static tp_level
entry_level(const tp_doc *doc, size_t i, int *valid)
{
	tp_policy *p = NULL;
	tp_entry e;
	tp_level level = TP_LEVEL_UNKNOWN;
	int rc;

	*valid = 0;
	if (tp_doc_entry_at(doc, i, &e) != 0)
		return level;
	rc = tp_policy_parse(&p, e.value, e.value_len, NULL);
	if (p != NULL)
		level = tp_policy_level(p);
	*valid = rc == 0;
	tp_policy_free(p);
	return level;
}

int
cli_targets_collect(tp_table *table, char **keys, size_t nkeys,
		    int include_invalid, struct cli_maps *effective, struct cli_targets *out)
{
	const tp_doc *doc = tp_table_doc(table);
	size_t n = tp_doc_entry_count(doc), idx;
	int valid;

	memset(out, 0, sizeof(*out));
	if (nkeys == 0) {
		for (size_t i = 0; i < n; i++) {
			tp_entry e;
			tp_level level;

			if (tp_doc_entry_at(doc, i, &e) != 0 || e.duplicate)
				continue;
			level = entry_level(doc, i, &valid);
			if ((level == TP_LEVEL_FINGERPRINT || (include_invalid && !valid)) &&
			    add_target(out, table, i, effective) != 0)
				goto nomem;
		}
		return EX_SUCCESS;
	}
	for (size_t k = 0; k < nkeys; k++) {
		tp_level level;
		int dup = 0;

		if (tp_doc_find(doc, keys[k], &idx) != 0) {
			cli_targets_free(out);
			return cli_errorf("%s: no such entry", keys[k]);
		}
		for (size_t j = 0; j < out->n; j++)
			dup |= out->v[j].index == idx;
		if (dup)
			continue;
		level = entry_level(doc, idx, &valid);
		if (level != TP_LEVEL_FINGERPRINT && !(include_invalid && !valid)) {
			cli_targets_free(out);
			return cli_errorf("%s: level %s, not fingerprint: no pins to look at",
					  keys[k], tp_level_name(level));
		}
		if (add_target(out, table, idx, effective) != 0)
			goto nomem;
	}
	return EX_SUCCESS;
nomem:
	cli_targets_free(out);
	return cli_errorf("out of memory");
}

static void
show_progress(const tp_probe_result *r, size_t done, size_t total, void *payload)
{
	(void)r;
	(void)payload;
	cli_progress_update(done, total);
}

int
cli_targets_run(struct cli *cli, struct cli_targets *t, const tp_delivery_opts *opts)
{
	tp_delivery_opts o = *opts;
	tp_diag diag = TP_DIAG_INIT;
	int rc;

	if (o.progress == NULL)
		o.progress = show_progress;
	if (tp_delivery_new(&t->delivery, cli_config(cli), &o, &diag) != 0)
		return cli_error(&diag);
	for (size_t i = 0; i < t->n; i++) {
		struct cli_target *x = &t->v[i];
		tp_delivery_hints h = TP_DELIVERY_HINTS_INIT;

		h.hosts = (const char *const *)x->hosts.strings;
		h.host_count = x->hosts.count;
		h.wrappermode = x->wrappermode;
		if (tp_delivery_add(&x->dindex, t->delivery, x->key, x->judged, &h, &diag) != 0)
			return cli_errorf("%s: %s", x->key, diag.message);
	}
	cli_progress_start("probing", "addresses");
	rc = tp_delivery_run(t->delivery, &diag);
	cli_progress_end();
	return rc == 0 ? EX_SUCCESS : cli_error(&diag);
}

const tp_delivery_key *
cli_target_key(const struct cli_targets *t, size_t i)
{
	return tp_delivery_key_at(t->delivery, t->v[i].dindex);
}

const char *
cli_server_label(char *buf, size_t size, const tp_server *s)
{
	if (s->address == NULL || strcmp(s->host, s->address) == 0)
		cli_host_spec(buf, size, s->host, s->port);
	else
		snprintf(buf, size, "%s[%s]:%u", s->host, s->address, s->port);
	return buf;
}

const char *
cli_server_fingerprint(const tp_server *s, tp_pin_kind kind)
{
	const tp_probe_cert *leaf;

	if (s->probe == NULL || s->probe->status != TP_OK || s->probe->chain_len == 0)
		return NULL;
	leaf = &s->probe->chain[0];
	return kind == TP_PIN_PKEY ? leaf->pkey_fingerprint : leaf->fingerprint;
}
