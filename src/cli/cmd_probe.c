/* Placeholder until the probe command lands. */
#include "cli.h"

int
cmd_probe(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	return cli_errorf("%s: not implemented yet", argv[0]);
}
