/* The SMTP reply parser: framing, chunking, caps and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"

static const struct reply_case {
	const char *input;
	int want_rc;		/* 1 complete, 0 needs more, <0 error */
	int want_code;
	size_t want_lines;
	size_t want_used;	/* bytes taken when complete */
	const char *want_text;	/* lines joined by '\n', or the reason */
} reply_cases[] = {
	{ "220 mx.example.com ESMTP\r\n", 1, 220, 1, 26, "220 mx.example.com ESMTP\n" },
	{ "220\r\n", 1, 220, 1, 5, "220\n" },
	{ "250 ok\n", 1, 250, 1, 7, "250 ok\n" },	/* bare LF, as Postfix takes */
	{ "220-one\r\n220-two\r\n220 three\r\n", 1, 220, 3, 29,
	  "220-one\n220-two\n220 three\n" },
	{ "250 ok\r\n221 extra", 1, 250, 1, 8, "250 ok\n" },	/* rest left over */
	{ "250-partial\r\n250", 0, 250, 1, 0, NULL },
	{ "", 0, 0, 0, 0, NULL },
	{ "220 text with \r inside\r\n", 1, 220, 1, 24, "220 text with \r inside\n" },
	{ "hello\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
	{ "22\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
	{ "\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
	{ "\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },	/* no byte stored yet */
	{ "120 too low\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
	{ "620 too high\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
	{ "2x0 x\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
	{ "220_x\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
	{ "220-a\r\n250 b\r\n", TP_EPROTOCOL, 0, 0, 0, "inconsistent reply codes" },
	{ "220 a\0b\r\n", TP_EPROTOCOL, 0, 0, 0, "garbage" },
};

static void
test_smtp_reply__table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		size_t len = strlen(c->input), used = 99;
		tp__smtp_reply r;
		int rc;

		/* The NUL case: count through the embedded NUL. */
		if (strstr(c->input, "220 a") == c->input && c->input[5] == '\0')
			len = 9;
		tp__smtp_reply_init(&r);
		rc = tp__smtp_reply_feed(&r, c->input, len, &used);
		if (rc != c->want_rc)
			fail_msg("case %zu %.20s: got rc %d, want %d", i, c->input, rc,
				 c->want_rc);
		if (rc < 0) {
			if (strcmp(r.why, c->want_text) != 0)
				fail_msg("case %zu: got reason \"%s\", want \"%s\"", i,
					 r.why, c->want_text);
		} else if (rc == 1) {
			if (r.code != c->want_code || r.nlines != c->want_lines ||
			    used != c->want_used || strcmp(r.text.ptr, c->want_text) != 0)
				fail_msg("case %zu: got code %d lines %zu used %zu text \"%s\", "
					 "want %d %zu %zu \"%s\"", i, r.code, r.nlines, used,
					 r.text.ptr, c->want_code, c->want_lines,
					 c->want_used, c->want_text);
		} else if (used != len) {
			fail_msg("case %zu: got used %zu, want %zu", i, used, len);
		}
		tp__smtp_reply_dispose(&r);
	}
}

/* A reply split at every possible byte (and fed byte by byte) parses the same. */
static void
test_smtp_reply__any_chunking_gives_the_same_reply(void **state)
{
	const char *in = "250-mx.example.com\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n";
	size_t len = strlen(in);

	(void)state;
	for (size_t cut = 0; cut <= len; cut++) {
		tp__smtp_reply r;
		size_t used, total = 0;
		int rc;

		tp__smtp_reply_init(&r);
		rc = tp__smtp_reply_feed(&r, in, cut, &used);
		total += used;
		if (rc == 0) {
			rc = tp__smtp_reply_feed(&r, in + cut, len - cut, &used);
			total += used;
		}
		if (rc != 1 || total != len || r.nlines != 4 || r.code != 250)
			fail_msg("cut %zu: got rc %d used %zu lines %zu, want 1 %zu 4",
				 cut, rc, total, r.nlines, len);
		assert_true(tp__smtp_reply_has_keyword(&r, "starttls"));
		tp__smtp_reply_dispose(&r);
	}
}

static void
test_smtp_reply__line_cap_is_2048_bytes_without_crlf(void **state)
{
	char *line = malloc(TP_SMTP_LINE_MAX + 8);
	tp__smtp_reply r;
	size_t used;

	(void)state;
	assert_non_null(line);
	/* Exactly 2048 bytes before CRLF: accepted. */
	memset(line, 'x', TP_SMTP_LINE_MAX);
	memcpy(line, "220 ", 4);
	memcpy(line + TP_SMTP_LINE_MAX, "\r\n", 2);
	tp__smtp_reply_init(&r);
	assert_int_equal(tp__smtp_reply_feed(&r, line, TP_SMTP_LINE_MAX + 2, &used), 1);
	tp__smtp_reply_reset(&r);
	/* 2049: refused, whether CRLF follows or never comes. */
	line[TP_SMTP_LINE_MAX] = 'x';
	assert_int_equal(tp__smtp_reply_feed(&r, line, TP_SMTP_LINE_MAX + 1, &used),
			 TP_ELIMIT);
	assert_string_equal(r.why, "reply line longer than 2048 bytes");
	/* Once failed, it stays failed. */
	assert_int_equal(tp__smtp_reply_feed(&r, "\r\n", 2, &used), TP_ELIMIT);
	tp__smtp_reply_dispose(&r);
	free(line);
}

static void
test_smtp_reply__endless_multiline_reply_stops_at_64k(void **state)
{
	const char *line = "250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";
	tp__smtp_reply r;
	size_t used, fed = 0;
	int rc = 0;

	(void)state;
	tp__smtp_reply_init(&r);
	while (rc == 0 && fed < 10 * TP_SMTP_REPLY_MAX) {
		rc = tp__smtp_reply_feed(&r, line, strlen(line), &used);
		fed += strlen(line);
	}
	assert_int_equal(rc, TP_ELIMIT);
	assert_string_equal(r.why, "reply longer than 65536 bytes");
	/* CRs are not stored, so a little more than the cap is read. */
	if (fed > TP_SMTP_REPLY_MAX + TP_SMTP_REPLY_MAX / 20 || r.text.size > TP_SMTP_REPLY_MAX)
		fail_msg("got %zu bytes read and %zu kept before the cap, want about %d",
			 fed, r.text.size, TP_SMTP_REPLY_MAX);
	/* Bounded memory: the buffer never grew much past the cap. */
	assert_true(r.text.asize <= 2 * TP_SMTP_REPLY_MAX + 2);
	tp__smtp_reply_dispose(&r);
}

static void
test_smtp_reply__ehlo_keyword_only_on_later_lines(void **state)
{
	static const struct {
		const char *reply;
		int want;
	} cases[] = {
		{ "250-mx\r\n250-STARTTLS\r\n250 SIZE 10\r\n", 1 },
		{ "250-mx\r\n250 starttls\r\n", 1 },
		{ "250 STARTTLS\r\n", 0 },		/* first line is the greeting */
		{ "250-mx\r\n250 STARTTLSX\r\n", 0 },
		{ "250-mx\r\n250 XSTARTTLS\r\n", 0 },
		{ "250-mx\r\n250 STARTTLS now\r\n", 1 },
		{ "250-mx\r\n250 8BITMIME\r\n", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp__smtp_reply r;
		size_t used;
		int got;

		tp__smtp_reply_init(&r);
		assert_int_equal(tp__smtp_reply_feed(&r, cases[i].reply,
						     strlen(cases[i].reply), &used), 1);
		got = tp__smtp_reply_has_keyword(&r, "STARTTLS");
		if (got != cases[i].want)
			fail_msg("\"%s\": got %d, want %d", cases[i].reply, got, cases[i].want);
		tp__smtp_reply_dispose(&r);
	}
}

static void
test_smtp_reply__summary_is_one_printable_line(void **state)
{
	tp__smtp_reply r;
	char buf[64], small[12];
	size_t used;
	const char *in = "550-5.7.1 go\x1b[31m away\r\n550 5.7.1 really\r\n";

	(void)state;
	tp__smtp_reply_init(&r);
	assert_int_equal(tp__smtp_reply_feed(&r, in, strlen(in), &used), 1);
	assert_string_equal(tp__smtp_reply_summary(&r, buf, sizeof(buf)),
			    "550-5.7.1 go?[31m away 5.7.1 really");
	assert_string_equal(tp__smtp_reply_summary(&r, small, sizeof(small)),
			    "550-5.7....");
	tp__smtp_reply_dispose(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_reply__table),
		cmocka_unit_test(test_smtp_reply__any_chunking_gives_the_same_reply),
		cmocka_unit_test(test_smtp_reply__line_cap_is_2048_bytes_without_crlf),
		cmocka_unit_test(test_smtp_reply__endless_multiline_reply_stops_at_64k),
		cmocka_unit_test(test_smtp_reply__ehlo_keyword_only_on_later_lines),
		cmocka_unit_test(test_smtp_reply__summary_is_one_printable_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
