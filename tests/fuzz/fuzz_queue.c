/*
 * Fuzz target: the postqueue -j reader, and the router on the addresses it
 * finds. The first byte chooses the piece size for tp_queue_feed(); the
 * rest is what postqueue printed. The whole text in one call and the same
 * text in pieces must give the same queue; every string exposed must be
 * valid UTF-8 without control characters, every queue_id a Postfix queue
 * file name, every class the one tp_queue_tls_failure() gives; no more
 * messages and malformed lines than lines. Aborts when one breaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "casefold.h"
#include "config_internal.h"
#include "tlspolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL || !tp__utf8_valid(s, strlen(s)))
		abort();
	for (; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			abort();
}

static void
check_message(const tp_queue_message *m)
{
	size_t idlen;

	check_string(m->queue_name);
	check_string(m->queue_id);
	check_string(m->sender);
	idlen = strlen(m->queue_id);
	if (idlen == 0 || idlen > 255 || strspn(m->queue_id,
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_") != idlen)
		abort();
	if (m->arrival_time < -1 || m->message_size < -1 || m->line == 0)
		abort();
	if (m->recipient_count > 0 && m->recipients == NULL)
		abort();
	for (size_t i = 0; i < m->recipient_count; i++) {
		const tp_queue_recipient *r = &m->recipients[i];

		check_string(r->address);
		if (r->delay_reason != NULL)
			check_string(r->delay_reason);
		if (r->tls != tp_queue_tls_failure(r->delay_reason)
		    || tp_queue_tls_name(r->tls) == NULL)
			abort();
	}
}

static int
same_message(const tp_queue_message *a, const tp_queue_message *b)
{
	if (strcmp(a->queue_id, b->queue_id) || strcmp(a->queue_name, b->queue_name)
	    || strcmp(a->sender, b->sender) || a->arrival_time != b->arrival_time
	    || a->message_size != b->message_size || a->forced_expire != b->forced_expire
	    || a->line != b->line || a->recipient_count != b->recipient_count)
		return 0;
	for (size_t i = 0; i < a->recipient_count; i++) {
		const tp_queue_recipient *x = &a->recipients[i], *y = &b->recipients[i];

		if (strcmp(x->address, y->address) || (x->delay_reason == NULL) != (y->delay_reason == NULL)
		    || (x->delay_reason && strcmp(x->delay_reason, y->delay_reason)))
			return 0;
	}
	return 1;
}

/* Routes every recipient through a small set of transport_maps: the
 * address parsing must hold on whatever a queue lists. */
static void
route_all(const tp_queue *q)
{
	static const char main_cf[] =
		"compatibility_level = 3.6\n"
		"recipient_delimiter = +-\n"
		"relay_domains = !no.relay.example relay.example .dot.example\n"
		"transport_maps = inline:{ example.com=smtp:[127.0.0.1]:2525,"
		" .parent.example=relay:relay.example.net:587, bare.example=smtp,"
		" keep.example=:[127.0.0.1]:26, noop.example=:, err.example=error,"
		" full@x.example=smtp:[127.0.0.1]:1, { list.example = smtp:a, [b]:2 } }\n";
	tp_config *config = NULL;
	tp_route *route = NULL;

	if (tp__config_parse(&config, "/nonexistent", main_cf, sizeof(main_cf) - 1, NULL) < 0)
		return;
	if (tp_route_new(&route, config, NULL) == 0) {
		for (size_t i = 0; i < tp_queue_count(q); i++) {
			const tp_queue_message *m = tp_queue_at(q, i);

			for (size_t j = 0; j < m->recipient_count; j++) {
				const tp_route_result *res = NULL;
				const char *hop = NULL;
				int rc = tp_route_find(route, m->recipients[j].address, &res, NULL);

				if (rc == 0) {
					if (res == NULL || res->transport == NULL || res->nexthop == NULL)
						abort();
					for (size_t k = 0; k < res->destination_count; k++)
						if (res->destinations[k] == NULL || !*res->destinations[k])
							abort();
				} else if (rc != TP_EINVALID && rc != TP_ENOMEM) {
					abort();
				}
				rc = tp_route_nexthop(route, m->recipients[j].address, &hop, NULL);
				if ((rc == 0) != (hop != NULL))
					abort();
			}
		}
	}
	tp_route_free(route);
	tp_config_free(config);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tp_queue *whole = NULL, *pieces = NULL;
	size_t piece, lines = 1;
	const char *text;
	unsigned long line;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] * 7 + 1;
	text = (const char *)data + 1;
	size--;
	for (size_t i = 0; i < size; i++)
		lines += text[i] == '\n';

	if (tp_queue_parse(&whole, text, size, NULL) < 0)
		return 0;	/* out of memory only */
	if (tp_queue_new(&pieces, NULL) < 0)
		goto out;
	for (size_t off = 0; off < size; off += piece)
		if (tp_queue_feed(pieces, text + off, size - off < piece ? size - off : piece, NULL) < 0)
			goto out;
	if (tp_queue_end(pieces, NULL) < 0)
		goto out;

	if (tp_queue_count(whole) + tp_queue_malformed(whole) > lines
	    || tp_queue_count(whole) != tp_queue_count(pieces)
	    || tp_queue_malformed(whole) != tp_queue_malformed(pieces))
		abort();
	if ((tp_queue_malformed(whole) > 0) != (tp_queue_first_malformed(whole, &line) != NULL))
		abort();
	if (tp_queue_malformed(whole) > 0) {
		check_string(tp_queue_first_malformed(whole, &line));
		if (line == 0 || line > lines)
			abort();
	}
	for (size_t i = 0; i < tp_queue_count(whole); i++) {
		const tp_queue_message *m = tp_queue_at(whole, i);

		check_message(m);
		if (m->line > lines || (i > 0 && m->line <= tp_queue_at(whole, i - 1)->line)
		    || !same_message(m, tp_queue_at(pieces, i)))
			abort();
	}
	if (tp_queue_at(whole, tp_queue_count(whole)) != NULL)
		abort();
	route_all(whole);
out:
	tp_queue_free(whole);
	tp_queue_free(pieces);
	return 0;
}
