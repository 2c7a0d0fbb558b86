/*
 * NAME
 *	remove - remove one entry of the policy table
 * DESCRIPTION
 *	Removes every entry whose key folds to KEY (so no later duplicate
 *	silently takes over), each with its annotation comment, then writes
 *	source and db under the table lock.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static void
remove_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] remove KEY [--dry-run] [--reload]\n"
		"           [--postfix-command PATH]\n"
		"\n"
		"Remove the entry for KEY with its tlspolicy annotation comment. Later\n"
		"duplicates of KEY (which Postfix ignores) go too, so none takes over.\n"
		"Exit status 1 when there is no such entry.\n"
		"\n"
		"  --dry-run              print the change as a unified diff, write nothing\n"
		"  --reload               run 'postfix -c DIR reload' after writing\n"
		"  --postfix-command P    the postfix program for --reload\n"
		"                         (default: $command_directory/postfix of main.cf)\n");
}

int
cmd_remove(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "reload", no_argument, NULL, 'r' },
		{ "postfix-command", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, dry_run = 0, reload = 0, written, rc = EX_FAIL;
	const char *postfix_command = NULL, *key;
	tp_table *table = NULL;
	tp_buf before = TP_BUF_INIT;
	tp_doc *doc;
	size_t idx, removed = 0;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		case 'r':
			reload = 1;
			break;
		case 'P':
			postfix_command = optarg;
			break;
		case 'h':
			remove_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("remove", ch, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage("remove", argc == optind ? "which KEY?" : "one KEY at a time");
	key = argv[optind];
	if (cli_table_open(cli, dry_run ? 0 : TP_TABLE_WRITE, &table) != EX_SUCCESS)
		return EX_FAIL;
	doc = tp_table_doc(table);
	/* The bytes before, for --dry-run's diff only: a copy of the file. */
	if (dry_run && tp_doc_serialize(doc, &before) != 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	while (tp_doc_find(doc, key, &idx) == 0) {
		/* tp_doc_find gives the winner; after removing it, a former
		 * duplicate becomes the winner and goes in the next round. */
		if (tp_doc_remove(doc, idx) != 0) {
			rc = cli_errorf("%s: cannot remove the entry", key);
			goto out;
		}
		removed++;
	}
	if (removed == 0) {
		rc = cli_errorf("%s: no entry for %s", tp_table_source(table), key);
		goto out;
	}
	if ((rc = cli_finish_edit(table, &before, dry_run, &written)) != EX_SUCCESS
	    || !written)
		goto out;
	if (!cli->quiet)
		printf("%s: removed%s (%s; %s)\n", key,
		       removed > 1 ? " with its duplicates" : "", tp_table_source(table),
		       cli_written_note(table));
	rc = EX_SUCCESS;
	tp_table_free(table);
	table = NULL;
	if (reload)
		rc = cli_reload(cli, postfix_command);
out:
	tp_table_free(table);
	tp_buf_dispose(&before);
	return rc;
}
