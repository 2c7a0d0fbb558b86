/*
 * NAME
 *	mx - the hosts a bare-domain key sends mail to
 * DESCRIPTION
 *	cli_mx_hosts() fills hosts with "mxhost:25" for each MX host of
 *	domain (its A/AAAA records when it has no MX, as SMTP does). Until
 *	the resolver module is merged it says so and fails: an entry keyed
 *	by a bare domain then needs its hosts recorded (set
 *	--fingerprint-from) for rotate and check to probe it.
 */
#include <stdio.h>

#include "cli.h"

int
cli_mx_hosts(struct cli *cli, const char *domain, tp_strarray *hosts,
	     char *err, size_t errsize)
{
	(void)cli;
	(void)hosts;
	snprintf(err, errsize,
		 "%s: no hosts recorded and MX lookup is not built in yet; record them with 'tlspolicy set %s --fingerprint-from MXHOST'",
		 domain, domain);
	return -1;
}
