/*
 * NAME
 *	table - which policy table the commands work on
 * SUMMARY
 *	-m TYPE:PATH when given, else the first file-backed map of main.cf's
 *	smtp_tls_policy_maps; keys folded the way main.cf says postmap
 *	folds them (smtputf8_enable), whichever way the table was named,
 *	because postmap reads main.cf either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/*
 * Like postmap: root writing a table owned by someone else does it as
 * the owner. The real and saved uid stay 0, so cli_regain_root() can
 * come back; meanwhile the process is not dumpable and the owner cannot
 * signal or trace it.
 */
static int
drop_to_owner(struct cli *cli, const char *source)
{
	struct stat st;
	int n;

	if (geteuid() != 0 || cli->dropped)
		return EX_SUCCESS;
	/* A symlinked source: the owner of the file it points to, as postmap's fstat. */
	if (stat(source, &st) < 0 || st.st_uid == 0)
		return EX_SUCCESS;	/* a new table, or root's: nothing to drop */
	if ((n = getgroups(0, NULL)) < 0
	    || (cli->saved_groups = calloc((size_t)n + 1, sizeof(gid_t))) == NULL
	    || (cli->saved_ngroups = getgroups(n, cli->saved_groups)) < 0)
		return cli_errorf("cannot read the supplementary groups: %s", strerror(errno));
	cli->saved_egid = getegid();
	if (setgroups(1, &st.st_gid) < 0 || setegid(st.st_gid) < 0
	    || seteuid(st.st_uid) < 0)
		return cli_errorf("cannot switch to uid %lu, the owner of %s: %s",
				  (unsigned long)st.st_uid, source, strerror(errno));
	cli->dropped = 1;
	if (cli->verbose)
		cli_notef("writing %s as its owner, uid %lu gid %lu, as postmap does",
			  source, (unsigned long)st.st_uid, (unsigned long)st.st_gid);
	return EX_SUCCESS;
}

int
cli_regain_root(struct cli *cli)
{
	if (!cli->dropped)
		return EX_SUCCESS;
	if (seteuid(0) < 0 || setegid(cli->saved_egid) < 0
	    || setgroups((size_t)cli->saved_ngroups, cli->saved_groups) < 0)
		return cli_errorf("cannot switch back to root: %s", strerror(errno));
	cli->dropped = 0;
	free(cli->saved_groups);
	cli->saved_groups = NULL;
	return EX_SUCCESS;
}

int
cli_table_writable(const char *source)
{
	const char *slash = strrchr(source, '/');
	char *dir = slash ? strndup(source, slash == source ? 1 : (size_t)(slash - source))
			  : strdup(".");
	char lock[4096];
	int ok;

	if (dir == NULL)
		return 1;	/* out of memory: let the write say what fails */
	ok = faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0;
	if (ok && (size_t)snprintf(lock, sizeof(lock), "%s.lock", source) < sizeof(lock))
		ok = faccessat(AT_FDCWD, lock, R_OK | W_OK, AT_EACCESS) == 0 || errno == ENOENT;
	free(dir);
	return ok;
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
	opts.lock_timeout = cli->lock_timeout;
	if ((flags & TP_TABLE_WRITE) && (rc = drop_to_owner(cli, path.ptr)) != EX_SUCCESS) {
		tp_buf_dispose(&path);
		return rc;
	}
	if (tp_table_open(out, type, path.ptr, &opts, &d) == 0)
		rc = EX_SUCCESS;
	else if (cli->dropped)
		/* Say why root was refused: postmap would be too. */
		rc = cli_errorf("%s (writing as uid %lu, the owner of %s, as postmap does)",
				d.message, (unsigned long)geteuid(), path.ptr);
	else if ((flags & TP_TABLE_WRITE) && d.status == TP_EIO && geteuid() != 0
		 && !cli_table_writable(path.ptr))
		rc = cli_errorf("%s is not writable by uid %lu: run this as root or as the table's owner (%s)",
				path.ptr, (unsigned long)geteuid(), d.message);
	else
		rc = cli_error(&d);
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
