/*
 * NAME
 *	rebuild - write the database from the source, as postmap does
 * SUMMARY
 *	tlspolicy [-m MAP] rebuild: the records postmap would store (same
 *	bytes), written with the safe protocol: temp file, fsync, rename
 *	under the old database's lock. postmap's warnings about the source
 *	go to stderr in postmap's words.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void
rebuild_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [-c DIR] [-m MAP] rebuild\n"
		"\n"
		"Write the table's database (SOURCE.db) from its source file, as\n"
		"postmap(1) does: the same records, byte for byte. The new database\n"
		"is built beside the old one and renamed over it, so Postfix never\n"
		"sees a half-written table. Warnings about lines postmap would skip\n"
		"go to stderr.\n");
}

int
cmd_rebuild(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	tp_diag d = TP_DIAG_INIT;
	tp_buf path = TP_BUF_INIT;
	tp_map_type type;
	tp_table *table;
	struct stat st;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			rebuild_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_usage(argv[0], "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage(argv[0], "unexpected argument \"%s\"", argv[optind]);
	/* Unlike set, rebuild never creates a table: postmap fails too. */
	if ((rc = cli_table_spec(cli, &type, &path)) != EX_SUCCESS)
		return rc;
	if (stat(path.ptr, &st) < 0) {
		rc = cli_errorf("open %s: %s", path.ptr, strerror(errno));
		tp_buf_dispose(&path);
		return rc;
	}
	tp_buf_dispose(&path);
	/* The lock keeps a concurrent set/remove from slipping in between. */
	if ((rc = cli_table_open(cli, TP_TABLE_WRITE | TP_TABLE_REBUILD, &table)) != EX_SUCCESS)
		return rc;
	cli_print_warnings(cli, table);
	if (tp_table_rebuild(table, &d) != 0) {
		rc = cli_error(&d);
	} else {
		rc = EX_SUCCESS;
		if (cli->verbose)
			fprintf(stderr, "tlspolicy: wrote %s\n", tp_table_db_path(table));
	}
	tp_table_free(table);
	return rc;
}
