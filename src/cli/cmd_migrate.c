/*
 * NAME
 *	migrate - move the policy table to lmdb: or cdb:
 * SUMMARY
 *	tlspolicy migrate --to lmdb|cdb [--dry-run] [--reload]
 *	[--remove-old]: what NON_BERKELEYDB_README's manual migration does
 *	for the TLS policy table, safely: write the new database from the
 *	source, then change smtp_tls_policy_maps with the real postconf -e
 *	(main.cf is never edited by hand), then reload. The old database
 *	stays unless --remove-old.
 * DESCRIPTION
 *	Order matters: the new database exists (written and fsynced under
 *	the table's lock) before main.cf names it, so no Postfix process
 *	ever reads a map that is not there; main.cf is changed before the
 *	old file is removed, so the map main.cf names always exists.
 *	postconf -m must list the type, or nothing is written: a Postfix
 *	without the type would fail every TLS policy lookup.
 *
 *	The element of smtp_tls_policy_maps is changed as written (its
 *	$names kept): the raw value comes from postconf -h (not -x), is
 *	split as Postfix splits it, and must have the same elements as the
 *	expanded list, or migrate refuses rather than guess.
 *
 *	--flush, after the reload, asks Postfix to retry the mail deferred
 *	for the table's entries with a TLS failure, and the mail deferred
 *	because the policy lookup failed (a table Postfix could not read is
 *	the usual reason to migrate).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "stuck.h"

struct migrate_opts {
	const char *to;
	int dry_run;
	int reload;
	int remove_old;
	const char *postfix_command;
	const char *postconf_command;
	int flush;
};

static void
migrate_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [-c DIR] [-m MAP] migrate --to lmdb|cdb [--dry-run] [--reload]\n"
		"                 [--flush] [--remove-old] [--postfix-command PATH]\n"
		"                 [--postconf-command PATH]\n"
		"\n"
		"Move the policy table of smtp_tls_policy_maps to lmdb: or cdb:, as\n"
		"Postfix's NON_BERKELEYDB_README describes: write SOURCE.lmdb (or .cdb)\n"
		"from the source, change the map in smtp_tls_policy_maps with postconf -e\n"
		"(nothing else in main.cf changes), and with --reload reload Postfix.\n"
		"The old database is kept unless --remove-old. Refused, writing nothing,\n"
		"when postconf -m does not list the type.\n"
		"\n"
		"  --to TYPE            lmdb or cdb\n"
		"  --dry-run            say what would change; write nothing\n"
		"  --reload             run postfix -c DIR reload afterwards\n"
		"  --flush              with --reload: then ask Postfix to retry now the mail\n"
		"                       deferred for the table's entries with a TLS failure,\n"
		"                       or because the policy lookup failed (postqueue -i\n"
		"                       each message; never the whole queue)\n"
		"  --remove-old         remove the old database once main.cf names the new one\n"
		"  --postfix-command P  the postfix program for --reload\n"
		"  --postconf-command P the postconf program (default:\n"
		"                       $command_directory/postconf of main.cf)\n");
}

/* collect - a child's standard output, appended to a tp_buf */
static int
collect(void *ctx, const char *p, size_t n)
{
	tp_buf *out = ctx;
	char *grown = realloc(out->ptr, out->size + n + 1);

	if (grown == NULL)
		return -1;
	memcpy(grown + out->size, p, n);
	out->ptr = grown;
	out->size += n;
	out->ptr[out->size] = 0;
	out->asize = out->size + 1;
	return 0;
}

/*
 * run - argv (no shell) with Postfix's clean environment (a name without
 * '/' is found in the system's directories, not the caller's PATH); its
 * standard output into out (may be NULL). EX_SUCCESS when it exits 0;
 * else the error is printed.
 */
static int
run(char *const argv[], tp_buf *out)
{
	/* A --postconf-command without a slash is looked up in Postfix's PATH. */
	struct cli_run_opts o = { 1, 0, 0, 0, out ? collect : NULL, out };
	struct cli_run_result r;

	if (cli_run((const char *const *)argv, &o, &r) == 0)
		return EX_SUCCESS;
	if (!r.ran)
		return cli_errorf("%s", r.err);
	if (r.out_failed)
		return cli_errorf("%s %s: out of memory for its output", argv[0], argv[1] ? argv[1] : "");
	return cli_errorf("%s %s failed (%s %d)", argv[0], argv[1] ? argv[1] : "",
			  r.exited ? "exit status" : "signal", r.code);
}

/* Does "postconf -m" list type? */
static int
postfix_has_type(const struct migrate_opts *o, const char *dir, const char *type,
		 int *has)
{
	char *argv[] = { (char *)o->postconf_command, (char *)"-c", (char *)dir,
			 (char *)"-m", NULL };
	tp_buf out = TP_BUF_INIT;
	int rc = run(argv, &out);

	*has = 0;
	for (char *line = out.ptr, *next; rc == EX_SUCCESS && line && *line; line = next) {
		size_t n = strcspn(line, "\n");

		next = line[n] ? line + n + 1 : line + n;
		if (n == strlen(type) && strncmp(line, type, n) == 0)
			*has = 1;
	}
	tp_buf_dispose(&out);
	return rc;
}

/* Postfix's list split (mystrtokq): the element spans of s. */
static size_t
split_list(const char *s, size_t *start, size_t *len, size_t max)
{
	size_t i = 0, n = 0;

	while (s[i]) {
		int level = 0;
		size_t b;

		while (s[i] && strchr(", \t\r\n", s[i]))
			i++;
		if (!s[i])
			break;
		b = i;
		for (; s[i]; i++) {
			if (s[i] == '{')
				level++;
			else if (level > 0 && s[i] == '}')
				level--;
			else if (level == 0 && strchr(", \t\r\n", s[i]))
				break;
		}
		if (n < max) {
			start[n] = b;
			len[n] = i - b;
		}
		n++;
	}
	return n;
}

/*
 * The raw smtp_tls_policy_maps with element index retyped to "to":
 * "proxy:hash:X" -> "proxy:lmdb:X", "hash:X" -> "lmdb:X", "X" ->
 * "lmdb:X". NULL (and the reason printed) when the raw value does not
 * split into nexpanded elements.
 */
static char *
retyped(const char *raw, size_t index, size_t nexpanded, const char *to)
{
	size_t start[256], len[256], n = split_list(raw, start, len, 256), skip = 0, tlen = 0;
	const char *e, *colon;
	char *out;

	if (n != nexpanded || index >= n) {
		cli_errorf("smtp_tls_policy_maps = %s: its elements do not match the expanded list; change it with postconf -e by hand",
			   raw);
		return NULL;
	}
	e = raw + start[index];
	while (len[index] - skip > 6 && strncmp(e + skip, "proxy:", 6) == 0)
		skip += 6;
	colon = memchr(e + skip, ':', len[index] - skip);
	if (colon != NULL && colon > e + skip) {
		size_t tl = (size_t)(colon - (e + skip));

		if (strspn(e + skip, "abcdefghijklmnopqrstuvwxyz0123456789") == tl)
			tlen = tl + 1;
	}
	if (asprintf(&out, "%.*s%s:%s", (int)(start[index] + skip), raw, to,
		     e + skip + tlen) < 0)
		return NULL;
	return out;
}

/* The mail the old table kept waiting may go now. */
static int
migrate_after_reload(struct cli *cli, const struct migrate_opts *o)
{
	if (!o->flush)
		return EX_SUCCESS;
	return cli_stuck_release(cli, NULL, 0, 30, 1, NULL);
}

int
cmd_migrate(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "to", required_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "reload", no_argument, NULL, 'r' },
		{ "flush", no_argument, NULL, 'L' },
		{ "remove-old", no_argument, NULL, 'x' },
		{ "postfix-command", required_argument, NULL, 'p' },
		{ "postconf-command", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct migrate_opts o = { NULL, 0, 0, 0, NULL, NULL, 0 };
	struct cli_maps cm = { NULL, SIZE_MAX };
	tp_table_opts topts = TP_TABLE_OPTS_INIT;
	tp_buf path = TP_BUF_INIT, raw = TP_BUF_INIT;
	tp_map_type from, to;
	tp_table *table = NULL;
	tp_diag d = TP_DIAG_INIT;
	tp_config *config;
	const char *dir;
	char *new_value = NULL, *setting = NULL, *old_db = NULL;
	char postconf[4096], why[512];
	int ch, rc, has;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (ch) {
		case 't': o.to = optarg; break;
		case 'n': o.dry_run = 1; break;
		case 'r': o.reload = 1; break;
		case 'L': o.flush = 1; break;
		case 'x': o.remove_old = 1; break;
		case 'p': o.postfix_command = optarg; break;
		case 'P': o.postconf_command = optarg; break;
		case 'h':
			migrate_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("migrate", ch, argv);
		}
	}
	if (optind != argc)
		return cli_usage("migrate", "unexpected argument \"%s\"", argv[optind]);
	if (o.to == NULL)
		return cli_usage("migrate", "--to lmdb or --to cdb is required");
	/* Postfix reads main.cf's new map only after a reload. */
	if (o.flush && !o.reload)
		return cli_usage("migrate", "--flush needs --reload: until then Postfix reads the old map");
	if (tp_map_type_parse(&to, o.to) != 0 || (to != TP_MAP_LMDB && to != TP_MAP_CDB))
		return cli_usage("migrate", "--to %s: use lmdb or cdb", o.to);
	if ((config = cli_config(cli)) == NULL)
		return cli_errorf("%s: migrate changes main.cf, and there is none", cli->config_diag.message);
	dir = tp_config_dir(config);
	if (o.postconf_command == NULL) {
		/* Postfix's own, by absolute path, as for postfix reload. */
		if (cli_postfix_program(cli, "postconf", postconf, sizeof(postconf), why, sizeof(why)) < 0)
			return cli_errorf("%s/main.cf: %s; cannot run postconf", dir, why);
		o.postconf_command = postconf;
	}
	if ((rc = cli_table_spec(cli, &from, &path)) != EX_SUCCESS)
		return rc;
	cli_maps_open(cli, tp_map_type_name(from), path.ptr, &cm);
	if (cm.table == SIZE_MAX) {
		rc = cli_errorf("%s:%s is not in smtp_tls_policy_maps of %s/main.cf: nothing to migrate",
				tp_map_type_name(from), path.ptr, dir);
		goto out;
	}
	if (tp_maps_at(cm.maps, cm.table)->redirected_from == NULL && from == to) {
		printf("%s:%s is already %s\n", o.to, path.ptr, o.to);
		rc = EX_SUCCESS;
		goto out;
	}
	/* Refuse, writing nothing, when this Postfix cannot read the type. */
	if ((rc = postfix_has_type(&o, dir, o.to, &has)) != EX_SUCCESS)
		goto out;
	if (!has) {
		rc = cli_errorf("Postfix here has no %s: support (postconf -m does not list it; Debian: install postfix-%s): nothing changed",
				o.to, o.to);
		goto out;
	}
	{
		char *pargv[] = { (char *)o.postconf_command, (char *)"-c", (char *)dir,
				  (char *)"-h", (char *)"smtp_tls_policy_maps", NULL };

		if ((rc = run(pargv, &raw)) != EX_SUCCESS)
			goto out;
		while (raw.size > 0 && (raw.ptr[raw.size - 1] == '\n' || raw.ptr[raw.size - 1] == ' '))
			raw.ptr[--raw.size] = 0;
	}
	if ((new_value = retyped(raw.ptr ? raw.ptr : "", cm.table, tp_maps_count(cm.maps), o.to)) == NULL) {
		rc = EX_FAIL;
		goto out;
	}
	if (asprintf(&old_db, "%s%s", path.ptr, tp_map_type_suffix(from)) < 0
	    || asprintf(&setting, "smtp_tls_policy_maps = %s", new_value) < 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	if (o.dry_run) {
		printf("would write %s%s from %s\n", path.ptr, tp_map_type_suffix(to), path.ptr);
		printf("would run: %s -c %s -e '%s'\n", o.postconf_command, dir, setting);
		if (o.reload)
			printf("would run: %s -c %s reload\n", o.postfix_command ? o.postfix_command : "postfix", dir);
		if (o.flush)
			printf("would ask Postfix to retry the mail deferred for the table (postqueue -i)\n");
		if (o.remove_old && from != TP_MAP_TEXTHASH && strcmp(tp_map_type_suffix(from), tp_map_type_suffix(to)))
			printf("would remove %s\n", old_db);
		rc = EX_SUCCESS;
		goto out;
	}
	/* 1. The new database, under the table's lock, from the source. */
	topts.doc = cli_doc_opts(cli);
	topts.flags = TP_TABLE_WRITE;
	topts.lock_timeout = cli->lock_timeout;
	if (tp_table_open(&table, to, path.ptr, &topts, &d) != 0 || tp_table_rebuild(table, &d) != 0) {
		rc = cli_error(&d);
		goto out;
	}
	cli_print_warnings(cli, table);
	printf("wrote %s\n", tp_table_db_path(table));
	/* 2. main.cf, by Postfix's own tool. */
	{
		char *pargv[] = { (char *)o.postconf_command, (char *)"-c", (char *)dir,
				  (char *)"-e", setting, NULL };

		if ((rc = run(pargv, NULL)) != EX_SUCCESS)
			goto out;
	}
	printf("%s/main.cf: smtp_tls_policy_maps = %s\n", dir, new_value);
	/* 3. Postfix reads the new table at once. */
	if (o.reload) {
		if ((rc = cli_reload(cli, o.postfix_command)) != EX_SUCCESS)
			goto out;
		if ((rc = migrate_after_reload(cli, &o)) != EX_SUCCESS)
			goto out;
	} else if (!cli->quiet) {
		cli_notef("Postfix processes reading the old table notice the change and restart; 'postfix reload' (--reload) makes it immediate");
	}
	/* 4. The old database, once nothing names it. */
	if (o.remove_old && from != TP_MAP_TEXTHASH
	    && strcmp(tp_map_type_suffix(from), tp_map_type_suffix(to)) != 0) {
		if (unlink(old_db) < 0 && errno != ENOENT) {
			rc = cli_errorf("remove %s: %s", old_db, strerror(errno));
			goto out;
		}
		printf("removed %s\n", old_db);
	}
	rc = EX_SUCCESS;
out:
	tp_table_free(table);
	cli_maps_close(&cm);
	tp_buf_dispose(&path);
	tp_buf_dispose(&raw);
	free(new_value);
	free(setting);
	free(old_db);
	return rc;
}
