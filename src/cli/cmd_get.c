/*
 * NAME
 *	get - the value Postfix finds for a key, like postmap -q
 * SUMMARY
 *	tlspolicy [-m MAP] get KEY: folds KEY as postmap -q does (lower
 *	case; full UTF-8 folding when smtputf8_enable is on), looks it up in
 *	the database (not the source: that is what Postfix reads) and prints
 *	the value. Exit 1, silently, when the key is absent, as postmap -q.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void
get_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [-c DIR] [-m MAP] get KEY\n"
		"\n"
		"Print the value Postfix finds for KEY in the table's database, like\n"
		"postmap -q. KEY is folded to lower case as postmap folds it. Only\n"
		"KEY itself is looked up: no parent domains, no [host]:port variants.\n"
		"Exit status 0 when found, 1 when absent or on error.\n");
}

int
cmd_get(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_buf path = TP_BUF_INIT, key = TP_BUF_INIT, value = TP_BUF_INIT;
	char *db = NULL;
	tp_diag d = TP_DIAG_INIT;
	tp_doc_opts opts;
	tp_map_type type;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			get_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_usage(argv[0], "unknown option %s", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return cli_usage(argv[0], argc - optind ? "one KEY only" : "KEY missing");
	/* The db alone: a missing or broken source must not stop a lookup. */
	if ((rc = cli_table_spec(cli, &type, &path)) != EX_SUCCESS)
		return rc;
	opts = cli_doc_opts(cli);
	rc = tp_key_fold(&key, argv[optind], &opts);
	if (rc == TP_EINVALID) {
		/* postmap -q warns and finds nothing. */
		if (!cli->quiet)
			cli_warnf("non-UTF-8 key \"%s\"", argv[optind]);
		rc = EX_FAIL;
		goto out;
	}
	if (rc != 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	if ((db = malloc(path.size + strlen(tp_map_type_suffix(type)) + 1)) == NULL) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	strcpy(db, path.ptr);
	strcat(db, tp_map_type_suffix(type));
	rc = tp_map_lookup_timed(type, db, key.ptr, &value, cli->lock_timeout, &d);
	if (rc == 0) {
		printf("%s\n", value.ptr);
		rc = fflush(stdout) == 0 ? EX_SUCCESS
					 : cli_errorf("error writing standard output");
	} else if (rc == TP_ENOTFOUND) {
		rc = EX_FAIL;
	} else {
		rc = cli_error(&d);
	}
out:
	tp_buf_dispose(&path);
	free(db);
	tp_buf_dispose(&key);
	tp_buf_dispose(&value);
	return rc;
}
