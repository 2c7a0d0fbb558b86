/*
 * What the commands need from main.cf. Placeholder until the main.cf
 * module lands: no configuration, Postfix's current default digest.
 */
#include "cli.h"

tp_config *
cli_config(struct cli *cli)
{
	cli->config_loaded = 1;
	return NULL;
}

const char *
cli_digest(struct cli *cli)
{
	return cli->digest_opt ? cli->digest_opt : "sha256";
}

void
cli_cleanup(struct cli *cli)
{
	(void)cli;
}
