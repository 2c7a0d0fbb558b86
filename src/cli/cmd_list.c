/*
 * NAME
 *	list - show every entry of the policy table
 * DESCRIPTION
 *	For each entry: key, level, pins (with the digest their length
 *	implies, marked when it is not the configured one), the hosts the
 *	pins came from, other attributes, problems Postfix would have with
 *	it; and for the table whether the db is in step with the source.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "stuck.h"

static void
list_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] list [--json]\n"
		"\n"
		"Show every entry of the policy table: key, level, pins with the digest\n"
		"their length implies (marked when it is not the configured digest), the\n"
		"hosts they were pinned from, other attributes, entries Postfix would\n"
		"reject, and whether the .db is in step with the source. Lines postmap\n"
		"would skip are reported on stderr, with postmap's warning.\n"
		"\n"
		"Every map of smtp_tls_policy_maps is read in order, as Postfix asks\n"
		"them: an entry whose key an earlier map answers is marked shadowed\n"
		"(its pins are unused), maps that cannot be evaluated here (socketmap,\n"
		"SQL, LDAP, ...) are named, and the entries of other hash: or btree:\n"
		"tables are listed too, marked as separate tables.\n"
		"\n"
		"Mail in Postfix's queue deferred for an entry with a TLS failure\n"
		"(postqueue -j, routed as Postfix routes it) is counted beside it.\n"
		"\n"
		"  --json   one JSON object with the same data\n");
}

/* What an earlier map does to the entry: "" when nothing. */
struct shadow_note {
	const char *text;	/* cli_shadow_text() */
	int certain;		/* an earlier map answers (not only "may") */
	const struct cli_stuck *stuck;	/* the queue; NULL for another table */
	const struct cli_stuck_entry *deferred;	/* its mail for the entry */
};

static json_t *
entry_json(const tp_entry *e, const tp_policy *policy, const char *problem,
	   const char *digest, const struct shadow_note *sh)
{
	json_t *obj = json_object(), *pins = json_array(), *attrs = json_array();
	json_t *from = json_array();

	json_object_set_new(obj, "key", json_stringn(e->key, e->key_len));
	json_object_set_new(obj, "line", json_integer((json_int_t)e->line));
	json_object_set_new(obj, "value", json_stringn(e->value, e->value_len));
	json_object_set_new(obj, "level", json_string(tp_level_name(tp_policy_level(policy))));
	json_object_set_new(obj, "duplicate", json_boolean(e->duplicate));
	json_object_set_new(obj, "valid", json_boolean(problem == NULL));
	json_object_set_new(obj, "problem", problem ? json_string(problem) : json_null());
	{
		json_t *warnings = json_array();

		for (size_t i = 0; i < tp_policy_warning_count(policy); i++)
			json_array_append_new(warnings, json_string(tp_policy_warning_at(policy, i)));
		json_object_set_new(obj, "warnings", warnings);
	}
	for (size_t i = 0; i < tp_policy_pin_count(policy); i++) {
		const char *pin = tp_policy_pin_at(policy, i);
		const char *pd = tp_pin_digest(pin);
		json_t *p = json_object();

		json_object_set_new(p, "fingerprint", json_string(pin));
		json_object_set_new(p, "digest", pd ? json_string(pd) : json_null());
		json_object_set_new(p, "digest_matches",
				    json_boolean(pd && cli_digest_equal(pd, digest)));
		json_array_append_new(pins, p);
	}
	json_object_set_new(obj, "pins", pins);
	for (size_t i = 0; i < tp_policy_attr_count(policy); i++) {
		const char *name, *value;
		json_t *a = json_object();

		tp_policy_attr_at(policy, i, &name, &value);
		json_object_set_new(a, "name", json_string(name));
		json_object_set_new(a, "value", json_string(value));
		json_array_append_new(attrs, a);
	}
	json_object_set_new(obj, "attributes", attrs);
	for (size_t i = 0; i < e->from_count; i++)
		json_array_append_new(from, json_string(e->from[i]));
	json_object_set_new(obj, "from", from);
	json_object_set_new(obj, "pin_kind", e->pin_kind ? json_string(e->pin_kind) : json_null());
	json_object_set_new(obj, "shadowed", json_boolean(sh->certain));
	json_object_set_new(obj, "shadow", *sh->text ? json_string(sh->text) : json_null());
	json_object_set_new(obj, "deferred_messages",
			    sh->stuck == NULL || !sh->stuck->available ? json_null()
			    : json_integer(sh->deferred ? (json_int_t)sh->deferred->messages : 0));
	return obj;
}

static void
entry_text(const tp_entry *e, const tp_policy *policy, const char *problem,
	   const char *digest, const struct shadow_note *sh)
{
	printf("%.*s (line %lu)%s\n", (int)e->key_len, e->key, e->line,
	       e->duplicate ? " [duplicate: Postfix uses the first entry with this key]" : "");
	printf("  level: %s\n", tp_level_name(tp_policy_level(policy)));
	for (size_t i = 0; i < tp_policy_pin_count(policy); i++) {
		const char *pin = tp_policy_pin_at(policy, i);
		const char *pd = tp_pin_digest(pin);

		printf("  pin: %s %s", pd ? pd : "unknown-digest", pin);
		if (!pd || !cli_digest_equal(pd, digest))
			printf(" [not %s: Postfix will not match it]", digest);
		putchar('\n');
	}
	if (e->from_count) {
		printf("  from: ");
		for (size_t i = 0; i < e->from_count; i++)
			printf("%s%s", i ? ", " : "", e->from[i]);
		/* The pin kind says what the pins are; without pins, nothing. */
		if (tp_policy_pin_count(policy) > 0)
			printf(" (%s pins)", e->pin_kind ? e->pin_kind : "cert");
		putchar('\n');
	}
	for (size_t i = 0; i < tp_policy_attr_count(policy); i++) {
		const char *name, *value;

		tp_policy_attr_at(policy, i, &name, &value);
		printf("  %s=%s\n", name, value);
	}
	if (problem)
		printf("  invalid: %s\n", problem);
	for (size_t i = 0; i < tp_policy_warning_count(policy); i++)
		printf("  warning: %s\n", tp_policy_warning_at(policy, i));
	if (*sh->text)
		printf("  %s%s\n", sh->text, !sh->certain ? ""
		       : tp_policy_pin_count(policy) ? ": pins unused" : ": entry unused");
	if (sh->deferred != NULL) {
		char words[256];

		printf("  queue: %s\n", cli_stuck_words(words, sizeof(words), sh->deferred, cli_now()));
	}
}

/*
 * Every entry of doc, the table at map index (SIZE_MAX: not listed),
 * as text or appended to entries. EX_FAIL when out of memory.
 */
static int
list_entries(struct cli_maps *cm, size_t index, const tp_doc *doc,
	     const char *digest, const struct cli_stuck *stuck, json_t *entries)
{
	for (size_t i = 0; i < tp_doc_entry_count(doc); i++) {
		tp_entry e;
		tp_policy *policy = NULL;
		tp_diag pdiag = TP_DIAG_INIT;
		struct cli_shadow sh;
		struct shadow_note note;
		char text[TP_DIAG_MESSAGE_MAX + 256];
		int prc;

		if (tp_doc_entry_at(doc, i, &e) != 0)
			continue;
		prc = tp_policy_parse(&policy, e.value, e.value_len, &pdiag);
		if (policy == NULL)
			return cli_errorf("out of memory");
		if (e.duplicate || cli_maps_shadow(cm, index, e.key, &sh) < 0)
			text[0] = 0;	/* an unreadable map is doctor's to report */
		else
			cli_shadow_text(cm, &sh, text, sizeof(text));
		note.text = text;
		note.certain = !e.duplicate && text[0] && sh.found;
		note.stuck = stuck;
		note.deferred = NULL;
		if (stuck != NULL && !e.duplicate) {
			char key[1024];

			if (e.key_len < sizeof(key)) {
				memcpy(key, e.key, e.key_len);
				key[e.key_len] = '\0';
				note.deferred = cli_stuck_find(stuck, key);
			}
		}
		if (entries)
			json_array_append_new(entries, entry_json(&e, policy,
								  prc ? pdiag.message : NULL,
								  digest, &note));
		else {
			putchar('\n');
			entry_text(&e, policy, prc ? pdiag.message : NULL, digest, &note);
		}
		tp_policy_free(policy);
	}
	return EX_SUCCESS;
}

/* The other tables of the list whose entries can be read: hash, btree, texthash. */
static int
separate_table(const tp_map_info *info)
{
	return info->path && (info->writable || strcmp(info->type, "texthash") == 0);
}

static int
list_separate(struct cli *cli, struct cli_maps *cm, const char *written,
	      const char *digest, json_t *root)
{
	json_t *tables = root ? json_array() : NULL;
	int rc = EX_SUCCESS;

	/* A table named with -m but not listed: main.cf's maps are not its peers. */
	if (cm->table == SIZE_MAX) {
		if (root)
			json_object_set_new(root, "separate_tables", tables);
		return rc;
	}

	for (size_t i = 0; cm->maps && i < tp_maps_count(cm->maps) && rc == EX_SUCCESS; i++) {
		const tp_map_info *info = tp_maps_at(cm->maps, i);
		tp_doc_opts opts = cli_doc_opts(cli);
		tp_diag d = TP_DIAG_INIT;
		tp_doc *doc = NULL;
		json_t *entries;

		if (i == cm->table || !separate_table(info))
			continue;
		if (tp_doc_load(&doc, info->path, &opts, &d) != 0) {
			if (!cli->quiet)
				cli_warnf("%s: %s", info->spec, d.message);
			continue;
		}
		if (root) {
			json_t *t = json_object();

			entries = json_array();
			json_object_set_new(t, "map", json_string(info->spec));
			json_object_set_new(t, "source", json_string(info->path));
			rc = list_entries(cm, i, doc, digest, NULL, entries);
			json_object_set_new(t, "entries", entries);
			json_array_append_new(tables, t);
		} else {
			printf("\nseparate table: %s (tlspolicy writes %s; -m %s:%s works on this one)\n",
			       info->spec, written, info->type, info->path);
			rc = list_entries(cm, i, doc, digest, NULL, NULL);
		}
		tp_doc_free(doc);
	}
	if (root)
		json_object_set_new(root, "separate_tables", tables);
	return rc;
}

static json_t *
maps_json(struct cli_maps *cm)
{
	json_t *arr = json_array();

	for (size_t i = 0; cm->maps && i < tp_maps_count(cm->maps); i++) {
		const tp_map_info *info = tp_maps_at(cm->maps, i);
		json_t *m = json_object();

		json_object_set_new(m, "map", json_string(info->spec));
		json_object_set_new(m, "type", json_string(info->type));
		json_object_set_new(m, "path", info->path ? json_string(info->path) : json_null());
		json_object_set_new(m, "proxied", json_boolean(info->proxied));
		json_object_set_new(m, "evaluated", json_boolean(info->readable));
		json_object_set_new(m, "this_table", json_boolean(i == cm->table));
		json_array_append_new(arr, m);
	}
	return arr;
}

static void
maps_text(struct cli_maps *cm)
{
	if (cm->maps == NULL)
		return;
	printf("maps:");
	for (size_t i = 0; i < tp_maps_count(cm->maps); i++) {
		const tp_map_info *info = tp_maps_at(cm->maps, i);

		printf("%s %s%s", i ? "," : "", info->spec,
		       i == cm->table ? " [this table]"
		       : !info->readable ? " [cannot be evaluated here]" : "");
	}
	putchar('\n');
}

int
cmd_list(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int json = 0, ch, rc = EX_SUCCESS;
	tp_table *table = NULL;
	tp_doc *doc;
	tp_db_state state;
	tp_diag diag = TP_DIAG_INIT;
	const char *digest, *state_name;
	json_t *root = NULL, *entries = NULL;
	struct cli_maps cm = { NULL, SIZE_MAX };
	struct cli_stuck stuck;
	char written[8192];

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'h':
			list_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("list", ch, argv);
		}
	}
	if (optind != argc)
		return cli_usage("list", "unexpected argument \"%s\"", argv[optind]);
	if ((digest = cli_checked_digest(cli)) == NULL)
		return EX_FAIL;
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		return EX_FAIL;
	doc = tp_table_doc(table);
	cli_maps_open(cli, tp_map_type_name(tp_table_type(table)), tp_table_source(table), &cm);
	if (cli_stuck_read(cli, &cm, 10, &stuck) != EX_SUCCESS) {
		cli_maps_close(&cm);
		tp_table_free(table);
		return EX_FAIL;
	}
	/* Lines postmap skips are not entries: say so, as rebuild does. */
	cli_print_warnings(cli, table);
	if (tp_table_db_state(table, &state, &diag) != 0) {
		rc = cli_error(&diag);
		goto out;
	}
	state_name = cli_db_state_name(state);
	if (json) {
		root = json_object();
		entries = json_array();
		json_object_set_new(root, "table", json_string(tp_table_source(table)));
		json_object_set_new(root, "type", json_string(tp_map_type_name(tp_table_type(table))));
		json_object_set_new(root, "db", json_string(tp_table_db_path(table)));
		json_object_set_new(root, "db_state", json_string(state_name));
		json_object_set_new(root, "digest", json_string(digest));
		json_object_set_new(root, "maps", maps_json(&cm));
		json_object_set_new(root, "queue_read", json_boolean(stuck.available));
		json_object_set_new(root, "queue_error", stuck.available ? json_null() : json_string(stuck.why));
	} else {
		printf("table: %s:%s\n", tp_map_type_name(tp_table_type(table)),
		       tp_table_source(table));
		printf("db: %s (%s)\n", tp_table_db_path(table), state_name);
		printf("digest: %s\n", digest);
		maps_text(&cm);
	}
	if ((rc = list_entries(&cm, cm.table, doc, digest, &stuck, json ? entries : NULL)) != EX_SUCCESS)
		goto out;
	if (json) {
		json_object_set_new(root, "entries", entries);
		entries = NULL;
	}
	snprintf(written, sizeof(written), "%s:%s", tp_map_type_name(tp_table_type(table)),
		 tp_table_source(table));
	if ((rc = list_separate(cli, &cm, written, digest, root)) != EX_SUCCESS)
		goto out;
	if (json) {
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	}
out:
	json_decref(entries);
	json_decref(root);
	cli_stuck_free(&stuck);
	cli_maps_close(&cm);
	tp_table_free(table);
	return rc;
}
