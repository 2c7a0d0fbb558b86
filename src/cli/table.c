/*
 * NAME
 *	table - which policy table the commands work on
 * SUMMARY
 *	-m TYPE:PATH when given, else the first file-backed map of main.cf's
 *	smtp_tls_policy_maps; keys folded the way main.cf says postmap
 *	folds them (smtputf8_enable), whichever way the table was named,
 *	because postmap reads main.cf either way.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int
tp__buf_printf_cli(tp_buf *b, const char *fmt, ...) TP_CLI_PRINTF(2, 3);

static int
tp__buf_printf_cli(tp_buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	tp_buf_dispose(b);
	b->ptr = s;
	b->size = (size_t)n;
	b->asize = (size_t)n + 1;
	return 0;
}

/*
 * -m TYPE:PATH, or a bare path: default_database_type as for postmap.
 * With Postfix 3.11's redirection on, hash: and btree: name the table
 * Postfix reads under another type: that is the one written, and we say
 * so (once).
 */
static int
spec_from_option(struct cli *cli, tp_map_type *type, tp_buf *path)
{
	tp_config *config = cli_config(cli);
	const char *spec = cli->map_spec, *colon = strchr(spec, ':');
	tp_buf full = TP_BUF_INIT;
	tp_diag d = TP_DIAG_INIT;
	int rc;

	if (config && (colon == NULL || colon == spec || spec[strspn(spec, "abcdefghijklmnopqrstuvwxyz0123456789_")] != ':')) {
		const char *dtype = tp_config_get(config, "default_database_type");

		if (dtype && *dtype && tp__buf_printf_cli(&full, "%s:%s", dtype, spec) < 0)
			return cli_errorf("out of memory");
	}
	rc = tp_map_spec_parse(type, path, full.ptr ? full.ptr : spec, &d);
	tp_buf_dispose(&full);
	if (rc != 0)
		return cli_errorf("-m %s: %s", spec, d.message);
	return cli_redirect(cli, type, path->ptr);
}

int
cli_redirect(struct cli *cli, tp_map_type *type, const char *path)
{
	tp_config *config = cli_config(cli);
	const char *from = tp_map_type_name(*type), *to;
	tp_map_type t;

	if (config == NULL || (to = tp_config_effective_type(config, from)) == from
	    || strcmp(to, from) == 0)
		return EX_SUCCESS;
	if (tp_map_type_parse(&t, to) != 0 || t == TP_MAP_HASH || t == TP_MAP_BTREE)
		return cli_errorf("%s:%s: non_bdb_migration_level redirects %s: to \"%s\", which Postfix cannot use (set default_%s_type to lmdb or cdb)",
				  from, path, from, to, *type == TP_MAP_BTREE ? "cache_db" : "database");
	if (!cli->quiet && !cli->redirect_noted)
		cli_notef("%s:%s is read by Postfix as %s:%s (non_bdb_migration_level = %s): writing %s%s",
			  from, path, to, path, tp_config_get(config, "non_bdb_migration_level"),
			  path, tp_map_type_suffix(t));
	cli->redirect_noted = 1;
	*type = t;
	return EX_SUCCESS;
}

int
cli_table_spec(struct cli *cli, tp_map_type *type, tp_buf *path)
{
	tp_diag d = TP_DIAG_INIT;
	const tp_map_info *info;
	tp_config *config;
	tp_maps *maps;
	size_t index;
	int rc;

	if (cli->map_spec)
		return spec_from_option(cli, type, path);
	if ((config = cli_config(cli)) == NULL) {
		char buf[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32];

		if (cli->config_diag.status == TP_ENOTFOUND)
			return cli_errorf("no main.cf found in %s; name the table with -m TYPE:PATH",
					  cli->config_dir ? cli->config_dir : "/etc/postfix");
		return cli_errorf("%s; name the table with -m TYPE:PATH",
				  tp_diag_format(&cli->config_diag, buf, sizeof(buf)));
	}
	/* The first map tlspolicy can write, as Postfix reads it (redirected). */
	if ((rc = tp_maps_open(&maps, config, &d)) != 0) {
		if (rc == TP_ECONFIG)
			return cli_errorf("%s/main.cf: smtp_tls_policy_maps is not set; name the table with -m TYPE:PATH",
					  tp_config_dir(config));
		return cli_error(&d);
	}
	if (tp_maps_writable(maps, &index) != 0) {
		for (size_t i = 0; i < tp_maps_count(maps); i++) {
			info = tp_maps_at(maps, i);
			if (info->redirected_from && !info->readable) {
				rc = cli_errorf("%s: non_bdb_migration_level = %s redirects %s: to %s, a Berkeley DB type again, and Postfix fails the map; set %s to lmdb or cdb",
						info->spec, tp_config_get(config, "non_bdb_migration_level"),
						info->redirected_from,
						tp_config_effective_type(config, info->redirected_from),
						strcmp(info->redirected_from, "btree") == 0
						? "default_cache_db_type" : "default_database_type");
				tp_maps_free(maps);
				return rc;
			}
			if (info->type[0] == '\0') {	/* a bare path: no map for Postfix */
				rc = cli_errorf("%s/main.cf: smtp_tls_policy_maps: \"%s\" is not type:name: Postfix's SMTP client stops with a fatal error and defers all mail; write hash:%s (or -m TYPE:PATH)",
						tp_config_dir(config), info->spec, info->path);
				tp_maps_free(maps);
				return rc;
			}
		}
		rc = cli_errorf("%s/main.cf: no hash:, btree:, lmdb:, cdb: or texthash: table in smtp_tls_policy_maps = %s; name the table with -m TYPE:PATH",
				tp_config_dir(config), tp_config_get(config, "smtp_tls_policy_maps"));
		tp_maps_free(maps);
		return rc;
	}
	info = tp_maps_at(maps, index);
	rc = tp_map_type_parse(type, info->type) == 0 ? EX_SUCCESS
		: cli_errorf("%s: map type not supported", info->spec);
	if (rc == EX_SUCCESS && info->redirected_from && !cli->quiet && !cli->redirect_noted) {
		cli_notef("%s is read by Postfix as %s:%s (non_bdb_migration_level = %s): writing %s",
			  info->spec, info->type, info->path,
			  tp_config_get(config, "non_bdb_migration_level"), info->db);
		cli->redirect_noted = 1;
	}
	tp_buf_dispose(path);
	if (rc == EX_SUCCESS && (path->ptr = strdup(info->path)) == NULL)
		rc = cli_errorf("out of memory");
	if (rc == EX_SUCCESS) {
		path->size = strlen(path->ptr);
		path->asize = path->size + 1;
	}
	tp_maps_free(maps);
	return rc;
}

tp_doc_opts
cli_doc_opts(struct cli *cli)
{
	tp_doc_opts opts = TP_DOC_OPTS_INIT;
	tp_config *config = cli_config(cli);

	/* No main.cf: Postfix's built-in default, smtputf8_enable = yes. */
	if (config != NULL)
		opts.utf8 = tp_config_smtputf8(config);
	return opts;
}

int
cli_table_open(struct cli *cli, unsigned int flags, tp_table **out)
{
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_buf path = TP_BUF_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_map_type type;
	int rc;

	*out = NULL;
	if ((rc = cli_table_spec(cli, &type, &path)) != EX_SUCCESS)
		return rc;
	opts.doc = cli_doc_opts(cli);
	opts.flags = flags;
	rc = tp_table_open(out, type, path.ptr, &opts, &d) == 0 ? EX_SUCCESS
							     : cli_error(&d);
	tp_buf_dispose(&path);
	return rc;
}

void
cli_print_warnings(struct cli *cli, tp_table *table)
{
	const tp_doc *doc = tp_table_doc(table);

	if (cli->quiet)
		return;
	/* postmap's own wording, so logs and habits carry over. */
	for (size_t i = 0; i < tp_doc_warning_count(doc); i++) {
		const tp_doc_warning *w = tp_doc_warning_at(doc, i);
		const char *m = w->message, *dup = strstr(m, ".db: duplicate entry: ");
		tp_map_type type = tp_table_type(table);

		/* The duplicate warning names the file as each postmap type does. */
		if (dup == NULL || type == TP_MAP_HASH || type == TP_MAP_BTREE)
			cli_warnf("%s", m);
		else if (type == TP_MAP_LMDB)
			cli_warnf("lmdb:%.*s%s", (int)(dup - m), m, dup + 3);
		else if (type == TP_MAP_CDB)
			cli_warnf("%.*s%s", (int)(dup - m), m, dup + 3);
		else
			cli_warnf("%.*s, line %lu%s (Postfix's SMTP client refuses a texthash table with a duplicate key: every lookup in it fails)",
				  (int)(dup - m), m, w->line, dup + 3);
	}
}
