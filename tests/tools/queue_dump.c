/*
 * queue_dump - libtlspolicy's view of a Postfix queue, for shell tests
 *
 *	postqueue -c DIR -j | queue_dump -c DIR
 *	queue_dump -c DIR --route ADDRESS...
 *
 * The first form reads postqueue -j output on stdin and prints one line
 * per recipient, tab-separated:
 *
 *	QUEUE_ID ADDRESS CLASS DELAY_REASON DESTINATIONS
 *
 * CLASS is tp_queue_tls_name() of the reason, DELAY_REASON "-" when
 * there is none, DESTINATIONS the recipient's next hops (space-separated)
 * as tp_route_find() gives them with DIR/main.cf, or "error: MESSAGE".
 * A last line "malformed N" counts the lines skipped.
 *
 * The second prints "ADDRESS<TAB>TRANSPORT<TAB>DESTINATIONS" per address.
 * Exit 0, or 1 when the queue or main.cf cannot be read.
 */
#include <stdio.h>
#include <string.h>

#include "tlspolicy.h"

static void
print_route(tp_route *route, const char *address, int with_transport)
{
	const tp_route_result *res;
	tp_diag diag = TP_DIAG_INIT;

	if (tp_route_find(route, address, &res, &diag) < 0) {
		printf("%serror: %s", with_transport ? "-\t" : "", diag.message);
		return;
	}
	if (with_transport)
		printf("%s\t", res->transport);
	for (size_t i = 0; i < res->destination_count; i++)
		printf("%s%s", i ? " " : "", res->destinations[i]);
}

static int
usage(void)
{
	fprintf(stderr, "usage: queue_dump -c DIR [--route ADDRESS...] (postqueue -j on stdin)\n");
	return 2;
}

int
main(int argc, char **argv)
{
	tp_config *config = NULL;
	tp_route *route = NULL;
	tp_queue *q = NULL;
	tp_diag diag = TP_DIAG_INIT;
	char buf[65536];
	size_t n;
	int rc = 0;

	if (argc < 3 || strcmp(argv[1], "-c") != 0)
		return usage();
	if (tp_config_load(&config, argv[2], &diag) < 0
	    || tp_route_new(&route, config, &diag) < 0) {
		fprintf(stderr, "queue_dump: %s\n", diag.message);
		tp_config_free(config);
		return 1;
	}
	if (argc > 3) {
		if (strcmp(argv[3], "--route") != 0) {
			rc = usage();
			goto out;
		}
		for (int i = 4; i < argc; i++) {
			printf("%s\t", argv[i]);
			print_route(route, argv[i], 1);
			putchar('\n');
		}
		goto out;
	}
	/* In pieces, as a caller reading a pipe from postqueue would. */
	if (tp_queue_new(&q, &diag) < 0) {
		rc = 1;
		goto out;
	}
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		if (tp_queue_feed(q, buf, n, &diag) < 0)
			break;
	if (diag.status < 0 || ferror(stdin) || tp_queue_end(q, &diag) < 0) {
		fprintf(stderr, "queue_dump: cannot read the queue: %s\n", diag.message);
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < tp_queue_count(q); i++) {
		const tp_queue_message *m = tp_queue_at(q, i);

		for (size_t j = 0; j < m->recipient_count; j++) {
			const tp_queue_recipient *r = &m->recipients[j];

			printf("%s\t%s\t%s\t%s\t", m->queue_id, r->address,
			       tp_queue_tls_name(r->tls), r->delay_reason ? r->delay_reason : "-");
			print_route(route, r->address, 0);
			putchar('\n');
		}
	}
	printf("malformed %zu\n", tp_queue_malformed(q));
out:
	tp_queue_free(q);
	tp_route_free(route);
	tp_config_free(config);
	return rc;
}
