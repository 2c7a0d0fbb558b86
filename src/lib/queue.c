/*
 * NAME
 *	queue - Postfix's mail queue as postqueue -j lists it
 * SUMMARY
 *	Parses postqueue(1)'s JSON lines with jansson and classifies delay
 *	reasons by the texts Postfix's SMTP client writes for TLS failures.
 * DESCRIPTION
 *	See tlspolicy/queue.h. The input comes from the local Postfix, but a
 *	queue file, a defer log or a recipient address is written by whoever
 *	sent the mail, so every line is treated as hostile: bounded in size,
 *	typed member by member, and every string made safe for a terminal
 *	and for JSON output before the caller sees it.
 * DIAGNOSTICS
 *	TP_ENOMEM, TP_EUSAGE. Malformed lines are counted, never fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "casefold.h"
#include "diag.h"
#include "tlspolicy/queue.h"

/* Postfix's VALID_HOSTNAME_LEN, the bound of mail_queue_id_ok(). */
#define QUEUE_ID_MAX 255

struct tp_queue {
	tp_queue_message *msgs;
	size_t n, alloc;
	size_t malformed;
	char *first_malformed;		/* why the first skipped line was skipped */
	unsigned long first_malformed_line;
	unsigned long line;		/* lines started so far */
	tp_buf pending;			/* the current line, up to its newline */
	int oversize;			/* the current line is past the limit */
	int ended;
};

static void
message_clear(tp_queue_message *m)
{
	free((char *)m->queue_name);
	free((char *)m->queue_id);
	free((char *)m->sender);
	for (size_t i = 0; i < m->recipient_count; i++) {
		free((char *)m->recipients[i].address);
		free((char *)m->recipients[i].delay_reason);
	}
	free((tp_queue_recipient *)m->recipients);
	memset(m, 0, sizeof(*m));
}

void
tp_queue_free(tp_queue *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->n; i++)
		message_clear(&q->msgs[i]);
	free(q->msgs);
	free(q->first_malformed);
	tp_buf_dispose(&q->pending);
	free(q);
}

int
tp_queue_new(tp_queue **out, tp_diag *diag)
{
	if (out == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_queue_new: no result pointer");
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	(*out)->line = 1;
	return TP_OK;
}

/*
 * Skips the line; only the first reason is kept, since one example is
 * what a person needs to find the problem, and keeping all would let a
 * hostile queue grow the list without bound.
 */
static int
malformed(tp_queue *q, const char *why)
{
	q->malformed++;
	if (q->first_malformed == NULL) {
		if ((q->first_malformed = strdup(why)) == NULL)
			return TP_ENOMEM;
		tp__utf8_sanitize(q->first_malformed);
		q->first_malformed_line = q->line;
	}
	return TP_OK;
}

/* A sanitized copy of a JSON string: UTF-8 already (jansson checks it),
 * without control characters once tp__utf8_sanitize() is done. */
static char *
dup_string(const json_t *s)
{
	char *copy = strndup(json_string_value(s), json_string_length(s));

	if (copy != NULL)
		tp__utf8_sanitize(copy);
	return copy;
}

/* Postfix's mail_queue_id_ok(): what postsuper and postqueue -i accept. */
static int
queue_id_ok(const char *s, size_t len)
{
	if (len == 0 || len > QUEUE_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
		      || (c >= 'a' && c <= 'z') || c == '_'))
			return 0;
	}
	return 1;
}

/* 1 when member name is absent or a string, which *out then names
 * (NULL when absent); 0 when it has another type. */
static int
opt_string(const json_t *obj, const char *name, const json_t **out)
{
	*out = json_object_get(obj, name);
	return *out == NULL || json_is_string(*out);
}

/* Non-negative integers only, so that -1 can mean "absent". */
static int
opt_count(const json_t *obj, const char *name, long long *out)
{
	const json_t *v = json_object_get(obj, name);

	*out = -1;
	if (v == NULL)
		return 1;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return 0;
	*out = (long long)json_integer_value(v);
	return 1;
}

static int
add_message(tp_queue *q, const json_t *obj)
{
	const json_t *qname, *qid, *sender, *rcpts, *fe;
	tp_queue_message m;
	tp_queue_recipient *r = NULL;
	size_t nr = 0;

	memset(&m, 0, sizeof(m));
	if (!json_is_object(obj))
		return malformed(q, "not a JSON object");
	if (!opt_string(obj, "queue_name", &qname) || !opt_string(obj, "queue_id", &qid)
	    || !opt_string(obj, "sender", &sender))
		return malformed(q, "queue_name, queue_id or sender is not a string");
	if (qid == NULL)
		return malformed(q, "no queue_id");
	if (!queue_id_ok(json_string_value(qid), json_string_length(qid)))
		return malformed(q, "queue_id is not a Postfix queue file name");
	if (!opt_count(obj, "arrival_time", &m.arrival_time)
	    || !opt_count(obj, "message_size", &m.message_size))
		return malformed(q, "arrival_time or message_size is not a non-negative integer");
	fe = json_object_get(obj, "forced_expire");
	if (fe != NULL && !json_is_boolean(fe))
		return malformed(q, "forced_expire is not true or false");
	m.forced_expire = fe != NULL && json_is_true(fe);
	rcpts = json_object_get(obj, "recipients");
	if (rcpts != NULL && !json_is_array(rcpts))
		return malformed(q, "recipients is not an array");
	/* Every recipient is checked before anything is copied: a line is
	 * taken whole or not at all. */
	nr = rcpts ? json_array_size(rcpts) : 0;
	for (size_t i = 0; i < nr; i++) {
		const json_t *o = json_array_get(rcpts, i), *a, *w;

		if (!json_is_object(o))
			return malformed(q, "a recipient is not a JSON object");
		if (!opt_string(o, "address", &a) || a == NULL)
			return malformed(q, "a recipient has no address string");
		if (!opt_string(o, "delay_reason", &w))
			return malformed(q, "a recipient's delay_reason is not a string");
	}

	if (q->n == q->alloc) {
		size_t na = q->alloc ? 2 * q->alloc : 16;
		tp_queue_message *nm = realloc(q->msgs, na * sizeof(*nm));

		if (nm == NULL)
			return TP_ENOMEM;
		q->msgs = nm;
		q->alloc = na;
	}
	if (nr > 0 && (r = calloc(nr, sizeof(*r))) == NULL)
		return TP_ENOMEM;
	m.recipients = r;
	m.recipient_count = nr;
	m.line = q->line;
	m.queue_name = qname ? dup_string(qname) : strdup("");
	m.queue_id = dup_string(qid);
	m.sender = sender ? dup_string(sender) : strdup("");
	if (m.queue_name == NULL || m.queue_id == NULL || m.sender == NULL)
		goto nomem;
	for (size_t i = 0; i < nr; i++) {
		const json_t *o = json_array_get(rcpts, i);
		const json_t *w = json_object_get(o, "delay_reason");

		if ((r[i].address = dup_string(json_object_get(o, "address"))) == NULL)
			goto nomem;
		if (w != NULL && (r[i].delay_reason = dup_string(w)) == NULL)
			goto nomem;
		r[i].tls = tp_queue_tls_failure(r[i].delay_reason);
	}
	q->msgs[q->n++] = m;
	return TP_OK;
nomem:
	message_clear(&m);
	return TP_ENOMEM;
}

static int
is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

static int
parse_line(tp_queue *q, const char *s, size_t len)
{
	json_error_t err;
	json_t *obj;
	int rc;

	if (is_blank(s, len))
		return TP_OK;
	/* Duplicates rejected: which copy Postfix meant would be a guess. */
	obj = json_loadb(s, len, JSON_REJECT_DUPLICATES, &err);
	if (obj == NULL) {
		/* jansson says nothing distinct for out of memory here; a
		 * line it cannot hold is as useless as one it cannot read. */
		char why[sizeof(err.text) + 32];

		snprintf(why, sizeof(why), "not JSON: %s", err.text);
		return malformed(q, why);
	}
	rc = add_message(q, obj);
	json_decref(obj);
	return rc;
}

static int
finish_line(tp_queue *q)
{
	int rc = TP_OK;

	if (q->oversize)
		rc = malformed(q, "line longer than TP_QUEUE_LINE_MAX");
	else if (q->pending.size > 0)
		rc = parse_line(q, q->pending.ptr, q->pending.size);
	q->oversize = 0;
	tp__buf_truncate(&q->pending, 0);
	q->line++;
	return rc;
}

static int
feed(tp_queue *q, const char *text, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(text, '\n', len);
		size_t take = nl ? (size_t)(nl - text) : len;
		int rc;

		if (!q->oversize) {
			if (take > TP_QUEUE_LINE_MAX - q->pending.size) {
				/* Past the limit: forget the line, remember
				 * only to skip the rest of it. */
				tp__buf_truncate(&q->pending, 0);
				q->oversize = 1;
			} else if (take > 0 && tp__buf_put(&q->pending, text, take) < 0) {
				return TP_ENOMEM;
			}
		}
		if (nl == NULL)
			return TP_OK;
		if ((rc = finish_line(q)) < 0)
			return rc;
		text = nl + 1;
		len -= take + 1;
	}
	return TP_OK;
}

int
tp_queue_feed(tp_queue *q, const char *text, size_t len, tp_diag *diag)
{
	if (q == NULL || (text == NULL && len > 0))
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_queue_feed: no queue or no text");
	if (q->ended)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_queue_feed: the queue was ended");
	if (feed(q, text, len) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return TP_OK;
}

int
tp_queue_end(tp_queue *q, tp_diag *diag)
{
	int rc = TP_OK;

	if (q == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_queue_end: no queue");
	if (q->ended)
		return TP_OK;
	q->ended = 1;
	/* A last line without its newline: postqueue killed mid-line, or
	 * text assembled by the caller. */
	if (q->oversize || q->pending.size > 0)
		rc = finish_line(q);
	tp_buf_dispose(&q->pending);
	if (rc < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return TP_OK;
}

int
tp_queue_parse(tp_queue **out, const char *text, size_t len, tp_diag *diag)
{
	tp_queue *q;
	int rc;

	if (out == NULL || (text == NULL && len > 0))
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_queue_parse: no result pointer or no text");
	*out = NULL;
	if ((rc = tp_queue_new(&q, diag)) < 0)
		return rc;
	if ((rc = tp_queue_feed(q, text, len, diag)) < 0
	    || (rc = tp_queue_end(q, diag)) < 0) {
		tp_queue_free(q);
		return rc;
	}
	*out = q;
	return TP_OK;
}

size_t
tp_queue_count(const tp_queue *q)
{
	return q ? q->n : 0;
}

const tp_queue_message *
tp_queue_at(const tp_queue *q, size_t i)
{
	return q && i < q->n ? &q->msgs[i] : NULL;
}

size_t
tp_queue_malformed(const tp_queue *q)
{
	return q ? q->malformed : 0;
}

const char *
tp_queue_first_malformed(const tp_queue *q, unsigned long *line)
{
	if (line != NULL)
		*line = q && q->first_malformed ? q->first_malformed_line : 0;
	return q ? q->first_malformed : NULL;
}

/* s starts with prefix: what follows it, else NULL. */
static const char *
after(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/*
 * "H" of the client's messages is Postfix's session->namaddr,
 * "name[addr]" or "name[addr]:port": never empty, never a space. Requiring
 * that shape keeps a text that merely contains the same words from
 * matching.
 */
static const char *
after_host(const char *s)
{
	size_t n = strcspn(s, " ");

	return n > 0 && s[n] == ' ' ? s + n : NULL;
}

tp_queue_tls
tp_queue_tls_failure(const char *reason)
{
	const char *p;

	if (reason == NULL)
		return TP_QUEUE_TLS_NONE;
	/* The queue manager's prefix for mail behind a failed destination. */
	while ((p = after(reason, "delivery temporarily suspended: ")) != NULL)
		reason = p;
	if (strcmp(reason, "Server certificate not verified") == 0)
		return TP_QUEUE_TLS_CERT;
	if ((p = after(reason, "TLS is required, but was not offered by host ")) != NULL
	    && *p && strchr(p, ' ') == NULL)
		return TP_QUEUE_TLS_NOT_OFFERED;
	if ((p = after(reason, "TLS is required, but host ")) != NULL
	    && (p = after_host(p)) != NULL && after(p, " refused to start TLS: ") != NULL)
		return TP_QUEUE_TLS_REFUSED;
	if (strcmp(reason, "Cannot start TLS: handshake failure") == 0)
		return TP_QUEUE_TLS_HANDSHAKE;
	if ((p = after(reason, "lost connection with ")) != NULL
	    || (p = after(reason, "conversation with ")) != NULL) {
		int lost = reason[0] == 'l';

		if ((p = after_host(p)) != NULL
		    && strcmp(p, lost ? " while receiving the STARTTLS response"
			      : " timed out while receiving the STARTTLS response") == 0)
			return TP_QUEUE_TLS_STARTTLS_LOST;
		return TP_QUEUE_TLS_NONE;
	}
	if (strcmp(reason, "client TLS configuration problem") == 0
	    || strcmp(reason, "Temporary lookup error") == 0)
		return TP_QUEUE_TLS_POLICY;
	if (((p = after(reason, "TLSA lookup error for ")) != NULL && *p && strchr(p, ' ') == NULL)
	    || strcmp(reason, "no TLSA records found") == 0
	    || strcmp(reason, "TLSA records unusable") == 0)
		return TP_QUEUE_TLS_DANE;
	if (strcmp(reason, "TLS is required, but our TLS engine is unavailable") == 0
	    || strcmp(reason, "TLS is required, but unavailable") == 0)
		return TP_QUEUE_TLS_LOCAL;
	return TP_QUEUE_TLS_NONE;
}

const char *
tp_queue_tls_name(tp_queue_tls tls)
{
	static const char *const names[] = {
		[TP_QUEUE_TLS_NONE] = "none",
		[TP_QUEUE_TLS_CERT] = "certificate",
		[TP_QUEUE_TLS_NOT_OFFERED] = "not-offered",
		[TP_QUEUE_TLS_REFUSED] = "refused",
		[TP_QUEUE_TLS_HANDSHAKE] = "handshake",
		[TP_QUEUE_TLS_STARTTLS_LOST] = "starttls-lost",
		[TP_QUEUE_TLS_POLICY] = "policy",
		[TP_QUEUE_TLS_DANE] = "dane",
		[TP_QUEUE_TLS_LOCAL] = "local",
	};

	if ((unsigned)tls >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[tls];
}
