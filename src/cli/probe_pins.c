/*
 * --fingerprint-from: what live servers present. Placeholder until the
 * STARTTLS probe engine lands.
 */
#include "cli.h"

int
cli_probe_pins(struct cli *cli, const char *const *hosts, size_t nhosts,
	       const char *pin_kind, double timeout, const char *digest,
	       tp_strarray *pins)
{
	(void)cli;
	(void)nhosts;
	(void)pin_kind;
	(void)timeout;
	(void)digest;
	(void)pins;
	return cli_errorf("--fingerprint-from %s: the STARTTLS probe is not built yet",
			  hosts[0]);
}
