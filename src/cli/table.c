/*
 * NAME
 *	table - which policy table the commands work on
 * SUMMARY
 *	-m TYPE:PATH when given, else the first file-backed map of main.cf's
 *	smtp_tls_policy_maps; keys folded the way main.cf says postmap
 *	folds them (smtputf8_enable), whichever way the table was named,
 *	because postmap reads main.cf either way.
 */
#include <string.h>

#include "cli.h"

int
cli_table_spec(struct cli *cli, tp_map_type *type, tp_buf *path)
{
	tp_diag d = TP_DIAG_INIT;
	tp_config *config;
	const char *cpath;

	if (cli->map_spec) {
		if (tp_map_spec_parse(type, path, cli->map_spec, &d) != 0)
			return cli_errorf("-m %s: %s", cli->map_spec, d.message);
		return EX_SUCCESS;
	}
	if ((config = cli_config(cli)) == NULL) {
		char buf[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32];

		if (cli->config_diag.status == TP_ENOTFOUND)
			return cli_errorf("no main.cf found in %s; name the table with -m TYPE:PATH",
					  cli->config_dir ? cli->config_dir : "/etc/postfix");
		return cli_errorf("%s; name the table with -m TYPE:PATH",
				  tp_diag_format(&cli->config_diag, buf, sizeof(buf)));
	}
	if (tp_config_policy_map(config, type, &cpath, &d) != 0)
		return cli_error(&d);
	tp_buf_dispose(path);
	path->ptr = strdup(cpath);
	if (path->ptr == NULL)
		return cli_errorf("out of memory");
	path->size = strlen(cpath);
	path->asize = path->size + 1;
	return EX_SUCCESS;
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
	for (size_t i = 0; i < tp_doc_warning_count(doc); i++)
		cli_warnf("%s", tp_doc_warning_at(doc, i)->message);
}
