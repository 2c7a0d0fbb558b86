/*
 * NAME
 *	export - the table's full state, for backups and other tools
 * DESCRIPTION
 *	Text: one line per entry Postfix uses (later duplicates are left
 *	out), in the format import reads back: KEY, the annotation's hosts
 *	as --from HOST:PORT, --pin pkey, --wrapper, then the entry's value
 *	(level and attributes, pins as match=). import of it writes the
 *	same entries and values without probing (the pins are given).
 *
 *	JSON (--json): every entry, duplicates included, with its line,
 *	value, level, pins with the digest their length implies, other
 *	attributes, and the annotation (from, pin kind, keys, and the fields
 *	rotate keeps: next, since, old, old-until, wrappermode).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static void
export_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] export [--json]\n"
		"\n"
		"Write the table's full state on stdout, for backups and other tools.\n"
		"Without --json: one line per entry Postfix uses, in the format import\n"
		"reads (see 'tlspolicy import --help'; the hosts the pins came from, the\n"
		"pin kind and wrapper mode, then level and attributes, pins as match=),\n"
		"so 'tlspolicy import' of it writes the same entries without probing.\n"
		"\n"
		"  --json   every entry (duplicates too): key, line, value, level, pins\n"
		"           with their digests, attributes, and the annotation (from,\n"
		"           pin kind, public keys, rotate's fields)\n");
}

/* Fields of the annotation besides from=, pin= and keys=. */
static const char *const other_fields[] = {
	"wrappermode", "next", "since", "old", "old-until",
};

static json_t *
entry_json(const tp_doc *doc, size_t i, const tp_entry *e,
	   const tp_policy *policy, const char *problem)
{
	json_t *obj = json_object(), *pins = json_array(), *attrs = json_array();
	json_t *ann = json_object(), *from = json_array(), *keys = json_array();
	tp_buf v = TP_BUF_INIT;
	int bad = obj == NULL || pins == NULL || attrs == NULL || ann == NULL ||
		  from == NULL || keys == NULL;

	if (bad)
		goto out;
	bad |= json_object_set_new(obj, "key", json_stringn(e->key, e->key_len));
	bad |= json_object_set_new(obj, "raw_key", json_string(e->raw_key));
	bad |= json_object_set_new(obj, "line", json_integer((json_int_t)e->line));
	bad |= json_object_set_new(obj, "last_line", json_integer((json_int_t)e->last_line));
	bad |= json_object_set_new(obj, "value", json_stringn(e->value, e->value_len));
	bad |= json_object_set_new(obj, "level",
				   json_string(tp_level_name(tp_policy_level(policy))));
	bad |= json_object_set_new(obj, "duplicate", json_boolean(e->duplicate));
	bad |= json_object_set_new(obj, "valid", json_boolean(problem == NULL));
	bad |= json_object_set_new(obj, "problem", problem ? json_string(problem) : json_null());
	for (size_t k = 0; k < tp_policy_pin_count(policy); k++) {
		const char *pin = tp_policy_pin_at(policy, k);
		const char *pd = tp_pin_digest(pin);
		json_t *p = json_object();

		bad |= p == NULL;
		if (p == NULL)
			break;
		bad |= json_object_set_new(p, "fingerprint", json_string(pin));
		bad |= json_object_set_new(p, "digest", pd ? json_string(pd) : json_null());
		bad |= json_array_append_new(pins, p);
	}
	for (size_t k = 0; k < tp_policy_attr_count(policy); k++) {
		const char *name, *value;
		json_t *a = json_object();

		bad |= a == NULL;
		if (a == NULL)
			break;
		tp_policy_attr_at(policy, k, &name, &value);
		bad |= json_object_set_new(a, "name", json_string(name));
		bad |= json_object_set_new(a, "value", json_string(value));
		bad |= json_array_append_new(attrs, a);
	}
	for (size_t k = 0; k < e->from_count; k++)
		bad |= json_array_append_new(from, json_string(e->from[k]));
	for (size_t k = 0; k < e->key_count; k++)
		bad |= json_array_append_new(keys, json_string(e->keys[k]));
	bad |= json_object_set(ann, "from", from);
	bad |= json_object_set_new(ann, "pin", e->pin_kind ? json_string(e->pin_kind) : json_null());
	bad |= json_object_set(ann, "keys", keys);
	for (size_t k = 0; k < sizeof(other_fields) / sizeof(other_fields[0]); k++) {
		int st = tp_doc_annotation_field(doc, i, other_fields[k], &v);

		if (st == TP_OK)
			bad |= json_object_set_new(ann, other_fields[k],
						   json_string(v.ptr ? v.ptr : ""));
		else
			bad |= st != TP_ENOTFOUND;
	}
	bad |= json_object_set(obj, "pins", pins);
	bad |= json_object_set(obj, "attributes", attrs);
	bad |= json_object_set(obj, "annotation", ann);
out:
	json_decref(pins);
	json_decref(attrs);
	json_decref(ann);
	json_decref(from);
	json_decref(keys);
	tp_buf_dispose(&v);
	if (bad) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* One entry as an import line. */
static void
entry_line(const tp_doc *doc, size_t i, const tp_entry *e)
{
	tp_buf v = TP_BUF_INIT;

	printf("%.*s", (int)e->key_len, e->key);
	for (size_t k = 0; k < e->from_count; k++)
		printf(" --from %s", e->from[k]);
	if (e->pin_kind && strcmp(e->pin_kind, "pkey") == 0)
		printf(" --pin pkey");
	if (tp_doc_annotation_field(doc, i, "wrappermode", &v) == TP_OK && v.ptr &&
	    strcmp(v.ptr, "yes") == 0)
		printf(" --wrapper");
	/* The value's words (Postfix splits it at these), one space apart. */
	for (size_t k = 0; k < e->value_len;) {
		size_t w;

		while (k < e->value_len && strchr(" \t\r\n,", e->value[k]))
			k++;
		for (w = k; w < e->value_len && !strchr(" \t\r\n,", e->value[w]); w++)
			;
		if (w > k)
			printf(" %.*s", (int)(w - k), e->value + k);
		k = w;
	}
	putchar('\n');
	tp_buf_dispose(&v);
}

int
cmd_export(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_table *table = NULL;
	const tp_doc *doc;
	json_t *root = NULL, *entries = NULL;
	int ch, json = 0, rc = EX_FAIL;
	char *text;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'h':
			export_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("export", ch, argv);
		}
	}
	if (optind != argc)
		return cli_usage("export", "no arguments: the table is -m or main.cf's");
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		return EX_FAIL;
	doc = tp_table_doc(table);
	if (json) {
		root = json_object();
		entries = json_array();
		if (root == NULL || entries == NULL ||
		    json_object_set_new(root, "source", json_string(tp_table_source(table))) ||
		    json_object_set_new(root, "map_type",
					json_string(tp_map_type_name(tp_table_type(table)))) ||
		    json_object_set_new(root, "digest", json_string(cli_digest(cli))) ||
		    json_object_set(root, "entries", entries)) {
			rc = cli_errorf("out of memory");
			goto out;
		}
	} else {
		printf("# tlspolicy export of %s: KEY [--from HOST:PORT]... [--pin pkey] [--wrapper] LEVEL [NAME=VALUE]...\n",
		       tp_table_source(table));
	}
	for (size_t i = 0; i < tp_doc_entry_count(doc); i++) {
		tp_entry e;
		tp_policy *policy = NULL;
		tp_diag pdiag = TP_DIAG_INIT;
		int prc;

		if (tp_doc_entry_at(doc, i, &e) != 0)
			continue;
		if (!json) {
			if (!e.duplicate)
				entry_line(doc, i, &e);
			continue;
		}
		prc = tp_policy_parse(&policy, e.value, e.value_len, &pdiag);
		if (policy == NULL || json_array_append_new(entries,
							    entry_json(doc, i, &e, policy,
								       prc ? pdiag.message : NULL))) {
			tp_policy_free(policy);
			rc = cli_errorf("out of memory");
			goto out;
		}
		tp_policy_free(policy);
	}
	if (json) {
		if ((text = json_dumps(root, JSON_INDENT(2))) == NULL) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		puts(text);
		free(text);
	}
	rc = fflush(stdout) == 0 && !ferror(stdout) ? EX_SUCCESS
	    : cli_errorf("error writing the export: standard output");
out:
	json_decref(entries);
	json_decref(root);
	tp_table_free(table);
	return rc;
}
