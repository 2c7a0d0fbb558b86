/*
 * NAME
 *	cli - shared state and helpers of the tlspolicy commands
 * DESCRIPTION
 *	Each command is "int cmd_NAME(struct cli *cli, int argc, char **argv)"
 *	with argv[0] the command name; it returns the process exit status.
 *	Global options (-c, -m, -d, -v, -q) are parsed before it runs.
 *
 *	cli_config() loads main.cf on first use (NULL when there is none;
 *	the reason is kept for cli_table_spec's error). cli_digest() is -d,
 *	else main.cf's effective digest, else sha256 (Postfix's default
 *	since compatibility level 3.6) when there is no main.cf.
 *
 *	cli_error() prints "tlspolicy: " and the diagnostic, one line, on
 *	stderr; cli_errorf() the same from a format. Both return EX_FAIL so
 *	commands can "return cli_error(...)". cli_usage() prints a usage
 *	error and returns EX_USAGE_ERR.
 */
#ifndef TP_CLI_H
#define TP_CLI_H

#include <stdio.h>

#include <tlspolicy.h>

#define TP_CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum {
	EX_SUCCESS = 0,
	EX_FAIL = 1,		/* failure, or changes pending */
	EX_USAGE_ERR = 64	/* sysexits EX_USAGE */
};

struct cli {
	const char *config_dir;	/* -c DIR, else NULL */
	const char *map_spec;	/* -m MAP, else NULL */
	const char *digest_opt;	/* -d DIGEST, else NULL */
	int verbose;
	int quiet;
	tp_config *config;
	int config_loaded;
	tp_diag config_diag;
};

tp_config *cli_config(struct cli *cli);
/*
 * cli_table_open() opens the policy table named by -m, else the first
 * file-backed map of main.cf's smtp_tls_policy_maps, with the key folding
 * main.cf implies (smtputf8_enable). flags: TP_TABLE_WRITE to lock it for
 * an update. On failure it prints the error and returns EX_FAIL.
 * cli_doc_opts() gives the parse options main.cf implies.
 * cli_table_spec() only names the table (type and source path), for
 * commands that read the db alone. cli_print_warnings() prints the
 * source's postmap warnings on stderr, "tlspolicy: warning: " and
 * postmap's text (unless -q).
 */
int cli_table_open(struct cli *cli, unsigned int flags, tp_table **out);
int cli_table_spec(struct cli *cli, tp_map_type *type, tp_buf *path);
void cli_print_warnings(struct cli *cli, tp_table *table);
tp_doc_opts cli_doc_opts(struct cli *cli);
void cli_cleanup(struct cli *cli);
const char *cli_digest(struct cli *cli);
int cli_error(const tp_diag *diag);
int cli_errorf(const char *fmt, ...) TP_CLI_PRINTF(1, 2);
int cli_usage(const char *command, const char *fmt, ...) TP_CLI_PRINTF(2, 3);
/* Parse a positive number of seconds ("30", "2.5"); -1 when malformed. */
double cli_parse_seconds(const char *s);

int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_get(struct cli *cli, int argc, char **argv);
int cmd_set(struct cli *cli, int argc, char **argv);
int cmd_remove(struct cli *cli, int argc, char **argv);
int cmd_rebuild(struct cli *cli, int argc, char **argv);
int cmd_doctor(struct cli *cli, int argc, char **argv);
int cmd_probe(struct cli *cli, int argc, char **argv);

#endif
