/*
 * The queue reader and the recipient router.
 *
 * The queue tests read what a real Postfix 3.7.11 printed
 * (tests/data/queue/postqueue.jsonl, made by tests/tools/record_postqueue.sh:
 * mail deferred behind a pin that does not match, a server without
 * STARTTLS, one that refuses it, a handshake alert, a broken policy entry,
 * and for other reasons: connection refused, 421 banner, 450 to EHLO), and
 * hold the reasons they parse against the same instance's maillog, then
 * mix the recorded lines with malformed ones.
 *
 * The routing tests spell out what trivial-rewrite decides, case by case,
 * from Postfix's resolve.c and transport.c; tests/cli/queue_record.sh asks
 * a live Postfix the same questions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "buf.h"
#include "casefold.h"
#include "tlspolicy.h"

static char dir[] = "/tmp/test_queue.XXXXXX";

static void write_file(const char *name, const char *text);

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_queue.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	/* postmap -c DIR needs a main.cf before a test writes its own. */
	write_file("main.cf", "compatibility_level = 3.6\n");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Whole file into a NUL-terminated buffer; *len without the NUL. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (fp == NULL)
		fail_msg("cannot read %s", path);
	do {
		if (n + 4096 + 1 > cap) {
			cap = 2 * cap + 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		got = fread(buf + n, 1, 4096, fp);
		n += got;
	} while (got > 0);
	fclose(fp);
	buf[n] = 0;
	*len = n;
	return buf;
}

static char *
recorded(const char *name, size_t *len)
{
	const char *src = getenv("TP_SOURCE_DIR");
	char path[1024];

	snprintf(path, sizeof(path), "%s/tests/data/queue/%s", src ? src : ".", name);
	return slurp(path, len);
}

static void
write_file(const char *name, const char *text)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static const tp_queue_message *
find_message(const tp_queue *q, const char *id)
{
	for (size_t i = 0; i < tp_queue_count(q); i++)
		if (strcmp(tp_queue_at(q, i)->queue_id, id) == 0)
			return tp_queue_at(q, i);
	fail_msg("queue_id %s not found", id);
	return NULL;
}

static const tp_queue_recipient *
find_recipient(const tp_queue_message *m, const char *address)
{
	for (size_t i = 0; i < m->recipient_count; i++)
		if (strcmp(m->recipients[i].address, address) == 0)
			return &m->recipients[i];
	fail_msg("%s: recipient %s not found", m->queue_id, address);
	return NULL;
}

/* The class the recorded domains stand for (see record_postqueue.sh). */
static tp_queue_tls
class_of(const char *address)
{
	static const struct {
		const char *domain;
		tp_queue_tls tls;
	} classes[] = {
		{ "@pin.test", TP_QUEUE_TLS_CERT },
		{ "@notls.test", TP_QUEUE_TLS_NOT_OFFERED },
		{ "@refuse.test", TP_QUEUE_TLS_REFUSED },
		{ "@alert.test", TP_QUEUE_TLS_HANDSHAKE },
		{ "@badpol.test", TP_QUEUE_TLS_POLICY },
		{ "@refused.test", TP_QUEUE_TLS_NONE },
		{ "@b421.test", TP_QUEUE_TLS_NONE },
		{ "@ehlo4.test", TP_QUEUE_TLS_NONE },
	};
	const char *at = strrchr(address, '@');

	for (size_t i = 0; at && i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strcmp(at, classes[i].domain) == 0)
			return classes[i].tls;
	fail_msg("no class known for %s", address);
	return TP_QUEUE_TLS_NONE;
}

static void
check_recorded(const tp_queue *q)
{
	size_t tls = 0, other = 0;
	const tp_queue_message *m;
	const tp_queue_recipient *r;

	assert_int_equal(tp_queue_count(q), 7);
	for (size_t i = 0; i < tp_queue_count(q); i++) {
		m = tp_queue_at(q, i);
		for (size_t j = 0; j < m->recipient_count; j++) {
			r = &m->recipients[j];
			assert_non_null(r->delay_reason);
			if (r->tls != class_of(r->address))
				fail_msg("%s %s: class %s, want %s (\"%s\")", m->queue_id,
					 r->address, tp_queue_tls_name(r->tls),
					 tp_queue_tls_name(class_of(r->address)), r->delay_reason);
			if (r->tls != TP_QUEUE_TLS_NONE)
				tls++;
			else
				other++;
		}
	}
	assert_int_equal(tls, 10);
	assert_int_equal(other, 6);

	/* Every member of one message, as printed. */
	m = find_message(q, "C6A36A76702");
	assert_string_equal(m->queue_name, "deferred");
	assert_true(m->arrival_time == 1795988052);
	assert_true(m->message_size == 273);
	assert_false(m->forced_expire);
	assert_string_equal(m->sender, "sender@client.test");
	assert_int_equal(m->recipient_count, 2);
	assert_string_equal(m->recipients[0].address, "p@ehlo4.test");
	assert_string_equal(m->recipients[0].delay_reason,
			    "delivery temporarily suspended: host 127.0.0.1[127.0.0.1] refused "
			    "to talk to me: 450 4.3.0 EHLO temporarily rejected (testsmtpd ehlo-4xx)");
	/* A quoted local part keeps its quotes, as Postfix lists it. */
	assert_string_equal(m->recipients[1].address, "\"john doe\"@pin.test");
	assert_string_equal(m->recipients[1].delay_reason,
			    "delivery temporarily suspended: Server certificate not verified");
	assert_int_equal(m->line, 2);

	/* postsuper -e, postsuper -h, the null sender, a UTF-8 address. */
	assert_true(find_message(q, "C1338A76378")->forced_expire);
	assert_string_equal(find_message(q, "C330AA76377")->queue_name, "hold");
	assert_string_equal(find_message(q, "BC421A766F1")->sender, "MAILER-DAEMON");
	r = find_recipient(find_message(q, "C45E4A76394"), "j.\xc3\xb6.rg@refused.test");
	assert_string_equal(r->delay_reason, "connect to 127.0.0.1[127.0.0.1]:46894: Connection refused");
	r = find_recipient(find_message(q, "C263BA7637A"), "f@refuse.test");
	assert_int_equal(r->tls, TP_QUEUE_TLS_REFUSED);
	assert_int_equal(tp_queue_malformed(q), 0);
	assert_null(tp_queue_first_malformed(q, NULL));
}

static void
test_queue__recorded_postqueue_output(void **state)
{
	size_t len;
	char *text = recorded("postqueue.jsonl", &len);
	tp_queue *q = NULL;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	assert_int_equal(tp_queue_parse(&q, text, len, &diag), 0);
	check_recorded(q);
	tp_queue_free(q);
	free(text);
}

/*
 * The same instance's maillog: for each recipient the last
 * "QUEUEID: to=<ADDRESS>, ... status=deferred (REASON)" line must carry
 * the reason the queue lists.
 */
static void
test_queue__recorded_reasons_are_the_maillogs(void **state)
{
	size_t len, loglen, checked = 0;
	char *text = recorded("postqueue.jsonl", &len);
	char *log = recorded("maillog", &loglen);
	tp_queue *q = NULL;

	(void)state;
	assert_int_equal(tp_queue_parse(&q, text, len, NULL), 0);
	for (size_t i = 0; i < tp_queue_count(q); i++) {
		const tp_queue_message *m = tp_queue_at(q, i);

		for (size_t j = 0; j < m->recipient_count; j++) {
			const tp_queue_recipient *r = &m->recipients[j];
			char needle[512], last[1024] = "";
			const char *p = log;

			snprintf(needle, sizeof(needle), " %s: to=<%s>, ", m->queue_id, r->address);
			while ((p = strstr(p, needle)) != NULL) {
				const char *eol = strchr(p, '\n');
				const char *st = strstr(p, " status=deferred (");

				if (st != NULL && eol != NULL && st < eol) {
					st += strlen(" status=deferred (");
					/* The reason ends with the ')' closing the line. */
					snprintf(last, sizeof(last), "%.*s", (int)(eol - st - 1), st);
				}
				p += strlen(needle);
			}
			if (strcmp(last, r->delay_reason) != 0)
				fail_msg("%s %s: queue says \"%s\", maillog \"%s\"", m->queue_id,
					 r->address, r->delay_reason, last);
			checked++;
		}
	}
	assert_int_equal(checked, 16);
	tp_queue_free(q);
	free(text);
	free(log);
}

/* The recorded lines fed in pieces of every size from 1 byte up give
 * what one call gives. */
static void
test_queue__fed_in_pieces(void **state)
{
	size_t len;
	char *text = recorded("postqueue.jsonl", &len);

	(void)state;
	for (size_t piece = 1; piece < 200; piece += (piece < 20 ? 1 : 37)) {
		tp_queue *q = NULL;

		assert_int_equal(tp_queue_new(&q, NULL), 0);
		for (size_t off = 0; off < len; off += piece)
			assert_int_equal(tp_queue_feed(q, text + off,
						       len - off < piece ? len - off : piece, NULL), 0);
		assert_int_equal(tp_queue_end(q, NULL), 0);
		check_recorded(q);
		/* Ending twice is harmless; feeding after the end is not. */
		assert_int_equal(tp_queue_end(q, NULL), 0);
		assert_int_equal(tp_queue_feed(q, "x", 1, NULL), TP_EUSAGE);
		tp_queue_free(q);
	}
	free(text);
}

/* Each malformed line below, alone, is skipped and counted, never fatal. */
static const struct {
	const char *line;
	const char *why;	/* a word of the first-malformed message */
} bad_lines[] = {
	{ "{\"queue_name\": \"deferred\", \"queue_id\": \"C6A36A76702\", \"arriv", "JSON" },
	{ "[{\"queue_id\": \"ABC\"}]", "object" },
	{ "42", "JSON" },
	{ "\"queue_id\"", "JSON" },
	{ "null", "JSON" },
	{ "{\"queue_id\": 5}", "string" },
	{ "{\"queue_id\": null}", "string" },
	{ "{\"queue_id\": \"A1\", \"sender\": [\"x\"]}", "string" },
	{ "{\"queue_id\": \"A1\", \"queue_name\": true}", "string" },
	{ "{\"queue_id\": \"A1\", \"arrival_time\": \"1795988052\"}", "integer" },
	{ "{\"queue_id\": \"A1\", \"arrival_time\": 17.5}", "integer" },
	{ "{\"queue_id\": \"A1\", \"message_size\": -1}", "integer" },
	{ "{\"queue_id\": \"A1\", \"message_size\": 99999999999999999999999}", "JSON" },
	{ "{\"queue_id\": \"A1\", \"forced_expire\": \"false\"}", "forced_expire" },
	{ "{\"queue_id\": \"A1\", \"recipients\": {\"address\": \"a@b.test\"}}", "array" },
	{ "{\"queue_id\": \"A1\", \"recipients\": [\"a@b.test\"]}", "recipient" },
	{ "{\"queue_id\": \"A1\", \"recipients\": [{\"delay_reason\": \"x\"}]}", "address" },
	{ "{\"queue_id\": \"A1\", \"recipients\": [{\"address\": 7}]}", "address" },
	{ "{\"queue_id\": \"A1\", \"recipients\": [{\"address\": \"a@b.test\", \"delay_reason\": 3}]}",
	  "delay_reason" },
	{ "{\"queue_id\": \"A1\", \"recipients\": [{\"address\": \"a@b.test\"}, 1]}", "recipient" },
	{ "{\"queue_name\": \"deferred\", \"recipients\": []}", "queue_id" },
	{ "{\"queue_id\": \"\"}", "queue file" },
	{ "{\"queue_id\": \"-f\"}", "queue file" },
	{ "{\"queue_id\": \"../../etc\"}", "queue file" },
	{ "{\"queue_id\": \"A1 A2\"}", "queue file" },
	{ "{\"queue_id\": \"A1\", \"queue_id\": \"A2\"}", "JSON" },
	{ "{\"queue_id\": \"A\\u0000B\"}", "JSON" },
	{ "{\"queue_id\": \"A1\", \"sender\": \"\xc3\x28\"}", "JSON" },
	{ "{\"queue_id\": \"A1\", \"sender\": \"\xed\xa0\x80\"}", "JSON" },
	{ "{\"queue_id\": \"A1\"} {\"queue_id\": \"A2\"}", "JSON" },
	{ "{\"queue_id\": \"A1\"", "JSON" },
	{ "\xef\xbb\xbf{\"queue_id\": \"A1\"}", "JSON" },
};

static void
test_queue__malformed_lines_skipped_and_counted(void **state)
{
	size_t len;
	char *rec = recorded("postqueue.jsonl", &len);
	tp_buf all = TP_BUF_INIT;
	size_t nbad = sizeof(bad_lines) / sizeof(bad_lines[0]);

	(void)state;
	for (size_t i = 0; i < nbad; i++) {
		tp_queue *q = NULL;
		unsigned long line = 99;
		const char *why;

		assert_int_equal(tp_queue_parse(&q, bad_lines[i].line, strlen(bad_lines[i].line), NULL), 0);
		if (tp_queue_count(q) != 0 || tp_queue_malformed(q) != 1)
			fail_msg("line %zu (%s): %zu messages, %zu malformed; want 0, 1", i,
				 bad_lines[i].line, tp_queue_count(q), tp_queue_malformed(q));
		why = tp_queue_first_malformed(q, &line);
		assert_non_null(why);
		assert_int_equal(line, 1);
		if (strstr(why, bad_lines[i].why) == NULL)
			fail_msg("line %zu (%s): reason \"%s\" does not say %s", i,
				 bad_lines[i].line, why, bad_lines[i].why);
		assert_true(tp__utf8_valid(why, strlen(why)));
		tp_queue_free(q);
	}
	/* All of them between the recorded lines, with blank lines, a CRLF
	 * line and a last line without its newline: the recorded messages
	 * come through whole and in order, every bad line is counted. */
	{
		const char *p = rec;
		size_t i = 0, nrec = 0;
		tp_queue *q = NULL, *ref = NULL;
		unsigned long line;

		while (*p) {
			const char *nl = strchr(p, '\n');

			assert_non_null(nl);
			assert_int_equal(tp__buf_put(&all, p, (size_t)(nl - p)), 0);
			assert_int_equal(tp__buf_puts(&all, nrec == 2 ? "\r\n\n \t\n" : "\n"), 0);
			for (size_t k = 0; k < 4 && i < nbad; k++, i++) {
				assert_int_equal(tp__buf_puts(&all, bad_lines[i].line), 0);
				assert_int_equal(tp__buf_putc(&all, '\n'), 0);
			}
			nrec++;
			p = nl + 1;
		}
		for (; i < nbad; i++) {
			assert_int_equal(tp__buf_putc(&all, '\n'), 0);
			assert_int_equal(tp__buf_puts(&all, bad_lines[i].line), 0);
		}
		assert_int_equal(tp_queue_parse(&ref, rec, len, NULL), 0);
		assert_int_equal(tp_queue_parse(&q, all.ptr, all.size, NULL), 0);
		assert_int_equal(tp_queue_count(q), nrec);
		assert_int_equal(tp_queue_malformed(q), nbad);
		assert_non_null(tp_queue_first_malformed(q, &line));
		assert_int_equal(line, 2);
		for (size_t m = 0; m < nrec; m++) {
			const tp_queue_message *a = tp_queue_at(q, m), *b = tp_queue_at(ref, m);

			assert_string_equal(a->queue_id, b->queue_id);
			assert_string_equal(a->queue_name, b->queue_name);
			assert_string_equal(a->sender, b->sender);
			assert_true(a->arrival_time == b->arrival_time);
			assert_int_equal(a->recipient_count, b->recipient_count);
			for (size_t r = 0; r < a->recipient_count; r++) {
				assert_string_equal(a->recipients[r].address, b->recipients[r].address);
				assert_string_equal(a->recipients[r].delay_reason,
						    b->recipients[r].delay_reason);
				assert_int_equal(a->recipients[r].tls, b->recipients[r].tls);
			}
		}
		/* Line numbers count every line, blank ones included. */
		assert_int_equal(tp_queue_at(q, 0)->line, 1);
		assert_int_equal(tp_queue_at(q, 1)->line, 6);
		assert_int_equal(tp_queue_at(q, 3)->line, 18);
		assert_null(tp_queue_at(q, nrec));
		tp_queue_free(q);
		tp_queue_free(ref);
	}
	tp_buf_dispose(&all);
	free(rec);

}

static void
test_queue__classification(void **state)
{
	static const struct {
		const char *reason;
		tp_queue_tls want;
	} cases[] = {
		{ "Server certificate not verified", TP_QUEUE_TLS_CERT },
		{ "delivery temporarily suspended: Server certificate not verified", TP_QUEUE_TLS_CERT },
		{ "delivery temporarily suspended: delivery temporarily suspended: "
		  "Server certificate not verified", TP_QUEUE_TLS_CERT },
		{ "TLS is required, but was not offered by host mx.example.com[127.0.0.1]",
		  TP_QUEUE_TLS_NOT_OFFERED },
		{ "TLS is required, but was not offered by host mx.example.com[127.0.0.1]:2525",
		  TP_QUEUE_TLS_NOT_OFFERED },
		{ "TLS is required, but host mx.example.com[127.0.0.1] refused to start TLS: "
		  "454 4.7.0 TLS not available due to temporary reason", TP_QUEUE_TLS_REFUSED },
		{ "Cannot start TLS: handshake failure", TP_QUEUE_TLS_HANDSHAKE },
		{ "lost connection with mx.example.com[127.0.0.1] while receiving the STARTTLS response",
		  TP_QUEUE_TLS_STARTTLS_LOST },
		{ "conversation with mx.example.com[127.0.0.1] timed out while receiving the "
		  "STARTTLS response", TP_QUEUE_TLS_STARTTLS_LOST },
		{ "client TLS configuration problem", TP_QUEUE_TLS_POLICY },
		{ "Temporary lookup error", TP_QUEUE_TLS_POLICY },
		{ "TLSA lookup error for mx.example.com:25", TP_QUEUE_TLS_DANE },
		{ "no TLSA records found", TP_QUEUE_TLS_DANE },
		{ "TLSA records unusable", TP_QUEUE_TLS_DANE },
		{ "TLS is required, but our TLS engine is unavailable", TP_QUEUE_TLS_LOCAL },
		{ "TLS is required, but unavailable", TP_QUEUE_TLS_LOCAL },
		/* Not TLS. */
		{ "connect to 127.0.0.1[127.0.0.1]:2525: Connection refused", TP_QUEUE_TLS_NONE },
		{ "host mx.example.com[127.0.0.1] refused to talk to me: 421 4.3.2 busy", TP_QUEUE_TLS_NONE },
		{ "host mx.example.com[127.0.0.1] said: 451 4.7.1 Server certificate not verified "
		  "(in reply to RCPT TO command)", TP_QUEUE_TLS_NONE },
		{ "host mx.example.com[127.0.0.1] said: 454 4.7.0 TLS is required, but was not "
		  "offered by host x (in reply to MAIL FROM command)", TP_QUEUE_TLS_NONE },
		{ "Host or domain name not found. Name service error for name=example.com "
		  "type=MX: Host not found, try again", TP_QUEUE_TLS_NONE },
		{ "lost connection with mx.example.com[127.0.0.1] while receiving the initial "
		  "server greeting", TP_QUEUE_TLS_NONE },
		{ "conversation with mx.example.com[127.0.0.1] timed out while receiving the "
		  "initial server greeting", TP_QUEUE_TLS_NONE },
		{ "lost connection with mx.example.com[127.0.0.1] while receiving the STARTTLS "
		  "response and more", TP_QUEUE_TLS_NONE },
		{ "lost connection with  while receiving the STARTTLS response", TP_QUEUE_TLS_NONE },
		{ "delivery temporarily suspended: connect to 127.0.0.1[127.0.0.1]:25: "
		  "Connection timed out", TP_QUEUE_TLS_NONE },
		{ "Server certificate not verified ", TP_QUEUE_TLS_NONE },
		{ " Server certificate not verified", TP_QUEUE_TLS_NONE },
		{ "server certificate not verified", TP_QUEUE_TLS_NONE },
		{ "TLS is required, but was not offered by host ", TP_QUEUE_TLS_NONE },
		{ "TLS is required, but host  refused to start TLS: 454", TP_QUEUE_TLS_NONE },
		{ "TLSA lookup error for ", TP_QUEUE_TLS_NONE },
		{ "delivery temporarily suspended: ", TP_QUEUE_TLS_NONE },
		{ "4.7.5 Server certificate not verified", TP_QUEUE_TLS_NONE },
		{ "", TP_QUEUE_TLS_NONE },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (tp_queue_tls_failure(cases[i].reason) != cases[i].want)
			fail_msg("\"%s\": %s, want %s", cases[i].reason,
				 tp_queue_tls_name(tp_queue_tls_failure(cases[i].reason)),
				 tp_queue_tls_name(cases[i].want));
	assert_int_equal(tp_queue_tls_failure(NULL), TP_QUEUE_TLS_NONE);
	assert_string_equal(tp_queue_tls_name(TP_QUEUE_TLS_NONE), "none");
	assert_string_equal(tp_queue_tls_name(TP_QUEUE_TLS_CERT), "certificate");
	assert_string_equal(tp_queue_tls_name(TP_QUEUE_TLS_LOCAL), "local");
	assert_null(tp_queue_tls_name((tp_queue_tls)9));
	assert_null(tp_queue_tls_name((tp_queue_tls)-1));
}


/* Control characters that JSON carries escaped reach nobody: C0, DEL
 * and C1 become '?', UTF-8 stays. */
static void
test_queue__strings_are_sanitized(void **state)
{
	static const char line[] =
		"{\"queue_id\": \"A1\", \"queue_name\": \"def\\u0000\", \"sender\": \"x\"}\n"
		"{\"queue_id\": \"A2\", \"queue_name\": \"deferred\\r\\n\","
		" \"sender\": \"\\u001b[31mred\\u007f\\u0085\\u00a0\xc3\xb6\\ud83d\\ude00\","
		" \"recipients\": [{\"address\": \"a\\tb@c.test\","
		" \"delay_reason\": \"Server certificate not verified\\n\"}],"
		" \"future_member\": {\"nested\": [1, 2, {\"x\": null}]}}\n";
	tp_queue *q = NULL;
	const tp_queue_message *m;

	(void)state;
	assert_int_equal(tp_queue_parse(&q, line, strlen(line), NULL), 0);
	assert_int_equal(tp_queue_malformed(q), 1);	/* \u0000 */
	assert_int_equal(tp_queue_count(q), 1);
	m = tp_queue_at(q, 0);
	assert_string_equal(m->queue_id, "A2");
	assert_string_equal(m->queue_name, "deferred??");
	assert_string_equal(m->sender, "?[31mred??\xc2\xa0\xc3\xb6\xf0\x9f\x98\x80");
	assert_string_equal(m->recipients[0].address, "a?b@c.test");
	/* Sanitized first, classified after: a reason with a control
	 * character is not a text Postfix wrote. */
	assert_string_equal(m->recipients[0].delay_reason, "Server certificate not verified?");
	assert_int_equal(m->recipients[0].tls, TP_QUEUE_TLS_NONE);
	/* Absent members. */
	assert_true(m->arrival_time == -1);
	assert_true(m->message_size == -1);
	assert_false(m->forced_expire);
	assert_int_equal(m->line, 2);
	tp_queue_free(q);
}

/* A line past TP_QUEUE_LINE_MAX is skipped whether it comes in one piece
 * or many, and the next line is read. */
static void
test_queue__huge_line_skipped(void **state)
{
	static const char good[] = "{\"queue_id\": \"B1\", \"recipients\": []}\n";
	size_t big = TP_QUEUE_LINE_MAX + 10;
	char *text = malloc(big + sizeof(good));
	tp_queue *q = NULL;
	unsigned long line;

	(void)state;
	assert_non_null(text);
	/* A well-formed JSON object, only too long. */
	memset(text, ' ', big);
	memcpy(text, "{\"queue_id\": \"H1\"", 17);
	text[big - 2] = '}';
	text[big - 1] = '\n';
	memcpy(text + big, good, sizeof(good));
	assert_int_equal(tp_queue_parse(&q, text, big + sizeof(good) - 1, NULL), 0);
	assert_int_equal(tp_queue_count(q), 1);
	assert_string_equal(tp_queue_at(q, 0)->queue_id, "B1");
	assert_int_equal(tp_queue_at(q, 0)->line, 2);
	assert_int_equal(tp_queue_malformed(q), 1);
	assert_non_null(strstr(tp_queue_first_malformed(q, &line), "TP_QUEUE_LINE_MAX"));
	assert_int_equal(line, 1);
	tp_queue_free(q);

	assert_int_equal(tp_queue_new(&q, NULL), 0);
	for (size_t off = 0; off < big; off += 65536)
		assert_int_equal(tp_queue_feed(q, text + off, big - off < 65536 ? big - off : 65536, NULL), 0);
	assert_int_equal(tp_queue_feed(q, good, sizeof(good) - 1, NULL), 0);
	/* A line exactly at the limit is read. */
	memset(text, ' ', TP_QUEUE_LINE_MAX);
	memcpy(text, "{\"queue_id\": \"L1\"", 17);
	text[TP_QUEUE_LINE_MAX - 1] = '}';
	assert_int_equal(tp_queue_feed(q, text, TP_QUEUE_LINE_MAX, NULL), 0);
	/* And an oversize last line without its newline is counted too. */
	memset(text, 'x', big);
	assert_int_equal(tp_queue_feed(q, "\n", 1, NULL), 0);
	assert_int_equal(tp_queue_feed(q, text, big, NULL), 0);
	assert_int_equal(tp_queue_end(q, NULL), 0);
	assert_int_equal(tp_queue_count(q), 2);
	assert_string_equal(tp_queue_at(q, 1)->queue_id, "L1");
	assert_int_equal(tp_queue_malformed(q), 2);
	tp_queue_free(q);
	free(text);
}

static void
test_queue__usage(void **state)
{
	tp_queue *q = NULL;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	assert_int_equal(tp_queue_parse(NULL, "", 0, &diag), TP_EUSAGE);
	assert_int_equal(diag.status, TP_EUSAGE);
	assert_int_equal(tp_queue_parse(&q, NULL, 1, NULL), TP_EUSAGE);
	assert_null(q);
	assert_int_equal(tp_queue_parse(&q, NULL, 0, NULL), 0);
	assert_int_equal(tp_queue_count(q), 0);
	assert_null(tp_queue_at(q, 0));
	assert_int_equal(tp_queue_feed(NULL, "x", 1, NULL), TP_EUSAGE);
	assert_int_equal(tp_queue_end(NULL, NULL), TP_EUSAGE);
	assert_int_equal(tp_queue_count(NULL), 0);
	assert_int_equal(tp_queue_malformed(NULL), 0);
	assert_null(tp_queue_first_malformed(NULL, NULL));
	tp_queue_free(q);
	tp_queue_free(NULL);
}

/* ---- routing ---- */

static tp_config *
config_with(const char *main_cf)
{
	tp_config *config = NULL;
	char text[4096];

	snprintf(text, sizeof(text), "compatibility_level = 3.6\n%s", main_cf);
	write_file("main.cf", text);
	assert_int_equal(tp_config_load(&config, dir, NULL), 0);
	return config;
}

static void
postmap(const char *file)
{
	char cmd[1024];
	int status;

	snprintf(cmd, sizeof(cmd), "postmap -c '%s' 'hash:%s/%s' 2>&1", dir, dir, file);
	status = system(cmd);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("%s failed (is postfix installed?)", cmd);
}

struct route_case {
	const char *recipient;
	const char *transport;
	const char *nexthop;	/* whole; the first destination unless a list */
	tp_route_via via;
	const char *key;	/* NULL: none */
};

static void
check_routes(const char *main_cf, const struct route_case *cases, size_t n)
{
	tp_config *config = config_with(main_cf);
	tp_route *route = NULL;
	tp_diag diag = TP_DIAG_INIT;

	if (tp_route_new(&route, config, &diag) < 0)
		fail_msg("tp_route_new: %s", diag.message);
	for (size_t i = 0; i < n; i++) {
		const tp_route_result *res = NULL;
		const char *hop = NULL;

		if (tp_route_find(route, cases[i].recipient, &res, &diag) < 0)
			fail_msg("%s: %s", cases[i].recipient, diag.message);
		if (strcmp(res->nexthop, cases[i].nexthop) != 0
		    || strcmp(res->transport, cases[i].transport) != 0
		    || res->via != cases[i].via
		    || (cases[i].key == NULL) != (res->key == NULL)
		    || (cases[i].key && strcmp(cases[i].key, res->key) != 0))
			fail_msg("%s: got %s:%s via %d key %s; want %s:%s via %d key %s",
				 cases[i].recipient, res->transport, res->nexthop, res->via,
				 res->key ? res->key : "(none)", cases[i].transport,
				 cases[i].nexthop, cases[i].via,
				 cases[i].key ? cases[i].key : "(none)");
		assert_int_equal(tp_route_nexthop(route, cases[i].recipient, &hop, NULL), 0);
		if (strchr(cases[i].nexthop, ',') == NULL && strchr(cases[i].nexthop, ' ') == NULL)
			assert_string_equal(hop, cases[i].nexthop);
	}
	tp_route_free(route);
	tp_config_free(config);
}

#define CHECK_ROUTES(main_cf, cases) check_routes(main_cf, cases, sizeof(cases) / sizeof(cases[0]))

/* No transport_maps, no relayhost: the recipient domain, as written. */
static void
test_route__domain(void **state)
{
	static const struct route_case cases[] = {
		{ "user@Example.COM", "smtp", "Example.COM", TP_ROUTE_VIA_DOMAIN, NULL },
		{ "user@example.com.", "smtp", "example.com", TP_ROUTE_VIA_DOMAIN, NULL },
		{ "user@[127.0.0.1]", "smtp", "[127.0.0.1]", TP_ROUTE_VIA_DOMAIN, NULL },
		{ "a@b@example.net", "smtp", "example.net", TP_ROUTE_VIA_DOMAIN, NULL },
		{ "\"john doe\"@example.org", "smtp", "example.org", TP_ROUTE_VIA_DOMAIN, NULL },
		{ "j\xc3\xb6rg@b\xc3\xbc" "cher.example", "smtp", "b\xc3\xbc" "cher.example",
		  TP_ROUTE_VIA_DOMAIN, NULL },
	};
	static const char *const bad[] = { "local-user", "user@", "user@.", "" };
	tp_config *config;
	tp_route *route = NULL;
	const tp_route_result *res;
	const char *hop;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	CHECK_ROUTES("", cases);
	config = config_with("");
	assert_int_equal(tp_route_new(&route, config, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tp_route_find(route, bad[i], &res, &diag), TP_EINVALID);
		assert_null(res);
		assert_int_equal(tp_route_nexthop(route, bad[i], &hop, NULL), TP_EINVALID);
		assert_null(hop);
	}
	assert_int_equal(tp_route_find(route, NULL, &res, NULL), TP_EUSAGE);
	assert_int_equal(tp_route_find(route, "a@b", NULL, NULL), TP_EUSAGE);
	assert_int_equal(tp_route_nexthop(route, "a@b", NULL, NULL), TP_EUSAGE);
	assert_int_equal(tp_route_new(NULL, config, NULL), TP_EUSAGE);
	assert_int_equal(tp_route_new(&route, NULL, NULL), TP_EUSAGE);
	tp_route_free(route);
	tp_route_free(NULL);
	tp_config_free(config);
}

/* relayhost replaces the domain; a list is split as smtp(8) splits it. */
static void
test_route__relayhost(void **state)
{
	static const struct route_case one[] = {
		{ "user@example.com", "smtp", "[relay.example.net]:587", TP_ROUTE_VIA_RELAYHOST, NULL },
	};
	static const struct route_case list[] = {
		{ "user@example.com", "smtp", "relay1.example.net:2525, [127.0.0.1]",
		  TP_ROUTE_VIA_RELAYHOST, NULL },
	};
	tp_config *config;
	tp_route *route = NULL;
	const tp_route_result *res;
	const char *hop;

	(void)state;
	CHECK_ROUTES("relayhost = [relay.example.net]:587\n", one);
	CHECK_ROUTES("relayhost = relay1.example.net:2525, [127.0.0.1]\n", list);
	config = config_with("relayhost = relay1.example.net:2525,\n [127.0.0.1]\n");
	assert_int_equal(tp_route_new(&route, config, NULL), 0);
	assert_int_equal(tp_route_find(route, "u@example.com", &res, NULL), 0);
	assert_int_equal(res->destination_count, 2);
	assert_string_equal(res->destinations[0], "relay1.example.net:2525");
	assert_string_equal(res->destinations[1], "[127.0.0.1]");
	assert_int_equal(tp_route_nexthop(route, "u@example.com", &hop, NULL), 0);
	assert_string_equal(hop, "relay1.example.net:2525");
	tp_route_free(route);
	tp_config_free(config);
}

/*
 * transport_maps, as transport(5) and transport.c have it: full address,
 * domain, ".parent" (the 3.7 default), "*"; "transport" alone resets the
 * next hop to the recipient domain even over relayhost; ":nexthop" keeps
 * the transport; ":" changes nothing.
 */
static void
test_route__transport_maps_inline(void **state)
{
	static const struct route_case cases[] = {
		{ "u@example.com", "smtp", "[127.0.0.1]:2525", TP_ROUTE_VIA_TRANSPORT_MAPS, "example.com" },
		{ "U@EXAMPLE.com", "smtp", "[127.0.0.1]:2525", TP_ROUTE_VIA_TRANSPORT_MAPS, "EXAMPLE.com" },
		{ "u@a.b.parent.example", "relay", "relay.example.net:587",
		  TP_ROUTE_VIA_TRANSPORT_MAPS, ".parent.example" },
		{ "u@parent.example", "smtp", "[127.0.0.2]", TP_ROUTE_VIA_TRANSPORT_MAPS, "*" },
		{ "u@bare.example", "smtp", "bare.example", TP_ROUTE_VIA_TRANSPORT_MAPS, "bare.example" },
		{ "u@keep.example", "smtp", "[127.0.0.1]:26", TP_ROUTE_VIA_TRANSPORT_MAPS, "keep.example" },
		{ "u@noop.example", "smtp", "[127.0.0.9]:25", TP_ROUTE_VIA_RELAYHOST, "noop.example" },
		{ "u@err.example", "error", "Address is undeliverable", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "err.example" },
		{ "u@gone.example", "error", "5.1.1 gone", TP_ROUTE_VIA_TRANSPORT_MAPS, "gone.example" },
		{ "who@full.example", "smtp", "[127.0.0.1]:1", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "who@full.example" },
		{ "other@full.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "full.example" },
		{ "u@anything.test", "smtp", "[127.0.0.2]", TP_ROUTE_VIA_TRANSPORT_MAPS, "*" },
	};

	(void)state;
	CHECK_ROUTES("relayhost = [127.0.0.9]:25\n"
		     "transport_maps = inline:{ example.com=smtp:[127.0.0.1]:2525,\n"
		     "  .parent.example=relay:relay.example.net:587, bare.example=smtp,\n"
		     "  keep.example=:[127.0.0.1]:26, noop.example=:, err.example=error,\n"
		     "  { gone.example = error:5.1.1 gone }, who@full.example=smtp:[127.0.0.1]:1,\n"
		     "  full.example=smtp:[127.0.0.1]:3 }, inline:{ *=smtp:[127.0.0.2] }\n",
		     cases);
}

/* With transport_maps in parent_domain_matches_subdomains, "domain"
 * matches its subdomains and ".domain" entries are never asked. */
static void
test_route__parent_domain_matches_subdomains(void **state)
{
	static const struct route_case cases[] = {
		{ "u@a.b.parent.example", "smtp", "[127.0.0.1]:1", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "parent.example" },
		{ "u@parent.example", "smtp", "[127.0.0.1]:1", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "parent.example" },
		{ "u@x.dot.example", "smtp", "x.dot.example", TP_ROUTE_VIA_DOMAIN, NULL },
	};
	static const struct route_case dflt[] = {
		{ "u@a.b.parent.example", "smtp", "a.b.parent.example", TP_ROUTE_VIA_DOMAIN, NULL },
		{ "u@parent.example", "smtp", "[127.0.0.1]:1", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "parent.example" },
		{ "u@x.dot.example", "smtp", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  ".dot.example" },
	};

	(void)state;
	CHECK_ROUTES("parent_domain_matches_subdomains = relay_domains, Transport_Maps\n"
		     "transport_maps = inline:{ parent.example=smtp:[127.0.0.1]:1,"
		     " .dot.example=smtp:[127.0.0.1]:2 }\n", cases);
	CHECK_ROUTES("transport_maps = inline:{ parent.example=smtp:[127.0.0.1]:1,"
		     " .dot.example=smtp:[127.0.0.1]:2 }\n", dflt);
}

/*
 * hash: tables (postmap), several maps in order, recipient_delimiter:
 * each key form goes through every map before the next form is tried.
 */
static void
test_route__hash_maps_and_extensions(void **state)
{
	static const struct route_case cases[] = {
		{ "full@c.example", "smtp", "[127.0.0.1]:1", TP_ROUTE_VIA_TRANSPORT_MAPS, "full@c.example" },
		{ "FULL@C.EXAMPLE", "smtp", "[127.0.0.1]:1", TP_ROUTE_VIA_TRANSPORT_MAPS, "FULL@C.EXAMPLE" },
		{ "ext+foo@c.example", "smtp", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT_MAPS, "ext@c.example" },
		{ "ext-foo@c.example", "smtp", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT_MAPS, "ext@c.example" },
		{ "owner-ext@c.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS, "c.example" },
		{ "ext-request@c.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS, "c.example" },
		{ "+ext@c.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS, "c.example" },
		{ "other@c.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS, "c.example" },
		/* The domain in the second map before the parent in the first. */
		{ "u@a.d.example", "smtp", "[127.0.0.1]:5", TP_ROUTE_VIA_TRANSPORT_MAPS, "a.d.example" },
		{ "u@b.d.example", "smtp", "[127.0.0.1]:4", TP_ROUTE_VIA_TRANSPORT_MAPS, ".d.example" },
		{ "u@list.example", "smtp", "[127.0.0.1]:6,[127.0.0.1]:7", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "list.example" },
		{ "u@none.example", "smtp", "none.example", TP_ROUTE_VIA_DOMAIN, NULL },
		/* Quoted local parts: the extension is cut from the unquoted
		 * form, then the bare address is asked quoted, then not. */
		{ "\"john..doe\"@c.example", "smtp", "[127.0.0.1]:9", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "\"john..doe\"@c.example" },
		{ "\"john..doe+x\"@c.example", "smtp", "[127.0.0.1]:9", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "\"john..doe\"@c.example" },
		{ "john..doe-x@c.example", "smtp", "[127.0.0.1]:9", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "\"john..doe\"@c.example" },
		{ "\"jim..bo+x\"@c.example", "smtp", "[127.0.0.1]:10", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "jim..bo@c.example" },
		{ "\"ann\"@c.example", "smtp", "[127.0.0.1]:11", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "ann@c.example" },
		/* split_addr() never splits the double_bounce_sender. */
		{ "double-bounce@c.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "c.example" },
	};
	/* ... whatever it is named (compared case-insensitively), and only
	 * that name. */
	static const struct route_case dbs[] = {
		{ "no-bounce@c.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "c.example" },
		{ "NO-Bounce@c.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "c.example" },
		{ "double-bounce@c.example", "smtp", "[127.0.0.1]:14", TP_ROUTE_VIA_TRANSPORT_MAPS,
		  "double@c.example" },
	};
	tp_config *config;
	tp_route *route = NULL;
	const tp_route_result *res;

	(void)state;
	write_file("transport",
		   "full@c.example\tsmtp:[127.0.0.1]:1\n"
		   "ext@c.example\tsmtp:[127.0.0.1]:2\n"
		   "owner@c.example\tsmtp:[127.0.0.1]:8\n"
		   "c.example\tsmtp:[127.0.0.1]:3\n"
		   ".d.example\tsmtp:[127.0.0.1]:4\n"
		   "list.example\tsmtp:[127.0.0.1]:6,[127.0.0.1]:7\n"
		   "\"john..doe\"@c.example\tsmtp:[127.0.0.1]:9\n"
		   "jim..bo@c.example\tsmtp:[127.0.0.1]:10\n"
		   "\"ann\"@c.example\tsmtp:[127.0.0.1]:12\n"
		   "ann@c.example\tsmtp:[127.0.0.1]:11\n"
		   "no@c.example\tsmtp:[127.0.0.1]:13\n"
		   "double@c.example\tsmtp:[127.0.0.1]:14\n");
	write_file("transport2", "a.d.example smtp:[127.0.0.1]:5\n");
	postmap("transport");
	postmap("transport2");
	CHECK_ROUTES("recipient_delimiter = +-\n"
		     "transport_maps = hash:$config_directory/transport,"
		     " hash:${config_directory}/transport2\n", cases);
	CHECK_ROUTES("recipient_delimiter = -\ndouble_bounce_sender = No-Bounce\n"
		     "transport_maps = hash:$config_directory/transport\n", dbs);

	config = config_with("transport_maps = hash:$config_directory/transport\n");
	assert_int_equal(tp_route_new(&route, config, NULL), 0);
	assert_int_equal(tp_route_find(route, "u@list.example", &res, NULL), 0);
	assert_int_equal(res->destination_count, 2);
	assert_string_equal(res->destinations[0], "[127.0.0.1]:6");
	assert_string_equal(res->destinations[1], "[127.0.0.1]:7");
	/* Without recipient_delimiter, the extension stays. */
	assert_int_equal(tp_route_find(route, "ext+foo@c.example", &res, NULL), 0);
	assert_string_equal(res->nexthop, "[127.0.0.1]:3");
	tp_route_free(route);
	tp_config_free(config);
}

/* Pattern tables see the full address and "*" only, as Postfix asks them
 * (a partial key is for fixed-string tables). A rule with $number is
 * skipped: transport_maps are opened with DICT_FLAG_NO_REGSUB. */
static void
test_route__regexp_sees_full_address_only(void **state)
{
	static const struct route_case cases[] = {
		{ "u@re.example", "smtp", "[127.0.0.1]:1", TP_ROUTE_VIA_TRANSPORT_MAPS, "u@re.example" },
		{ "v@re.example", "smtp", "[127.0.0.1]:9", TP_ROUTE_VIA_TRANSPORT_MAPS, "re.example" },
		/* The domain rule is never asked: "*" answers. */
		{ "w@only-domain.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS, "*" },
		{ "w@star.example", "smtp", "[127.0.0.1]:3", TP_ROUTE_VIA_TRANSPORT_MAPS, "*" },
		{ "x@sub.example", "smtp", "[127.0.0.1]:4", TP_ROUTE_VIA_TRANSPORT_MAPS, "x@sub.example" },
	};
	static const char *const kinds[] = { "regexp", "pcre" };

	(void)state;
	write_file("transport.re",
		   "/^u@re\\.example$/\tsmtp:[127.0.0.1]:1\n"
		   "/^only-domain\\.example$/\tsmtp:[127.0.0.1]:2\n"
		   "/^(.*)@sub\\.example$/\tsmtp:[$1.relay.example]\n"
		   "/@sub\\.example$/\tsmtp:[127.0.0.1]:4\n"
		   "/^\\*$/\tsmtp:[127.0.0.1]:3\n");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char main_cf[256];

		snprintf(main_cf, sizeof(main_cf),
			 "transport_maps = %s:$config_directory/transport.re,"
			 " inline:{ re.example=smtp:[127.0.0.1]:9 }\n", kinds[i]);
		CHECK_ROUTES(main_cf, cases);
	}
}

/* default_transport and relay_transport with a next hop of their own;
 * relay_domains with exclusions, parent matching (on and off) and a table. */
static void
test_route__main_cf_transports(void **state)
{
	static const struct route_case dflt[] = {
		{ "u@example.com", "smtp", "[127.0.0.1]:25", TP_ROUTE_VIA_TRANSPORT, NULL },
		{ "u@t.example", "smtp", "t.example", TP_ROUTE_VIA_TRANSPORT_MAPS, "t.example" },
	};
	static const struct route_case relay[] = {
		{ "u@relay.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
		{ "u@sub.relay.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
		{ "u@no.relay.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
		{ "u@table.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
		{ "u@x.table.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
		/* In parent style, match_hostname() never tries ".domain"
		 * as a suffix of its own. */
		{ "u@dot.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
		{ "u@x.dot.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
		{ "u@other.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
	};
	static const struct route_case relay_exact[] = {
		{ "u@relay.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
		{ "u@sub.relay.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
		{ "u@dot.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
		{ "u@x.dot.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
	};
	/* match_list casefold()s patterns and the domain: full Unicode
	 * folding with smtputf8_enable, ASCII only without. */
	static const struct route_case relay_utf8[] = {
		{ "u@B\xc3\x9c" "CHER.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
		{ "u@\xc3\xb6l.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
	};
	static const struct route_case relay_ascii[] = {
		{ "u@B\xc3\x9c" "CHER.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
		{ "u@B\xc3\xbc" "CHER.example", "relay", "[127.0.0.1]:2", TP_ROUTE_VIA_TRANSPORT, NULL },
		{ "u@\xc3\xb6l.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
	};
	static const struct route_case plain_relay[] = {
		{ "u@relay.example", "relay", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
		{ "u@other.example", "smtp", "[127.0.0.9]", TP_ROUTE_VIA_RELAYHOST, NULL },
	};

	(void)state;
	CHECK_ROUTES("relayhost = [127.0.0.9]\ndefault_transport = smtp:[127.0.0.1]:25\n"
		     "transport_maps = inline:{ t.example=smtp }\n", dflt);
	write_file("relay_domains", "table.example OK\n");
	postmap("relay_domains");
	CHECK_ROUTES("relayhost = [127.0.0.9]\nrelay_transport = relay:[127.0.0.1]:2\n"
		     "relay_domains = !no.relay.example, relay.example,"
		     " hash:$config_directory/relay_domains .dot.example\n", relay);
	CHECK_ROUTES("relayhost = [127.0.0.9]\nrelay_transport = relay:[127.0.0.1]:2\n"
		     "parent_domain_matches_subdomains = transport_maps\n"
		     "relay_domains = relay.example, .dot.example\n", relay_exact);
	CHECK_ROUTES("relayhost = [127.0.0.9]\nrelay_transport = relay:[127.0.0.1]:2\n"
		     "relay_domains = b\xc3\xbc" "cher.example, \xc3\x96L.example\n", relay_utf8);
	CHECK_ROUTES("relayhost = [127.0.0.9]\nrelay_transport = relay:[127.0.0.1]:2\n"
		     "smtputf8_enable = no\n"
		     "relay_domains = b\xc3\xbc" "cher.example, \xc3\x96L.example\n", relay_ascii);
	CHECK_ROUTES("relayhost = [127.0.0.9]\nrelay_domains = relay.example\n", plain_relay);
}

/* Where Postfix would defer the mail, or the answer is not knowable here. */
static void
test_route__errors(void **state)
{
	static const struct {
		const char *main_cf;
		const char *recipient;
		int status;
	} cases[] = {
		{ "transport_maps = fail:broken\n", "u@example.com", TP_EINVALID },
		{ "transport_maps = inline:{ a.example=smtp:[127.0.0.1] }, socketmap:inet:127.0.0.1:9:x\n",
		  "u@example.com", TP_EUNSUPPORTED },
		{ "transport_maps = inline:{ u@a.example=smtp:[127.0.0.1] }, socketmap:inet:127.0.0.1:9:x\n",
		  "u@a.example", 0 },
		{ "transport_maps = hash:$config_directory/missing\n", "u@example.com", TP_EIO },
		{ "relay_domains = /etc/postfix/relay_domains\n", "u@example.com", TP_EUNSUPPORTED },
		{ "default_transport = :[127.0.0.1]\n", "u@example.com", TP_EINVALID },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_config *config = config_with(cases[i].main_cf);
		tp_route *route = NULL;
		const tp_route_result *res;
		tp_diag diag = TP_DIAG_INIT;
		int rc;

		assert_int_equal(tp_route_new(&route, config, &diag), 0);
		rc = tp_route_find(route, cases[i].recipient, &res, &diag);
		/* A Berkeley DB that is missing may be reported by libdb. */
		if (cases[i].status == TP_EIO && rc == TP_EDB)
			rc = TP_EIO;
		if (rc != cases[i].status)
			fail_msg("%s%s: %d (%s), want %d", cases[i].main_cf, cases[i].recipient, rc,
				 diag.message, cases[i].status);
		if (rc < 0) {
			assert_null(res);
			assert_int_equal(diag.status, rc);
			assert_true(diag.message[0] != 0);
		}
		tp_route_free(route);
		tp_config_free(config);
	}
}
static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(test_queue__recorded_postqueue_output, setup, teardown),
	cmocka_unit_test_setup_teardown(test_queue__recorded_reasons_are_the_maillogs, setup, teardown),
	cmocka_unit_test_setup_teardown(test_queue__fed_in_pieces, setup, teardown),
	cmocka_unit_test_setup_teardown(test_queue__malformed_lines_skipped_and_counted, setup, teardown),
	cmocka_unit_test_setup_teardown(test_queue__classification, setup, teardown),
	cmocka_unit_test_setup_teardown(test_queue__strings_are_sanitized, setup, teardown),
	cmocka_unit_test_setup_teardown(test_queue__huge_line_skipped, setup, teardown),
	cmocka_unit_test_setup_teardown(test_queue__usage, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__domain, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__relayhost, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__transport_maps_inline, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__parent_domain_matches_subdomains, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__hash_maps_and_extensions, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__regexp_sees_full_address_only, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__main_cf_transports, setup, teardown),
	cmocka_unit_test_setup_teardown(test_route__errors, setup, teardown),
};

int
main(void)
{
	return cmocka_run_group_tests(tests, NULL, NULL);
}
