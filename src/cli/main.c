/*
 * NAME
 *	tlspolicy - keep Postfix's TLS policy table correct
 * SUMMARY
 *	The command line over libtlspolicy. It uses only the public API:
 *	global options, command dispatch, and the helpers in cli.h.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *summary;
	int own_config_check;	/* reports an unusable main.cf itself */
} commands[] = {
	{ "list", cmd_list, "show every entry, its pins and whether the db is in step", 0 },
	{ "get", cmd_get, "print the value Postfix finds for KEY (like postmap -q)", 0 },
	{ "set", cmd_set, "create or update one entry in place", 0 },
	{ "remove", cmd_remove, "remove one entry", 0 },
	{ "import", cmd_import, "add or update many entries at once, from a file (one write)", 0 },
	{ "export", cmd_export, "write the table's full state (--json), for backups and tools", 0 },
	{ "rebuild", cmd_rebuild, "write the db from the source (what postmap does)", 0 },
	{ "doctor", cmd_doctor, "check the table and its configuration, offline", 0 },
	{ "migrate", cmd_migrate, "move the table to lmdb: or cdb: (writes the db, postconf -e, reload)", 0 },
	{ "rotate", cmd_rotate, "re-pin entries whose servers present a new certificate", 0 },
	{ "check", cmd_check, "monitor the pins (Nagios exit codes 0-3)", 1 },
	{ "probe", cmd_probe, "show the certificates an SMTP server presents", 0 },
};

/* --help works whatever main.cf says. */
static int
asks_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	return 0;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [-c DIR] [-m MAP] [-d DIGEST] [-v] [-q] [--syslog]\n"
		"                 [--lock-timeout S] COMMAND [options] [args]\n"
		"\n"
		"Keep Postfix's TLS policy table (smtp_tls_policy_maps) correct.\n"
		"\n"
		"Global options:\n"
		"  -c DIR     Postfix config directory (default $MAIL_CONFIG, else /etc/postfix)\n"
		"  -m MAP     the policy table as TYPE:PATH or a bare path (hash:PATH);\n"
		"             default: the first file-backed map in smtp_tls_policy_maps\n"
		"  -d DIGEST  fingerprint digest (default: main.cf's smtp_tls_fingerprint_digest)\n"
		"  -v         more detail\n"
		"  -q         quiet: errors only, no progress display (rotate still\n"
		"             shows the plan it asks a 'yes' for)\n"
		"  --syslog   also log errors and warnings to syslog (facility mail),\n"
		"             as is done anyway when stderr is not a terminal\n"
		"  --lock-timeout S\n"
		"             give up when the table or its db stays locked S seconds\n"
		"             (default %g; 0: do not wait)\n"
		"\n"
		"Commands:\n", TP_LOCK_TIMEOUT_DEFAULT);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(fp, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(fp,
		"\n"
		"Run 'tlspolicy COMMAND --help' for a command's options.\n"
		"Exit status: 0 success, 1 failure or changes pending, 64 usage error;\n"
		"check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n");
}

int
cli_error(const tp_diag *diag)
{
	char buf[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32];

	cli_msg_error(tp_diag_format(diag, buf, sizeof(buf)));
	return EX_FAIL;
}

int
cli_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_msg_verror(fmt, ap);
	va_end(ap);
	return EX_FAIL;
}

int
cli_usage(const char *command, const char *fmt, ...)
{
	char what[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	cli_errorf("%s%s%s (see 'tlspolicy %s%s--help')",
		   command ? command : "", command ? ": " : "", what,
		   command ? command : "", command ? " " : "");
	return EX_USAGE_ERR;
}

double
cli_parse_seconds(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400)
		return -1;
	return v;
}

/* Seconds for --lock-timeout: 0 to a day; -1 when malformed. */
static double
parse_lock_timeout(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 86400)
		return -1;
	return v;
}

static const struct option global_options[] = {
	{ "syslog", no_argument, NULL, 'S' },
	{ "lock-timeout", required_argument, NULL, 'L' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
	struct cli cli;
	int ch;

	memset(&cli, 0, sizeof(cli));
	cli.lock_timeout = TP_LOCK_TIMEOUT_DEFAULT;
	cli_msg_setup(0, 0);	/* errors in the global options */
	cli.config_dir = getenv("MAIL_CONFIG");
	if (cli.config_dir && !*cli.config_dir)
		cli.config_dir = NULL;
	/* "+": stop at the command; its options are its own. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:c:m:d:vqh", global_options, NULL)) != -1) {
		switch (ch) {
		case 'V':
			printf("tlspolicy %s\n", TLSPOLICY_VERSION);
			return EX_SUCCESS;
		case 'c':
			cli.config_dir = optarg;
			break;
		case 'm':
			cli.map_spec = optarg;
			break;
		case 'd':
			cli.digest_opt = optarg;
			break;
		case 'v':
			cli.verbose++;
			break;
		case 'q':
			cli.quiet = 1;
			break;
		case 'S':
			cli.syslog = 1;
			break;
		case 'L':
			if ((cli.lock_timeout = parse_lock_timeout(optarg)) < 0)
				return cli_usage(NULL, "--lock-timeout %s: want seconds, 0 to 86400",
						 optarg);
			break;
		case 'h':
			usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option(NULL, ch, argv);
		}
	}
	cli_msg_setup(cli.syslog, cli.quiet);
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE_ERR;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			char **cargv = argv + optind;
			int cargc = argc - optind;
			char why[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32];
			int rc;

			if (!commands[i].own_config_check && !asks_help(cargc, cargv)
			    && cli_config_unusable(&cli, why, sizeof(why))) {
				rc = cli_errorf("%s", why);
				cli_cleanup(&cli);
				return rc;
			}
			/* 0, not 1: glibc then forgets the "+" (no permuting)
			 * of the global parse, so options may follow KEY. */
			optind = 0;
			opterr = 0;
			rc = commands[i].run(&cli, cargc, cargv);
			cli_cleanup(&cli);
			return rc;
		}
	}
	return cli_usage(NULL, "unknown command \"%s\"", argv[optind]);
}
