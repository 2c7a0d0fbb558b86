/*
 * Fuzz target: the SMTP reply parser on arbitrary bytes in arbitrary
 * chunks. The first byte chooses the chunk size; the rest is what a
 * server sends, replies back to back. Checks the caps and the framing
 * invariants the probe relies on, and aborts when one breaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tp__smtp_reply r;
	size_t chunk, off = 0;
	char summary[128];

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	tp__smtp_reply_init(&r);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk, used = 0;
		int rc = tp__smtp_reply_feed(&r, (const char *)data + off, n, &used);

		if (used > n || r.text.size > TP_SMTP_REPLY_MAX + 1)
			abort();
		if (rc < 0) {
			if (r.why == NULL || rc != r.failed)
				abort();
			break;
		}
		off += used;
		if (rc == 0) {
			if (used != n)
				abort();
			continue;
		}
		/* Complete: a code in 200..599, lines that end in '\n'. */
		if (r.code < 200 || r.code > 599 || r.nlines == 0 ||
		    r.text.ptr[r.text.size - 1] != '\n' ||
		    strlen(r.text.ptr) != r.text.size)
			abort();
		(void)tp__smtp_reply_has_keyword(&r, "STARTTLS");
		tp__smtp_reply_summary(&r, summary, sizeof(summary));
		if (strlen(summary) >= sizeof(summary))
			abort();
		tp__smtp_reply_reset(&r);
	}
	tp__smtp_reply_summary(&r, summary, sizeof(summary));
	tp__smtp_reply_dispose(&r);
	return 0;
}
