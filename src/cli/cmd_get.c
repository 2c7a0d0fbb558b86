/* Placeholder until the get command lands. */
#include "cli.h"

int
cmd_get(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	return cli_errorf("%s: not implemented yet", argv[0]);
}
