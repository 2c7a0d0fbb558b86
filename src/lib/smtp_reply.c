/*
 * NAME
 *	smtp_reply - incremental, size-capped SMTP reply parser
 * SUMMARY
 *	See smtp_reply.h. The caps are checked on every byte, before the
 *	buffer grows, so the most a reply can cost is TP_SMTP_REPLY_MAX
 *	plus the buffer's doubling slack, whatever the server sends.
 */
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "smtp_reply.h"

void
tp__smtp_reply_init(tp__smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void
tp__smtp_reply_reset(tp__smtp_reply *r)
{
	tp__buf_truncate(&r->text, 0);
	r->code = 0;
	r->nlines = 0;
	r->line_start = 0;
	r->complete = 0;
	r->failed = 0;
	r->why = NULL;
}

void
tp__smtp_reply_dispose(tp__smtp_reply *r)
{
	tp_buf_dispose(&r->text);
	tp__smtp_reply_init(r);
}

static int
reply_fail(tp__smtp_reply *r, int status, const char *why)
{
	r->failed = status;
	r->why = why;
	return status;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * The partial line text[line_start..size-1] has just ended. Returns 1 when
 * it was the last line of the reply, 0 when more follow, or an error.
 */
static int
reply_end_line(tp__smtp_reply *r)
{
	size_t len = r->text.size - r->line_start;
	const char *line;
	int code, last;

	if (len == 0)		/* and text.ptr may still be NULL */
		return reply_fail(r, TP_EPROTOCOL, "garbage");
	line = r->text.ptr + r->line_start;
	if (len > 0 && line[len - 1] == '\r') {
		tp__buf_truncate(&r->text, r->text.size - 1);
		len--;
	}
	if (len < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) ||
	    !is_digit(line[2]))
		return reply_fail(r, TP_EPROTOCOL, "garbage");
	if (len == 3 || line[3] == ' ')
		last = 1;
	else if (line[3] == '-')
		last = 0;
	else
		return reply_fail(r, TP_EPROTOCOL, "garbage");
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return reply_fail(r, TP_EPROTOCOL, "inconsistent reply codes");
	r->code = code;
	r->nlines++;
	if (tp__buf_putc(&r->text, '\n') != TP_OK)
		return reply_fail(r, TP_ENOMEM, "out of memory");
	r->line_start = r->text.size;
	return last;
}

int
tp__smtp_reply_feed(tp__smtp_reply *r, const char *data, size_t len,
		    size_t *used)
{
	size_t i;
	int rc;

	*used = 0;
	if (r->failed)
		return r->failed;
	if (r->complete)
		return 1;
	for (i = 0; i < len; i++) {
		char c = data[i];

		if (c == '\n') {
			if ((rc = reply_end_line(r)) < 0)
				return rc;
			if (rc == 1) {
				r->complete = 1;
				*used = i + 1;
				return 1;
			}
			continue;
		}
		if (c == '\0')
			return reply_fail(r, TP_EPROTOCOL, "garbage");
		/* A CR at the cap is allowed: it is the line end's own. */
		if (r->text.size - r->line_start > TP_SMTP_LINE_MAX ||
		    (r->text.size - r->line_start == TP_SMTP_LINE_MAX && c != '\r'))
			return reply_fail(r, TP_ELIMIT,
					  "reply line longer than 2048 bytes");
		if (r->text.size >= TP_SMTP_REPLY_MAX)
			return reply_fail(r, TP_ELIMIT,
					  "reply longer than 65536 bytes");
		if (tp__buf_putc(&r->text, c) != TP_OK)
			return reply_fail(r, TP_ENOMEM, "out of memory");
	}
	*used = len;
	return 0;
}

int
tp__smtp_reply_has_keyword(const tp__smtp_reply *r, const char *keyword)
{
	size_t klen = strlen(keyword);
	const char *p, *nl;

	if (!r->complete || r->text.ptr == NULL)
		return 0;
	p = strchr(r->text.ptr, '\n');
	while (p != NULL && p[1] != '\0') {
		const char *line = p + 1;

		nl = strchr(line, '\n');
		if (nl != NULL && (size_t)(nl - line) >= 4 + klen &&
		    strncasecmp(line + 4, keyword, klen) == 0 &&
		    (line[4 + klen] == '\n' || line[4 + klen] == ' '))
			return 1;
		p = nl;
	}
	return 0;
}

struct summary {
	char *buf;
	size_t size, n;
	int cut;
};

static void
summary_put(struct summary *s, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (s->n + 1 >= s->size) {
			s->cut = 1;
			return;
		}
		s->buf[s->n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
}

const char *
tp__smtp_reply_summary(const tp__smtp_reply *r, char *buf, size_t size)
{
	struct summary s = { buf, size, 0, 0 };
	const char *line, *nl;

	if (size == 0)
		return buf;
	for (line = r->text.ptr; line != NULL && *line; line = nl + 1) {
		size_t len;

		nl = strchr(line, '\n');
		if (nl == NULL)		/* the partial line of a failed reply */
			nl = line + strlen(line) - 1;
		len = (size_t)(nl - line) + (*nl != '\n');
		if (line == r->text.ptr) {
			summary_put(&s, line, len);
		} else if (len > 4) {
			/* Later lines without "250-", so the text reads on. */
			summary_put(&s, " ", 1);
			summary_put(&s, line + 4, len - 4);
		}
		if (*nl == '\0' || s.cut)
			break;
	}
	buf[s.n] = '\0';
	if (s.cut && size > 4)
		memcpy(buf + (s.n > size - 4 ? size - 4 : s.n), "...", 4);
	return buf;
}
