/*
 * What the commands say about one entry after an edit.
 */
#include <stdlib.h>

#include "cli.h"

int
cli_check_entry(const tp_doc *doc, size_t idx, const char *source)
{
	tp_entry e;
	tp_policy *policy = NULL;
	tp_diag diag = TP_DIAG_INIT;
	int rc;

	if (tp_doc_entry_at(doc, idx, &e) != 0)
		return cli_errorf("%s: entry %zu vanished", source, idx);
	rc = tp_policy_parse(&policy, e.value, e.value_len, &diag);
	tp_policy_free(policy);
	if (rc == TP_ENOMEM)
		return cli_errorf("out of memory");
	if (rc != 0)
		return cli_errorf("%s:%lu: %.*s: Postfix would reject this entry (%s); nothing written",
				  source, e.line, (int)e.key_len, e.key, diag.message);
	return EX_SUCCESS;
}

const char *
cli_written_note(const tp_table *table)
{
	if (tp_table_type(table) == TP_MAP_TEXTHASH)
		return "texthash: no database";
	/* A copy of the db with the changed records, or a new one. */
	return tp_table_db_written(table, NULL) == TP_TABLE_DB_UPDATED ? "db updated"
	    : "db rebuilt";
}

void
cli_print_entry_summary(tp_table *table, size_t idx)
{
	const tp_doc *doc = tp_table_doc(table);
	const char *source = tp_table_source(table);
	tp_entry e;
	tp_policy *policy = NULL;

	if (tp_doc_entry_at(doc, idx, &e) != 0)
		return;
	tp_policy_parse(&policy, e.value, e.value_len, NULL);
	if (policy == NULL)
		return;
	printf("%.*s: %s", (int)e.key_len, e.key, tp_level_name(tp_policy_level(policy)));
	if (tp_policy_level(policy) == TP_LEVEL_FINGERPRINT)
		printf(", %zu pin%s", tp_policy_pin_count(policy),
		       tp_policy_pin_count(policy) == 1 ? "" : "s");
	printf(" (%s:%lu; %s)\n", source, e.line, cli_written_note(table));
	tp_policy_free(policy);
}
