/*
 * What the commands need from main.cf: loaded once, on first use, so
 * commands that do not need it (probe with -d) work without Postfix.
 */
#include <stdlib.h>

#include "cli.h"

tp_config *
cli_config(struct cli *cli)
{
	if (!cli->config_loaded) {
		cli->config_loaded = 1;
		tp_diag_clear(&cli->config_diag);
		if (tp_config_load(&cli->config, cli->config_dir,
				   &cli->config_diag) != 0)
			cli->config = NULL;
	}
	return cli->config;
}

int
cli_config_unusable(struct cli *cli, char *why, size_t size)
{
	if (cli_config(cli) != NULL || cli->config_diag.status == TP_ENOTFOUND)
		return 0;
	tp_diag_format(&cli->config_diag, why, size);
	return 1;
}

const char *
cli_digest(struct cli *cli)
{
	tp_config *config;

	if (cli->digest_opt)
		return cli->digest_opt;
	config = cli_config(cli);
	/* Without main.cf, Postfix's default since compatibility level 3.6. */
	return config ? tp_config_digest(config) : "sha256";
}

void
cli_cleanup(struct cli *cli)
{
	tp_config_free(cli->config);
	cli->config = NULL;
	/*
	 * Back to root before exit: LeakSanitizer (the ASan build) checks
	 * the process from a thread of its own with ptrace, which a process
	 * that changed its euid allows only with root's capabilities.
	 */
	(void)cli_regain_root(cli);
	free(cli->saved_groups);
	cli->saved_groups = NULL;
}
