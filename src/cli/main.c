/*
 * NAME
 *	tlspolicy - keep Postfix's TLS policy table correct
 * SUMMARY
 *	The command line over libtlspolicy. It uses only the public API.
 */
#include <stdio.h>
#include <string.h>

#include <tlspolicy.h>

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("tlspolicy %s\n", TLSPOLICY_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: tlspolicy [-c DIR] [-m MAP] [-d DIGEST] COMMAND ...\n");
	return 64;
}
