/*
 * The policy document: postmap's reading of a source file, rule by rule;
 * the lossless property; in-place edits that touch only their entry; and
 * a differential test against the real postmap(1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "casefold.h"
#include "tlspolicy/document.h"

#define LEN(s) (sizeof(s) - 1)

static const tp_doc_opts utf8_opts = { TP_DOC_OPTS_VERSION, 1, 1 };
static const tp_doc_opts ascii_opts = { TP_DOC_OPTS_VERSION, 0, 1 };

/* Bytes made readable for messages: \n, \r, \t, \0 and \xNN. */
static void
show(tp_buf *out, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			tp__buf_puts(out, "\\n");
		else if (c == '\r')
			tp__buf_puts(out, "\\r");
		else if (c == '\t')
			tp__buf_puts(out, "\\t");
		else if (c == '\\')
			tp__buf_puts(out, "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			tp__buf_printf(out, "\\x%02x", c);
		else
			tp__buf_putc(out, (char)c);
	}
}

/*
 * The doc as text: one line per entry, "LINE-LAST KEY<TAB>VALUE", then
 * " dup" for a duplicate, " from=a,b pin=k" for an annotation; then one
 * "w LINE: MESSAGE" per warning.
 */
static void
dump(const tp_doc *doc, tp_buf *out)
{
	size_t i, j;
	tp_entry e;

	tp__buf_truncate(out, 0);
	for (i = 0; i < tp_doc_entry_count(doc); i++) {
		assert_int_equal(tp_doc_entry_at(doc, i, &e), 0);
		tp__buf_printf(out, "%lu-%lu ", e.line, e.last_line);
		show(out, e.key, e.key_len);
		tp__buf_putc(out, '\t');
		show(out, e.value, e.value_len);
		if (strcmp(e.raw_key, e.key) != 0) {
			tp__buf_puts(out, " raw=");
			show(out, e.raw_key, strlen(e.raw_key));
		}
		if (e.duplicate)
			tp__buf_puts(out, " dup");
		for (j = 0; j < e.from_count; j++)
			tp__buf_printf(out, "%s%s", j ? "," : " from=", e.from[j]);
		if (e.pin_kind)
			tp__buf_printf(out, " pin=%s", e.pin_kind);
		tp__buf_putc(out, '\n');
	}
	for (i = 0; i < tp_doc_warning_count(doc); i++) {
		const tp_doc_warning *w = tp_doc_warning_at(doc, i);

		tp__buf_printf(out, "w %lu: ", w->line);
		show(out, w->message, strlen(w->message));
		tp__buf_putc(out, '\n');
	}
	tp__buf_grow(out, 0);
}

static void
assert_lossless(const tp_doc *doc, const char *in, size_t len)
{
	tp_buf out = TP_BUF_INIT;

	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	if (out.size != len || (len && memcmp(out.ptr, in, len) != 0)) {
		tp_buf a = TP_BUF_INIT, b = TP_BUF_INIT;

		show(&a, out.ptr, out.size);
		show(&b, in, len);
		fail_msg("serialize: got \"%s\", want \"%s\"", a.ptr, b.ptr);
	}
	tp_buf_dispose(&out);
}

struct parse_case {
	const char *name;
	const char *in;
	size_t len;
	int ascii;		/* smtputf8_enable = no */
	const char *want;
};

#define IN(s) s, LEN(s)

/* Every rule of postfix-facts.md, and what real postmap 3.7.11 does. */
static const struct parse_case parse_cases[] = {
	{ "plain entries", IN("a.com may\nB.com  encrypt\n"), 0,
	  "1-1 a.com\tmay\n2-2 b.com\tencrypt raw=B.com\n" },
	{ "continuation keeps its leading whitespace",
	  IN("k fingerprint\n    match=AA\n\tmatch=BB\n"), 0,
	  "1-3 k\tfingerprint    match=AA\\tmatch=BB\n" },
	{ "comment inside a continued entry is dropped, entry goes on",
	  IN("k fingerprint\n# c\n    match=AA\n  # indented\n match=BB\nz v\n"), 0,
	  "1-5 k\tfingerprint    match=AA match=BB\n6-6 z\tv\n" },
	{ "blank and whitespace-only lines inside an entry are dropped too",
	  IN("k a\n\n \t\n  b\n"), 0, "1-4 k\ta  b\n" },
	{ "indented comment is a comment", IN("   # x y\nk v\n"), 0,
	  "2-2 k\tv\n" },
	{ "hash after text is data", IN("foo may # x\n"), 0,
	  "1-1 foo\tmay # x\n" },
	{ "hash inside key is data", IN("a#b v\n"), 0, "1-1 a#b\tv\n" },
	{ "quoted key keeps quotes and spaces",
	  IN("\"Q k\" v\n"), 0, "1-1 \"q k\"\tv raw=\"Q k\"\n" },
	{ "backslash escapes whitespace in key", IN("x\\ y  z\n"), 0,
	  "1-1 x\\\\ y\tz\n" },
	{ "unbalanced quote skips the line",
	  IN("k\"q v\nz w\n"), 0,
	  "2-2 z\tw\nw 1: f, line 1: unbalanced '\"' in 'k\"q v' -- ignoring this line\n" },
	{ "backslash at the end of a key-only line",
	  IN("k\\\n"), 0,
	  "w 1: f, line 1: expected format: key whitespace value\n" },
	{ "trailing whitespace and CR trimmed", IN("k v  \t\r\n"), 0,
	  "1-1 k\tv\n" },
	{ "CR ends a key", IN("k\rv\r\n"), 0, "1-1 k\tv\n" },
	{ "CR of a non-final continued line stays in the value",
	  IN("a b\r\n  c\r\nd\r e\r\n"), 0,
	  "1-2 a\tb\\r  c\n3-3 d\te\n" },
	{ "lone CR line is blank", IN("\r\nk v\r\n\r\n"), 0, "2-2 k\tv\n" },
	{ "key only: expected format warning with the first line number",
	  IN("\n\n# c\nq\n\nr s"), 0,
	  "6-6 r\ts\nw 4: f, line 4: expected format: key whitespace value\n" },
	{ "key with only whitespace after it",
	  IN("q   \t\nr s\n"), 0,
	  "2-2 r\ts\nw 1: f, line 1: expected format: key whitespace value\n" },
	{ "alias-file hint, entry kept", IN("x: y\n"), 0,
	  "1-1 x:\ty\nw 1: f, line 1: record is in \"key: value\" format; is this an alias file?\n" },
	{ "first line with leading whitespace skipped with its continuations",
	  IN("  lead x\n cont y\na b\n"), 0,
	  "3-3 a\tb\nw 1: f: logical line must not start with whitespace: \"  lead x cont y\"\n" },
	{ "leading whitespace warning shows 30 bytes then ...",
	  IN(" a23456789012345678901234567890123 v\n"), 0,
	  "w 1: f: logical line must not start with whitespace: \" a2345678901234567890123456789...\"\n" },
	{ "NUL bytes end the line's text",
	  IN("a\0b c\nd e\0f\n\0g h\n"), 0,
	  "2-2 d\te\nw 1: f, line 1: expected format: key whitespace value\n"
	  "w 3: f, line 3: expected format: key whitespace value\n" },
	{ "whitespace then NUL is a continuation",
	  IN("k v\n \0x\n"), 0, "1-2 k\tv\n" },
	{ "no final newline", IN("a b\nc d"), 0, "1-1 a\tb\n2-2 c\td\n" },
	{ "first duplicate wins, postmap warns with the folded key",
	  IN("Foo may\nbar x\nFOO encrypt\n"), 0,
	  "1-1 foo\tmay raw=Foo\n2-2 bar\tx\n3-3 foo\tencrypt raw=FOO dup\n"
	  "w 3: f.db: duplicate entry: \"foo\"\n" },
	{ "UTF-8 keys get full case folding",
	  IN("\xc3\x84\xc3\x9f\xe1\xba\x9e v\n"), 0,
	  "1-1 \\xc3\\xa4ssss\tv raw=\\xc3\\x84\\xc3\\x9f\\xe1\\xba\\x9e\n" },
	{ "non-UTF-8 line skipped; warning text goes through printable()",
	  IN("A\xc3\x84 v\nb \xff\n"), 0,
	  "1-1 a\\xc3\\xa4\tv raw=A\\xc3\\x84\n"
	  "w 2: f, line 2: non-UTF-8 input \"b ?\" -- ignoring this line\n" },
	{ "non-UTF-8 mode keeps the line and folds ASCII only",
	  IN("A\xc3\x84 v\nB \xff\n"), 1,
	  "1-1 a\\xc3\\x84\tv raw=A\\xc3\\x84\n2-2 b\t\\xff raw=B\n" },
	{ "non-UTF-8 after a NUL is not looked at",
	  IN("k v\0\xff\n"), 0, "1-1 k\tv\n" },
	{ "line starting with NUL is checked as a whole",
	  IN("\0\xff v\n"), 0,
	  "w 1: f, line 1: non-UTF-8 input \"\" -- ignoring this line\n" },
	{ "surrogates and overlongs are not UTF-8",
	  IN("a \xed\xa0\x80\nb \xc0\xaf\nc \xf4\x90\x80\x80\nd \xe2\x82\xac\n"), 0,
	  "4-4 d\t\\xe2\\x82\\xac\n"
	  "w 1: f, line 1: non-UTF-8 input \"a \\xed\\xa0\\x80\" -- ignoring this line\n"
	  "w 2: f, line 2: non-UTF-8 input \"b ??\" -- ignoring this line\n"
	  "w 3: f, line 3: non-UTF-8 input \"c \\xf4\\x90\\x80\\x80\" -- ignoring this line\n" },
	{ "control characters in warnings become ?",
	  IN("k\"\t v\n"), 0,
	  "w 1: f, line 1: unbalanced '\"' in 'k\"? v' -- ignoring this line\n" },
	{ "annotation directly above an entry",
	  IN("# tlspolicy: from=mx1.example.com:25,[2001:db8::1]:25 pin=cert\n"
	     "k fingerprint\n"), 0,
	  "2-2 k\tfingerprint from=mx1.example.com:25,[2001:db8::1]:25 pin=cert\n" },
	{ "annotation with CRLF and only pin",
	  IN("#tlspolicy: pin=pkey\r\nk v\r\n"), 0, "2-2 k\tv pin=pkey\n" },
	{ "annotation not directly above is not the entry's",
	  IN("# tlspolicy: from=a\n\nk v\n"), 0, "3-3 k\tv\n" },
	{ "empty file", IN(""), 0, "" },
	{ "only comments", IN("# a\n\n  # b"), 0, "" },
};

static void
test_document__reads_records_exactly_like_postmap(void **state)
{
	size_t i;
	tp_buf got = TP_BUF_INIT;
	tp_doc *doc;
	int failed = 0;

	(void)state;
	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = parse_cases + i;

		assert_int_equal(tp_doc_parse(&doc, c->in, c->len, "f",
					      c->ascii ? &ascii_opts : &utf8_opts), 0);
		dump(doc, &got);
		if (strcmp(got.ptr, c->want) != 0) {
			print_error("%s:\n got:\n%s want:\n%s", c->name, got.ptr,
				    c->want);
			failed++;
		}
		assert_lossless(doc, c->in, c->len);
		tp_doc_free(doc);
	}
	tp_buf_dispose(&got);
	if (failed)
		fail_msg("%d parse case(s) failed", failed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document__reads_records_exactly_like_postmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
