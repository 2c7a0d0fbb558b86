/*
 * NAME
 *	smtp_reply - incremental, size-capped SMTP reply parser (internal)
 * SUMMARY
 *	Assembles one SMTP reply ("250-a", "250-b", "250 c") from bytes as
 *	they arrive from the network, in any chunking, and refuses input a
 *	server could use to make us allocate without bound.
 * DESCRIPTION
 *	tp__smtp_reply_init() prepares r; tp__smtp_reply_reset() forgets
 *	the reply read so far (keeping its storage) for the next one;
 *	tp__smtp_reply_dispose() frees it.
 *
 *	tp__smtp_reply_feed() consumes bytes from data[0..len-1] and stores
 *	in *used how many it took. It returns 1 when the reply is complete
 *	(bytes after it are left for the caller: *used < len), 0 when it
 *	needs more bytes (all were taken), or a negative status with a
 *	static reason in r->why:
 *	TP_ELIMIT	a line longer than TP_SMTP_LINE_MAX bytes (CRLF not
 *			counted) or a reply longer than TP_SMTP_REPLY_MAX;
 *	TP_EPROTOCOL	a line that is not "DDD", "DDD text" or "DDD-text"
 *			with D a digit and the first in 2..5, a NUL byte, or
 *			lines with different codes.
 *	Lines end in LF; a CR before it is dropped (bare LF is accepted,
 *	as Postfix's SMTP client does). Once feed() has failed, r stays
 *	failed until reset.
 *
 *	After a complete reply: r->code is the reply code (e.g. 250),
 *	r->nlines the number of lines, r->text.ptr the lines without
 *	their line ends, each followed by '\n'.
 *
 *	tp__smtp_reply_has_keyword() tells whether an EHLO reply announces
 *	keyword (case-insensitive) on one of its lines after the first:
 *	the line text starts with it followed by the end or a space.
 *
 *	tp__smtp_reply_summary() writes the reply as one printable line into
 *	buf: the first line whole, later lines without their codes, joined
 *	by spaces; control bytes become '?'; cut with "..." when too long.
 */
#ifndef TP_SMTP_REPLY_INTERNAL_H
#define TP_SMTP_REPLY_INTERNAL_H

#include <stddef.h>

#include "tlspolicy/common.h"

#define TP_SMTP_LINE_MAX 2048
#define TP_SMTP_REPLY_MAX 65536

typedef struct tp__smtp_reply {
	int code;		/* 0 until the first line is complete */
	size_t nlines;		/* complete lines */
	tp_buf text;		/* complete lines + the partial one */
	size_t line_start;	/* offset of the partial line in text */
	int complete;
	int failed;
	const char *why;	/* static reason when feed() failed */
} tp__smtp_reply;

void tp__smtp_reply_init(tp__smtp_reply *r);
void tp__smtp_reply_reset(tp__smtp_reply *r);
void tp__smtp_reply_dispose(tp__smtp_reply *r);
int tp__smtp_reply_feed(tp__smtp_reply *r, const char *data, size_t len,
			size_t *used);
int tp__smtp_reply_has_keyword(const tp__smtp_reply *r, const char *keyword);
const char *tp__smtp_reply_summary(const tp__smtp_reply *r, char *buf,
				   size_t size);

#endif
