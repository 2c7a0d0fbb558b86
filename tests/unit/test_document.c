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
#include "doc_internal.h"
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
 * " dup" for a duplicate, " from=a,b pin=k keys=x,y" for an annotation;
 * then one
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
		for (j = 0; j < e.key_count; j++)
			tp__buf_printf(out, "%s%s", j ? "," : " keys=", e.keys[j]);
		tp__buf_putc(out, '\n');
	}
	for (i = 0; i < tp_doc_warning_count(doc); i++) {
		const tp_doc_warning *w = tp_doc_warning_at(doc, i);

		tp__buf_printf(out, "w %lu: ", w->line);
		show(out, w->message, strlen(w->message));
		tp__buf_putc(out, '\n');
	}
	tp__buf_put(out, "", 0);
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

/* Postfix's rules for policy table sources, as real postmap 3.7.11 applies them. */
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
	{ "annotation with the public keys of the pinned certificates",
	  IN("# tlspolicy: from=mx.example:25 pin=cert keys=AA:01,BB:02\n"
	     "k fingerprint\n"), 0,
	  "2-2 k\tfingerprint from=mx.example:25 pin=cert keys=AA:01,BB:02\n" },
	{ "annotation words of a newer version are ignored, keys= repeats add up",
	  IN("# tlspolicy: v=2 keys=AA from=h:25 color=red keys=BB, pin=cert x\n"
	     "k v\n"), 0, "2-2 k\tv from=h:25 pin=cert keys=AA,BB\n" },
	{ "annotation with only words we do not know gives no fields",
	  IN("# tlspolicy: later=1 keys=\nk v\n"), 0, "2-2 k\tv\n" },
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


enum edit_op { SET_LEVEL, SET_PINS, SET_ATTR, SET_ANN, SET_KEYS, APPEND,
	       REMOVE };

struct edit_case {
	const char *name;
	const char *in;
	size_t entry;
	enum edit_op op;
	const char *a, *b;	/* level / attr name, value / key, value / pin kind */
	const char *list[4];	/* pins, hosts or keys */
	size_t n;
	int want_status;
	const char *want;	/* NULL: unchanged */
};

static const struct edit_case edit_cases[] = {
	{ "set level replaces the word only",
	  "a may\nk  encrypt  ciphers=high\nz v\n", 1, SET_LEVEL, "secure", NULL,
	  { NULL }, 0, 0, "a may\nk  secure  ciphers=high\nz v\n" },
	{ "level on a continuation line",
	  "k\n  may\n", 0, SET_LEVEL, "encrypt", NULL, { NULL }, 0, 0,
	  "k\n  encrypt\n" },
	{ "level must be one word",
	  "k may\n", 0, SET_LEVEL, "may x", NULL, { NULL }, 0, TP_EUSAGE, NULL },
	{ "level starting with # refused on a continuation line",
	  "k\n  may\n", 0, SET_LEVEL, "#x", NULL, { NULL }, 0, TP_EUSAGE, NULL },
	{ "pins joined with | stay joined",
	  "k fingerprint match=AA|BB\n", 0, SET_PINS, NULL, NULL,
	  { "CC", "DD", "EE" }, 3, 0, "k fingerprint match=CC|DD|EE\n" },
	{ "single match gets | for more pins",
	  "k fingerprint match=AA ciphers=high\n", 0, SET_PINS, NULL, NULL,
	  { "CC", "DD" }, 2, 0, "k fingerprint match=CC|DD ciphers=high\n" },
	{ "pins on continuation lines keep indentation, new lines alike",
	  "a may\nk fingerprint\n    match=AA\n    match=BB\nz v\n", 1, SET_PINS,
	  NULL, NULL, { "C1", "C2", "C3" }, 3, 0,
	  "a may\nk fingerprint\n    match=C1\n    match=C2\n    match=C3\nz v\n" },
	{ "continuation layout with CRLF",
	  "k fingerprint\r\n\tmatch=AA\r\n\tmatch=BB\r\nz v\r\n", 0, SET_PINS,
	  NULL, NULL, { "C1", "C2", "C3" }, 3, 0,
	  "k fingerprint\r\n\tmatch=C1\r\n\tmatch=C2\r\n\tmatch=C3\r\nz v\r\n" },
	{ "fewer pins drop whole continuation lines",
	  "k fingerprint\n  match=AA\n  match=BB\n  match=CC\nz v\n", 0, SET_PINS,
	  NULL, NULL, { "D1" }, 1, 0, "k fingerprint\n  match=D1\nz v\n" },
	{ "separate match attributes on one line keep their separator",
	  "k fingerprint match=AA, match=BB\n", 0, SET_PINS, NULL, NULL,
	  { "C1", "C2", "C3" }, 3, 0,
	  "k fingerprint match=C1, match=C2, match=C3\n" },
	{ "remove every match attribute",
	  "k fingerprint match=AA\n  match=BB ciphers=high\n", 0, SET_PINS, NULL,
	  NULL, { NULL }, 0, 0, "k fingerprint\n  ciphers=high\n" },
	{ "two doomed tokens on one continuation line remove the line",
	  "k fingerprint match=A\n  match=B match=C\nz v", 0, SET_PINS, NULL,
	  NULL, { "X" }, 1, 0, "k fingerprint match=X\nz v" },
	{ "no match yet: appended after the last token",
	  "k fingerprint   # c\n", 0, SET_PINS, NULL, NULL, { "AA", "BB" }, 2, 0,
	  "k fingerprint   # c match=AA|BB\n" },
	{ "no match yet, CRLF and trailing blanks kept",
	  "k fingerprint  \r\n", 0, SET_PINS, NULL, NULL, { "AA" }, 1, 0,
	  "k fingerprint match=AA  \r\n" },
	{ "comment inside an entry survives a pin change",
	  "k fingerprint\n  match=AA\n# keep me\n  match=BB\n", 0, SET_PINS, NULL,
	  NULL, { "C1", "C2" }, 2, 0,
	  "k fingerprint\n  match=C1\n# keep me\n  match=C2\n" },
	{ "last continuation without final newline removed",
	  "k fingerprint\r\n  match=AA\r\n  match=BB", 0, SET_PINS, NULL, NULL,
	  { "C" }, 1, 0, "k fingerprint\r\n  match=C" },
	{ "new pin lines after a last line without newline",
	  "k fingerprint\n  match=AA\n  match=BB", 0, SET_PINS, NULL, NULL,
	  { "1", "2", "3" }, 3, 0,
	  "k fingerprint\n  match=1\n  match=2\n  match=3" },
	{ "pin with | refused", "k fingerprint match=A\n", 0, SET_PINS, NULL,
	  NULL, { "A|B" }, 1, TP_EUSAGE, NULL },
	{ "attribute replaced where it stands, name spelling kept",
	  "k secure Ciphers=low protocols=!SSLv2\n", 0, SET_ATTR, "ciphers",
	  "high", { NULL }, 0, 0, "k secure Ciphers=high protocols=!SSLv2\n" },
	{ "attribute appended", "k secure\n", 0, SET_ATTR, "ciphers", "high",
	  { NULL }, 0, 0, "k secure ciphers=high\n" },
	{ "attribute removed with its separator",
	  "k secure ciphers=high protocols=x\n", 0, SET_ATTR, "ciphers", NULL,
	  { NULL }, 0, 0, "k secure protocols=x\n" },
	{ "attribute alone on its line removed with the line",
	  "k secure\n  ciphers=high\nz v\n", 0, SET_ATTR, "ciphers", NULL,
	  { NULL }, 0, 0, "k secure\nz v\n" },
	{ "first attribute of a continuation line removed",
	  "k secure\n  ciphers=high, protocols=x\n", 0, SET_ATTR, "ciphers", NULL,
	  { NULL }, 0, 0, "k secure\n  protocols=x\n" },
	{ "match is not an attribute for set_attr", "k fingerprint\n", 0,
	  SET_ATTR, "match", "AA", { NULL }, 0, TP_EUSAGE, NULL },
	{ "attribute value with a comma refused", "k secure\n", 0, SET_ATTR,
	  "ciphers", "a,b", { NULL }, 0, TP_EUSAGE, NULL },
	{ "annotation written above the entry",
	  "a may\nk fingerprint match=AA\n", 1, SET_ANN, NULL, "cert",
	  { "mx1.example.com:25", "[2001:db8::1]:25" }, 2, 0,
	  "a may\n# tlspolicy: from=mx1.example.com:25,[2001:db8::1]:25 pin=cert\n"
	  "k fingerprint match=AA\n" },
	{ "annotation replaced, CRLF kept",
	  "# tlspolicy: from=old pin=cert\r\nk v\r\n", 0, SET_ANN, NULL, "pkey",
	  { "new:25" }, 1, 0, "# tlspolicy: from=new:25 pin=pkey\r\nk v\r\n" },
	{ "annotation inserted with the file's CRLF",
	  "a b\r\nk v", 1, SET_ANN, NULL, NULL, { "h:25" }, 1, 0,
	  "a b\r\n# tlspolicy: from=h:25\r\nk v" },
	{ "annotation removed",
	  "a b\n# tlspolicy: from=h pin=cert\nk v\n", 1, SET_ANN, NULL, NULL,
	  { NULL }, 0, 0, "a b\nk v\n" },
	{ "plain comment above is left alone",
	  "# my note\nk v\n", 0, SET_ANN, NULL, "cert", { NULL }, 0, 0,
	  "# my note\n# tlspolicy: pin=cert\nk v\n" },
	{ "host with whitespace refused", "k v\n", 0, SET_ANN, NULL, NULL,
	  { "a b" }, 1, TP_EUSAGE, NULL },
	{ "annotation hosts and kind replaced, keys and unknown words kept",
	  "# tlspolicy: from=old pin=cert keys=AA v=2\nk v\n", 0, SET_ANN, NULL,
	  "pkey", { "new:25" }, 1, 0,
	  "# tlspolicy: from=new:25 pin=pkey keys=AA v=2\nk v\n" },
	{ "annotation: repeated from= folded into the first, pin appended",
	  "# tlspolicy: keys=AA from=a from=b\nk v\n", 0, SET_ANN, NULL, "cert",
	  { "c" }, 1, 0, "# tlspolicy: keys=AA from=c pin=cert\nk v\n" },
	{ "annotation removed with its keys",
	  "a b\n# tlspolicy: from=h pin=cert keys=AA\nk v\n", 1, SET_ANN, NULL,
	  NULL, { NULL }, 0, 0, "a b\nk v\n" },
	{ "keys appended to an annotation, its spacing kept",
	  "a b\n#tlspolicy:  from=h:25   pin=cert \nk v\n", 1, SET_KEYS, NULL,
	  NULL, { "AA:01", "BB:02" }, 2, 0,
	  "a b\n#tlspolicy:  from=h:25   pin=cert keys=AA:01,BB:02 \nk v\n" },
	{ "keys replaced where they stand, CRLF and unknown words kept",
	  "# tlspolicy: keys=OLD from=h:25 x=1 pin=cert\r\nk v\r\n", 0, SET_KEYS,
	  NULL, NULL, { "NEW" }, 1, 0,
	  "# tlspolicy: keys=NEW from=h:25 x=1 pin=cert\r\nk v\r\n" },
	{ "keys removed, repeated ones too, the rest kept",
	  "# tlspolicy: keys=A from=h keys=B pin=cert\nk v\n", 0, SET_KEYS, NULL,
	  NULL, { NULL }, 0, 0, "# tlspolicy: from=h pin=cert\nk v\n" },
	{ "an annotation left with nothing is removed",
	  "a b\n# tlspolicy: keys=A\nk v\nz v\n", 1, SET_KEYS, NULL, NULL,
	  { NULL }, 0, 0, "a b\nk v\nz v\n" },
	{ "keys written above an entry with no annotation",
	  "a b\r\nk v\r\n", 1, SET_KEYS, NULL, NULL, { "AA" }, 1, 0,
	  "a b\r\n# tlspolicy: keys=AA\r\nk v\r\n" },
	{ "no keys to remove: nothing changes",
	  "# tlspolicy: from=h\nk v\n", 0, SET_KEYS, NULL, NULL, { NULL }, 0, 0,
	  NULL },
	{ "key with a comma refused", "# tlspolicy: keys=A\nk v\n", 0, SET_KEYS,
	  NULL, NULL, { "B,C" }, 1, TP_EUSAGE, NULL },
	{ "empty key refused", "k v\n", 0, SET_KEYS, NULL, NULL, { "" }, 1,
	  TP_EUSAGE, NULL },
	{ "append", "a b\n", 0, APPEND, "[mx.example]:25", "fingerprint match=AA",
	  { NULL }, 0, 0, "a b\n[mx.example]:25\tfingerprint match=AA\n" },
	{ "append adds the missing final newline", "a b", 0, APPEND, "k", "v",
	  { NULL }, 0, 0, "a b\nk\tv\n" },
	{ "append to a CRLF file", "a b\r\n", 0, APPEND, "k", "v", { NULL }, 0,
	  0, "a b\r\nk\tv\r\n" },
	{ "append to an empty file", "", 0, APPEND, "k", "v", { NULL }, 0, 0,
	  "k\tv\n" },
	{ "append refuses a key with whitespace", "", 0, APPEND, "a b", "v",
	  { NULL }, 0, TP_EUSAGE, NULL },
	{ "append refuses a comment key", "", 0, APPEND, "#k", "v", { NULL }, 0,
	  TP_EUSAGE, NULL },
	{ "append refuses an unbalanced quote", "", 0, APPEND, "a\"b", "v x",
	  { NULL }, 0, TP_EUSAGE, NULL },
	{ "append refuses a newline in the value", "", 0, APPEND, "k", "v\nw",
	  { NULL }, 0, TP_EUSAGE, NULL },
	{ "append refuses padding the file would trim", "", 0, APPEND, "k", "v ",
	  { NULL }, 0, TP_EUSAGE, NULL },
	{ "remove takes continuation, inner comments and annotation",
	  "a b\n# tlspolicy: from=h\nk fingerprint\n# inner\n  match=A\n# after\nz v\n",
	  1, REMOVE, NULL, NULL, { NULL }, 0, 0, "a b\n# after\nz v\n" },
	{ "remove the last entry without final newline", "a b\nc d", 1, REMOVE,
	  NULL, NULL, { NULL }, 0, 0, "a b\n" },
	{ "bad index", "a b\n", 3, REMOVE, NULL, NULL, { NULL }, 0, TP_EUSAGE,
	  NULL },
};

/* Offset of the start of 1-based line n in s (or strlen(s) past the end). */
static size_t
line_offset(const char *s, unsigned long n)
{
	const char *p = s;

	while (--n > 0 && (p = strchr(p, '\n')) != NULL)
		p++;
	return p ? (size_t)(p - s) : strlen(s);
}

static int
run_edit(tp_doc *doc, const struct edit_case *c, size_t *index)
{
	switch (c->op) {
	case SET_LEVEL:
		return tp_doc_set_level(doc, c->entry, c->a);
	case SET_PINS:
		return tp_doc_set_pins(doc, c->entry, c->list, c->n);
	case SET_ATTR:
		return tp_doc_set_attr(doc, c->entry, c->a, c->b);
	case SET_ANN:
		return tp_doc_set_annotation(doc, c->entry, c->list, c->n, c->b);
	case SET_KEYS:
		return tp_doc_set_annotation_keys(doc, c->entry, c->list, c->n);
	case APPEND:
		return tp_doc_append(doc, c->a, c->b, index);
	case REMOVE:
		return tp_doc_remove(doc, c->entry);
	}
	return -99;
}

static void
test_document__edits_change_only_their_entry(void **state)
{
	size_t i, index, pre, suf, len;
	tp_buf got = TP_BUF_INIT, g = TP_BUF_INIT, w = TP_BUF_INIT;
	tp_doc *doc;
	tp_entry e;
	int failed = 0, status;

	(void)state;
	for (i = 0; i < sizeof(edit_cases) / sizeof(edit_cases[0]); i++) {
		const struct edit_case *c = edit_cases + i;
		const char *want = c->want ? c->want : c->in;

		len = strlen(c->in);
		assert_int_equal(tp_doc_parse(&doc, c->in, len, "f", &utf8_opts), 0);
		/* The bytes outside the entry (and its annotation). */
		pre = len;
		suf = 0;
		if (c->op == APPEND) {
			pre = len;
			suf = 0;
		} else if (c->entry < tp_doc_entry_count(doc)) {
			assert_int_equal(tp_doc_entry_at(doc, c->entry, &e), 0);
			pre = line_offset(c->in, e.line -
					  (e.from || e.pin_kind || e.keys ? 1 : 0));
			suf = len - line_offset(c->in, e.last_line + 1);
		}
		status = run_edit(doc, c, &index);
		assert_int_equal(tp_doc_serialize(doc, &got), 0);
		tp__buf_truncate(&g, 0);
		tp__buf_truncate(&w, 0);
		show(&g, got.ptr, got.size);
		show(&w, want, strlen(want));
		if (status != c->want_status || strcmp(g.ptr, w.ptr) != 0) {
			print_error("%s: got status %d \"%s\", want %d \"%s\"\n",
				    c->name, status, g.ptr, c->want_status, w.ptr);
			failed++;
		} else if (got.size < pre + suf ||
			   memcmp(got.ptr, c->in, pre) != 0 ||
			   memcmp(got.ptr + got.size - suf, c->in + len - suf,
				  suf) != 0) {
			print_error("%s: bytes outside the entry changed\n", c->name);
			failed++;
		}
		if (c->op == APPEND && status == 0) {
			assert_int_equal(index, tp_doc_entry_count(doc) - 1);
			assert_int_equal(tp_doc_entry_at(doc, index, &e), 0);
			assert_string_equal(e.raw_key, c->a);
		}
		tp_doc_free(doc);
	}
	tp_buf_dispose(&got);
	tp_buf_dispose(&g);
	tp_buf_dispose(&w);
	if (failed)
		fail_msg("%d edit case(s) failed", failed);
}

static void
test_document__edited_model_matches_its_bytes(void **state)
{
	static const char in[] = "# tlspolicy: from=a:25 pin=cert\n"
				 "K fingerprint\n  match=AA\n  match=BB\nz may\n";
	const char *pins[] = { "11", "22", "33" };
	const char *hosts[] = { "b:25", "c:25" };
	const char *keys[] = { "K1", "K2" };
	tp_buf a = TP_BUF_INIT, b = TP_BUF_INIT, out = TP_BUF_INIT;
	tp_doc *doc, *again;
	tp_entry e;
	size_t idx;

	(void)state;
	assert_int_equal(tp_doc_parse(&doc, in, LEN(in), "f", &utf8_opts), 0);
	assert_int_equal(tp_doc_find(doc, "k", &idx), 0);
	assert_int_equal(idx, 0);
	assert_int_equal(tp_doc_set_pins(doc, 0, pins, 3), 0);
	assert_int_equal(tp_doc_set_annotation_keys(doc, 0, keys, 2), 0);
	assert_int_equal(tp_doc_set_annotation(doc, 0, hosts, 2, "pkey"), 0);
	assert_int_equal(tp_doc_set_attr(doc, 0, "ciphers", "high"), 0);
	assert_int_equal(tp_doc_append(doc, "n", "may", &idx), 0);
	assert_int_equal(idx, 2);
	assert_int_equal(tp_doc_entry_at(doc, 0, &e), 0);
	assert_string_equal(e.value,
			    "fingerprint  match=11  match=22  match=33 ciphers=high");
	assert_int_equal(e.from_count, 2);
	assert_string_equal(e.from[1], "c:25");
	assert_string_equal(e.pin_kind, "pkey");
	assert_int_equal(e.key_count, 2);
	assert_string_equal(e.keys[0], "K1");
	assert_string_equal(e.keys[1], "K2");
	/* The model after edits is what parsing the new bytes gives. */
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_int_equal(tp_doc_parse(&again, out.ptr, out.size, "f", &utf8_opts), 0);
	dump(doc, &a);
	dump(again, &b);
	assert_string_equal(a.ptr, b.ptr);
	assert_int_equal(tp_doc_remove(doc, 0), 0);
	assert_int_equal(tp_doc_entry_count(doc), 2);
	assert_int_equal(tp_doc_find(doc, "K", &idx), TP_ENOTFOUND);
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_string_equal(out.ptr, "z may\nn\tmay\n");
	tp_doc_free(doc);
	tp_doc_free(again);
	tp_buf_dispose(&a);
	tp_buf_dispose(&b);
	tp_buf_dispose(&out);
}

static void
test_document__annotation_fields_of_our_own_are_set_read_and_removed(void **state)
{
	static const char in[] = "# head\n"
				 "# tlspolicy: from=a:25 pin=cert keys=K1 future=x\n"
				 "k fingerprint match=AA\n"
				 "z may\n";
	const char *keys[] = { "K2" };
	tp_buf out = TP_BUF_INIT, v = TP_BUF_INIT;
	tp_doc *doc;
	tp_entry e;

	(void)state;
	assert_int_equal(tp_doc_parse(&doc, in, LEN(in), "f", &utf8_opts), 0);
	assert_int_equal(tp_doc_annotation_field(doc, 0, "future", &v), 0);
	assert_string_equal(v.ptr, "x");
	assert_int_equal(tp_doc_annotation_field(doc, 0, "wrappermode", &v), TP_ENOTFOUND);
	assert_int_equal(tp_doc_annotation_field(doc, 1, "from", &v), TP_ENOTFOUND);
	/* Set: appended, the other words kept where they are. */
	assert_int_equal(tp_doc_set_annotation_field(doc, 0, "wrappermode", "yes"), 0);
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_string_equal(out.ptr, "# head\n"
			    "# tlspolicy: from=a:25 pin=cert keys=K1 future=x wrappermode=yes\n"
			    "k fingerprint match=AA\nz may\n");
	/* Replaced in place; another field's edit keeps it. */
	assert_int_equal(tp_doc_set_annotation_field(doc, 0, "future", "y"), 0);
	assert_int_equal(tp_doc_set_annotation_keys(doc, 0, keys, 1), 0);
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_string_equal(out.ptr, "# head\n"
			    "# tlspolicy: from=a:25 pin=cert keys=K2 future=y wrappermode=yes\n"
			    "k fingerprint match=AA\nz may\n");
	assert_int_equal(tp_doc_entry_at(doc, 0, &e), 0);
	assert_string_equal(e.from[0], "a:25");
	/* Removed; an entry without annotation gets a new line. */
	assert_int_equal(tp_doc_set_annotation_field(doc, 0, "future", NULL), 0);
	assert_int_equal(tp_doc_set_annotation_field(doc, 1, "wrappermode", "yes"), 0);
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_string_equal(out.ptr, "# head\n"
			    "# tlspolicy: from=a:25 pin=cert keys=K2 wrappermode=yes\n"
			    "k fingerprint match=AA\n"
			    "# tlspolicy: wrappermode=yes\nz may\n");
	/* The last field gone: the line goes. */
	assert_int_equal(tp_doc_set_annotation_field(doc, 1, "wrappermode", NULL), 0);
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_string_equal(out.ptr, "# head\n"
			    "# tlspolicy: from=a:25 pin=cert keys=K2 wrappermode=yes\n"
			    "k fingerprint match=AA\nz may\n");
	/* Our own fields have their setters; names and values are checked. */
	assert_int_equal(tp_doc_set_annotation_field(doc, 0, "from", "b:25"), TP_EUSAGE);
	assert_int_equal(tp_doc_set_annotation_field(doc, 0, "Bad Name", "x"), TP_EUSAGE);
	assert_int_equal(tp_doc_set_annotation_field(doc, 0, "next", "a b"), TP_EUSAGE);
	assert_int_equal(tp_doc_set_annotation_field(doc, 0, "next", "a,b"), TP_EUSAGE);
	assert_int_equal(tp_doc_set_annotation_field(doc, 9, "next", "x"), TP_EUSAGE);
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_string_equal(out.ptr, "# head\n"
			    "# tlspolicy: from=a:25 pin=cert keys=K2 wrappermode=yes\n"
			    "k fingerprint match=AA\nz may\n");
	tp_doc_free(doc);
	tp_buf_dispose(&out);
	tp_buf_dispose(&v);
}

static void
test_document__find_returns_the_winning_duplicate(void **state)
{
	static const char in[] = "x v\nA\xc3\x84 one\naä two\n";
	tp_doc *doc;
	size_t idx = 99;

	(void)state;
	assert_int_equal(tp_doc_parse(&doc, in, LEN(in), "f", &utf8_opts), 0);
	assert_int_equal(tp_doc_find(doc, "a\xc3\x84", &idx), 0);
	assert_int_equal(idx, 1);
	assert_int_equal(tp_doc_find(doc, "\xff", &idx), TP_ENOTFOUND);
	assert_int_equal(tp_doc_find(doc, "y", &idx), TP_ENOTFOUND);
	tp_doc_free(doc);
}

static void
test_document__key_fold_is_postmaps(void **state)
{
	static const struct {
		const char *in;
		int utf8, fold, status;
		const char *want;
	} cases[] = {
		{ "MiXeD.Example", 1, 1, 0, "mixed.example" },
		{ "\xc3\x84\xc3\x9f", 1, 1, 0, "\xc3\xa4ss" },
		{ "\xce\xa3\xce\xa3", 1, 1, 0, "\xcf\x83\xcf\x83" },	/* final sigma not special */
		{ "\xc4\xb0", 1, 1, 0, "i\xcc\x87" },			/* dotted I */
		{ "\xc3\x84X", 0, 1, 0, "\xc3\x84x" },			/* ASCII only */
		{ "\xff", 1, 1, TP_EINVALID, "" },
		{ "\xff", 0, 1, 0, "\xff" },
		{ "\xff", 1, 0, TP_EINVALID, "" },
		{ "AbC", 1, 0, 0, "AbC" },
	};
	tp_buf out = TP_BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_doc_opts o = { TP_DOC_OPTS_VERSION, cases[i].utf8, cases[i].fold };
		int st = tp_key_fold(&out, cases[i].in, &o);

		if (st != cases[i].status ||
		    strcmp(out.ptr ? out.ptr : "", cases[i].want) != 0)
			fail_msg("fold \"%s\" utf8=%d fold=%d: got %d \"%s\", want %d \"%s\"",
				 cases[i].in, cases[i].utf8, cases[i].fold, st,
				 out.ptr ? out.ptr : "", cases[i].status, cases[i].want);
	}
	tp_buf_dispose(&out);
}

/* A small seeded PRNG, so a failure can be replayed. */
static uint64_t rng_state;

static uint32_t
rng(void)
{
	rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
	return (uint32_t)(rng_state >> 33);
}

/* Awkward policy files: everything postmap's reader has a rule for. */
static void
gen_awkward(tp_buf *b, int lines)
{
	static const char *const keys[] = {
		"example.com", "[192.0.2.1]:25", "Mixed.Example", "mixed.example",
		"\"q k\"", "x\\ y", "a#b", "alias:", "\xc3\x84rger.de", "\xc3\xa4rger.de",
		/* Two literals where a hex escape must end: "\x9fe" is one escape. */
		("stra\xc3\x9f" "e"), "STRASSE", "\xe1\xba\x9e", "\xc4\xb0i", "\xce\xa3x",
		"bad\xff", "half\xc3", "k\"q", "\\", "n\0ul", "[2001:db8::1]:25",
		".example.net", "K\r", "sur\xed\xa0\x80",
	};
	static const char *const values[] = {
		"may", "encrypt", "fingerprint match=AA:BB", "none # comment",
		"secure ciphers=high", "dane-only", "verify match=.example.com",
		"fingerprint\tmatch=A|B", "v\xc3\xa9rify", "val\xfe", "x\0y", "",
		"  ", "\"q", "fingerprint match=11,match=22",
	};
	static const char *const conts[] = {
		"    match=AA", "\tmatch=BB", " x", "\t", "  \r", " # c", "\v odd",
		"\f", "  m\xff",
	};
	const size_t nconts = sizeof(conts) / sizeof(*conts);
	static const char *const eols[] = { "\n", "\n", "\n", "\r\n", "\r\n",
					    " \n", "\t\r\n" };
	int i, j;

	for (i = 0; i < lines; i++) {
		uint32_t r = rng() % 20;

		if (r == 0) {
			tp__buf_puts(b, "# tlspolicy: from=h1:25,[h2]:25 pin=cert");
		} else if (r == 1) {
			tp__buf_puts(b, rng() % 2 ? "#comment" : "   # indented");
		} else if (r == 2) {
			tp__buf_puts(b, rng() % 2 ? "" : " \t ");
		} else if (r <= 5) {
			size_t k = rng() % (nconts + 1);

			if (k == nconts)	/* whitespace then NUL: a continuation */
				tp__buf_put(b, " \0z", 3);
			else
				tp__buf_puts(b, conts[k]);
		} else if (r == 6) {
			/* A long line: postmap has no line length limit. */
			tp__buf_puts(b, "long.example fingerprint match=");
			for (j = 0; j < 3000; j++)
				tp__buf_putc(b, "0123456789ABCDEF"[rng() % 16]);
		} else {
			const char *k = keys[rng() % (sizeof(keys) / sizeof(*keys))];
			const char *v = values[rng() % (sizeof(values) / sizeof(*values))];

			if (strcmp(k, "n") == 0)	/* the NUL entries */
				tp__buf_put(b, "n\0ul", 4);
			else
				tp__buf_puts(b, k);
			tp__buf_puts(b, rng() % 3 ? " " : "\t  ");
			if (v[0] == 'x' && v[1] == '\0')
				tp__buf_put(b, "x\0y", 3);
			else
				tp__buf_puts(b, v);
		}
		if (i + 1 < lines || rng() % 3)
			tp__buf_puts(b, eols[rng() % (sizeof(eols) / sizeof(*eols))]);
	}
}

static void
test_document__serializes_awkward_files_byte_for_byte(void **state)
{
	tp_buf in = TP_BUF_INIT;
	tp_doc *doc;
	int i;

	(void)state;
	rng_state = 20240601;
	for (i = 0; i < 300; i++) {
		tp__buf_truncate(&in, 0);
		gen_awkward(&in, (int)(rng() % 40));
		assert_int_equal(tp_doc_parse(&doc, in.ptr, in.size, "f",
					      i % 2 ? &utf8_opts : &ascii_opts), 0);
		assert_lossless(doc, in.ptr, in.size);
		tp_doc_free(doc);
	}
	tp_buf_dispose(&in);
}

/*
 * The record scanner (what rebuild reads a table with) must give the
 * document's records: its non-duplicate entries' keys and values, in
 * order, and the same warnings.
 */
static void
assert_scan_matches(const char *in, size_t len, const tp_doc_opts *opts,
		    const char *path)
{
	tp_buf a = TP_BUF_INIT, b = TP_BUF_INIT;
	tp_doc *doc, *scan;
	size_t i;

	assert_int_equal(tp_doc_parse(&doc, in, len, path ? path : "f", opts), 0);
	if (path)
		assert_int_equal(tp__doc_scan(&scan, path, opts, NULL), 0);
	else
		assert_int_equal(tp__doc_scan_mem(&scan, in, len, "f", opts), 0);
	assert_true(tp__doc_is_scan(scan));
	assert_int_equal(tp_doc_entry_count(scan), 0);
	for (i = 0; i < tp_doc_entry_count(doc); i++) {
		tp_entry e;

		assert_int_equal(tp_doc_entry_at(doc, i, &e), 0);
		if (e.duplicate)
			continue;
		show(&a, e.key, e.key_len);
		tp__buf_putc(&a, '\t');
		show(&a, e.value, e.value_len);
		tp__buf_putc(&a, '\n');
	}
	for (i = 0; i < tp__doc_scan_count(scan); i++) {
		const char *k, *v;
		size_t kl, vl;

		tp__doc_scan_kv(scan, i, &k, &kl, &v, &vl);
		assert_int_equal(k[kl], '\0');
		assert_int_equal(v[vl], '\0');
		show(&b, k, kl);
		tp__buf_putc(&b, '\t');
		show(&b, v, vl);
		tp__buf_putc(&b, '\n');
	}
	for (i = 0; i < tp_doc_warning_count(doc); i++)
		tp__buf_printf(&a, "w %lu: %s\n", tp_doc_warning_at(doc, i)->line,
			       tp_doc_warning_at(doc, i)->message);
	for (i = 0; i < tp_doc_warning_count(scan); i++)
		tp__buf_printf(&b, "w %lu: %s\n", tp_doc_warning_at(scan, i)->line,
			       tp_doc_warning_at(scan, i)->message);
	tp__buf_put(&a, "", 0);
	tp__buf_put(&b, "", 0);
	assert_string_equal(b.ptr, a.ptr);
	tp_doc_free(scan);
	tp_doc_free(doc);
	tp_buf_dispose(&a);
	tp_buf_dispose(&b);
}

static void
test_document__scan_reads_what_the_document_reads(void **state)
{
	/*
	 * A duplicate whose check is pending when the next record warns
	 * (here "x" then an alias-style key): the scanner settles it first.
	 */
	static const char pending[] =
		"x z\nalias: v\nx y\nalias: w\nx q\n bad\ny z\ny w\n\"u v\nY v\n";
	char path[] = "/tmp/tp-scan.XXXXXX";
	tp_buf in = TP_BUF_INIT;
	tp_doc *scan;
	int i, fd;

	(void)state;
	assert_scan_matches(pending, LEN(pending), &utf8_opts, NULL);
	assert_scan_matches("", 0, &utf8_opts, NULL);
	assert_scan_matches(IN("k v\n  continued\n# c\n\n  more\nK w"), &ascii_opts, NULL);
	rng_state = 20261130;
	for (i = 0; i < 400; i++) {
		tp__buf_truncate(&in, 0);
		gen_awkward(&in, (int)(rng() % 60));
		assert_scan_matches(in.ptr, in.size, i % 2 ? &utf8_opts : &ascii_opts, NULL);
	}
	/* From a file, as rebuild reads it. */
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, in.ptr, in.size), (ssize_t)in.size);
	close(fd);
	assert_scan_matches(in.ptr, in.size, &utf8_opts, path);
	unlink(path);
	assert_int_equal(tp__doc_scan(&scan, path, &utf8_opts, NULL), TP_ENOTFOUND);
	tp_buf_dispose(&in);
}

static void
test_document__serializes_random_bytes_byte_for_byte(void **state)
{
	static const char alphabet[] = " \t\r\n\n#\"\\:=,|\0aZ\xc3\x84\xff";
	char buf[512];
	tp_doc *doc;
	size_t len, j;
	int i;

	(void)state;
	rng_state = 77;
	for (i = 0; i < 3000; i++) {
		len = rng() % sizeof(buf);
		for (j = 0; j < len; j++)
			buf[j] = (char)(rng() % 2 ? alphabet[rng() % LEN(alphabet)] :
					(int)(rng() % 256));
		assert_int_equal(tp_doc_parse(&doc, buf, len, "f",
					      i % 2 ? &utf8_opts : &ascii_opts), 0);
		assert_lossless(doc, buf, len);
		tp_doc_free(doc);
	}
}

/*
 * Strings handed out are C strings of their stated length (key, value)
 * or NUL-free (raw key): the model keeps most of them inside the input
 * bytes, ended by NULs that must never show in what it serialises.
 */
static void
assert_c_strings(const tp_doc *doc)
{
	size_t i;
	tp_entry e;

	for (i = 0; i < tp_doc_entry_count(doc); i++) {
		assert_int_equal(tp_doc_entry_at(doc, i, &e), 0);
		assert_int_equal(strlen(e.key), e.key_len);
		assert_int_equal(strlen(e.value), e.value_len);
		assert_true(strlen(e.raw_key) > 0);
	}
}

static void
test_document__input_of_4_gb_or_more_is_refused(void **state)
{
	tp_doc *doc = (tp_doc *)&doc;

	(void)state;
	/* Refused on its length, before a byte is read. */
	assert_int_equal(tp_doc_parse(&doc, "x", (size_t)UINT32_MAX, "f",
				      &utf8_opts), TP_ELIMIT);
	assert_null(doc);
	assert_int_equal(tp_doc_parse(&doc, "k v\n", 4, "f", &utf8_opts), 0);
	tp_doc_free(doc);
}

static size_t
count_nul(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += s[i] == '\0';
	return n;
}

static void
test_document__failed_edit_leaves_entries_and_bytes(void **state)
{
	static const char *const bad_pins[] = { "a|b" };
	static const char *const bad_keys[] = { "a,b" };
	tp_buf in = TP_BUF_INIT, before = TP_BUF_INIT, after = TP_BUF_INIT;
	tp_doc *doc;
	size_t n;
	int i;

	(void)state;
	rng_state = 4242;
	for (i = 0; i < 300; i++) {
		tp__buf_truncate(&in, 0);
		gen_awkward(&in, (int)(rng() % 40));
		assert_int_equal(tp_doc_parse(&doc, in.ptr, in.size, "f",
					      i % 2 ? &utf8_opts : &ascii_opts), 0);
		assert_c_strings(doc);
		dump(doc, &before);
		n = tp_doc_entry_count(doc);
		if (n > 0) {
			/* Each is refused after the edit code read the bytes. */
			assert_int_equal(tp_doc_set_level(doc, 0, "a=b"), TP_EUSAGE);
			assert_int_equal(tp_doc_set_attr(doc, n - 1, "x", "a b"),
					 TP_EUSAGE);
			assert_int_equal(tp_doc_set_pins(doc, 0, bad_pins, 1),
					 TP_EUSAGE);
			assert_int_equal(tp_doc_set_annotation_keys(doc, 0,
								    bad_keys, 1),
					 TP_EUSAGE);
		}
		assert_int_equal(tp_doc_remove(doc, n), TP_EUSAGE);
		/* No keys here: removing them is a no-op that must leave the
		 * model whole too. */
		if (n > 0)
			assert_int_equal(tp_doc_set_annotation_keys(doc, n - 1,
								    NULL, 0), 0);
		dump(doc, &after);
		assert_string_equal(after.ptr, before.ptr);
		assert_c_strings(doc);
		assert_lossless(doc, in.ptr, in.size);
		/* And a successful edit still sees the file's bytes. */
		if (n > 0 && tp_doc_set_attr(doc, 0, "ciphers", "high") == 0) {
			assert_c_strings(doc);
			/* No NUL of the model leaks into the bytes. */
			assert_int_equal(tp_doc_serialize(doc, &after), 0);
			assert_int_equal(count_nul(after.ptr, after.size),
					 count_nul(in.ptr, in.size));
		}
		tp_doc_free(doc);
	}
	tp_buf_dispose(&in);
	tp_buf_dispose(&before);
	tp_buf_dispose(&after);
}


/*
 * Differential test: real postmap(1) is the oracle. For generated awkward
 * files, in both smtputf8 modes, the records postmap stores (postmap -s)
 * must be our winning entries, and its warnings must be ours, in order.
 * postmap missing is a failure, not a skip: this test is the proof.
 */
static const char *
postmap_path(void)
{
	const char *p = getenv("POSTMAP");

	if (p && *p)
		return p;
	if (access("/usr/sbin/postmap", X_OK) == 0)
		return "/usr/sbin/postmap";
	return "postmap";
}

static void
read_file(const char *path, tp_buf *out)
{
	FILE *fp = fopen(path, "rb");
	char buf[4096];
	size_t n;

	tp__buf_truncate(out, 0);
	assert_non_null(fp);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		tp__buf_put(out, buf, n);
	fclose(fp);
	tp__buf_put(out, "", 0);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort the lines of b in place (each line ends with '\n'). */
static void
sort_lines(tp_buf *b)
{
	char **v = NULL, *copy, *p, *nl;
	size_t n = 0, i;
	tp_buf out = TP_BUF_INIT;

	if (b->size == 0)
		return;
	copy = malloc(b->size + 1);
	assert_non_null(copy);
	memcpy(copy, b->ptr, b->size + 1);
	for (p = copy; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		*nl = '\0';
		v = realloc(v, (n + 1) * sizeof(*v));
		assert_non_null(v);
		v[n++] = p;
	}
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++) {
		tp__buf_puts(&out, v[i]);
		tp__buf_putc(&out, '\n');
	}
	tp_buf_dispose(b);
	*b = out;
	free(v);
	free(copy);
}

static void
check_against_postmap(const char *dir, const char *conf, const char *in,
		      size_t len, const tp_doc_opts *opts, int *failed)
{
	char file[512], err[600], out[600];
	tp_buf cmd = TP_BUF_INIT;
	tp_buf got_rec = TP_BUF_INIT, got_warn = TP_BUF_INIT;
	tp_buf pm_rec = TP_BUF_INIT, pm_err = TP_BUF_INIT, pm_warn = TP_BUF_INIT;
	static const char tag[] = "postmap: warning: ";
	tp_doc *doc;
	tp_entry e;
	char *p, *nl;
	size_t i;
	int rc;

	snprintf(file, sizeof(file), "%s/tls_policy", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	write_file(file, in, len);
	tp__buf_printf(&cmd, "'%s' -c '%s' hash:'%s' 2>'%s' && '%s' -c '%s' -s hash:'%s' >'%s'",
		       postmap_path(), conf, file, err, postmap_path(), conf, file, out);
	rc = system(cmd.ptr);
	if (rc != 0) {
		read_file(err, &pm_err);
		fail_msg("%s failed (status %d): %s", cmd.ptr, rc, pm_err.ptr);
	}
	tp_buf_dispose(&cmd);
	read_file(out, &pm_rec);
	sort_lines(&pm_rec);
	read_file(err, &pm_err);
	for (p = pm_err.ptr; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
		if (strncmp(p, tag, LEN(tag)) == 0)
			tp__buf_put(&pm_warn, p + LEN(tag), (size_t)(nl + 1 - p) - LEN(tag));
	tp__buf_put(&pm_warn, "", 0);

	assert_int_equal(tp_doc_parse(&doc, in, len, file, opts), 0);
	for (i = 0; i < tp_doc_entry_count(doc); i++) {
		assert_int_equal(tp_doc_entry_at(doc, i, &e), 0);
		if (e.duplicate)
			continue;
		tp__buf_put(&got_rec, e.key, e.key_len);
		tp__buf_putc(&got_rec, '\t');
		tp__buf_put(&got_rec, e.value, e.value_len);
		tp__buf_putc(&got_rec, '\n');
	}
	tp__buf_put(&got_rec, "", 0);
	sort_lines(&got_rec);
	for (i = 0; i < tp_doc_warning_count(doc); i++) {
		tp__buf_puts(&got_warn, tp_doc_warning_at(doc, i)->message);
		tp__buf_putc(&got_warn, '\n');
	}
	tp__buf_put(&got_warn, "", 0);
	if (strcmp(got_rec.ptr, pm_rec.ptr) != 0 ||
	    strcmp(got_warn.ptr, pm_warn.ptr) != 0) {
		tp_buf a = TP_BUF_INIT;

		show(&a, in, len);
		/* fprintf: cmocka's print_error() truncates long messages. */
		fprintf(stderr, "utf8=%d input \"%s\"\n records got:\n%s want:\n%s"
			" warnings got:\n%s want:\n%s", opts->utf8, a.ptr,
			got_rec.ptr, pm_rec.ptr, got_warn.ptr, pm_warn.ptr);
		tp_buf_dispose(&a);
		(*failed)++;
	}
	tp_doc_free(doc);
	tp_buf_dispose(&got_rec);
	tp_buf_dispose(&got_warn);
	tp_buf_dispose(&pm_rec);
	tp_buf_dispose(&pm_err);
	tp_buf_dispose(&pm_warn);
}

static void
test_document__agrees_with_real_postmap(void **state)
{
	/* tmpfs when there is one: postmap syncs every db it writes. */
	char shm[] = "/dev/shm/tp_document.XXXXXX", tmp[] = "/tmp/tp_document.XXXXXX";
	char *dir, conf[2][600], path[sizeof(conf) + 16], cmd[800];
	static const char *const mains[2] = {
		"compatibility_level = 3.6\nsmtputf8_enable = no\n"
		"myhostname = host.example\n",
		"compatibility_level = 3.6\nsmtputf8_enable = yes\n"
		"myhostname = host.example\n",
	};
	tp_buf in = TP_BUF_INIT;
	size_t i;
	int mode, failed = 0;

	(void)state;
	snprintf(cmd, sizeof(cmd), "'%s' -c /nonexistent -q x inline:{x=y} >/dev/null 2>&1 || "
		 "command -v '%s' >/dev/null", postmap_path(), postmap_path());
	if (system(cmd) != 0)
		fail_msg("postmap (%s) not found: install postfix; this test needs the real thing",
			 postmap_path());
	if ((dir = mkdtemp(shm)) == NULL)
		dir = mkdtemp(tmp);
	assert_non_null(dir);
	for (mode = 0; mode < 2; mode++) {
		snprintf(conf[mode], sizeof(conf[mode]), "%s/conf%d", dir, mode);
		assert_int_equal(mkdir(conf[mode], 0755), 0);
		snprintf(path, sizeof(path), "%s/main.cf", conf[mode]);
		write_file(path, mains[mode], strlen(mains[mode]));
	}
	/* The parse table's inputs first, then generated files. */
	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		mode = !parse_cases[i].ascii;
		check_against_postmap(dir, conf[mode], parse_cases[i].in,
				      parse_cases[i].len,
				      mode ? &utf8_opts : &ascii_opts, &failed);
	}
	rng_state = 4242;
	for (i = 0; i < 40; i++) {
		tp__buf_truncate(&in, 0);
		gen_awkward(&in, (int)(rng() % 30) + 1);
		check_against_postmap(dir, conf[i % 2], in.ptr, in.size,
				      i % 2 ? &utf8_opts : &ascii_opts, &failed);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	tp_buf_dispose(&in);
	if (failed)
		fail_msg("%d file(s) read differently from postmap", failed);
}


/*
 * Batched edits: each edit works on its entry's lines alone (a
 * sub-document), not on the whole file. The same random edits applied
 * to one document that way and to another with every edit on the whole
 * document (written and parsed whole, as edits always were) must give
 * the same bytes, entries, line numbers, annotations, duplicates,
 * warnings and statuses after every step; and a key the document lists
 * as changed must cover every record that differs from the one parsed.
 */
static unsigned long rnd_state;

static unsigned
rnd(unsigned n)
{
	rnd_state = rnd_state * 6364136223846793005ul + 1442695040888963407ul;
	return (unsigned)((rnd_state >> 33) % n);
}

static const char *const rnd_keys[] = {
	"a.example", "B.example", "c.example", "[mx.d.example]:25", "e.example:587",
	".f.example", "g.example", "A.example", "h.example", "k",
};

/* A source with everything a region may border on. */
static void
rnd_source(tp_buf *b)
{
	static const char *const values[] = {
		"may", "encrypt protocols=>=TLSv1.2", "fingerprint match=AA:BB",
		"fingerprint match=AA|BB", "fingerprint\n  match=AA\n  match=BB",
		"fingerprint match=AA\n # inside\n  match=CC", "secure match=x:y",
		"dane-only", "verify ciphers=high",
	};
	const char *eol = rnd(4) == 0 ? "\r\n" : "\n";
	unsigned n = 3 + rnd(14);

	tp__buf_truncate(b, 0);
	for (unsigned i = 0; i < n; i++) {
		switch (rnd(12)) {
		case 0:
			tp__buf_printf(b, "# a comment%s", eol);
			break;
		case 1:
			tp__buf_printf(b, "# tlspolicy: from=h%u:25 pin=cert%s", i, eol);
			break;
		case 2:
			tp__buf_puts(b, eol);
			break;
		case 3:
			tp__buf_printf(b, "   stray continuation%s", eol);
			break;
		case 4:
			tp__buf_printf(b, "# tlspolicy: keys=K%u%s", i, eol);
			/* an annotation, then the entry it belongs to */
			__attribute__((fallthrough));
		default: {
			const char *v = values[rnd(sizeof(values) / sizeof(values[0]))];

			tp__buf_printf(b, "%s\t", rnd_keys[rnd(10)]);
			for (; *v; v++)
				if (*v == '\n')
					tp__buf_puts(b, eol);
				else
					tp__buf_putc(b, *v);
			tp__buf_puts(b, eol);
		}
		}
	}
	if (rnd(4) == 0 && b->size > 0) {
		/* No final newline. */
		b->size -= strlen(eol);
		b->ptr[b->size] = '\0';
	}
}

static int
rnd_edit(tp_doc *doc, unsigned op, unsigned seed, size_t *index)
{
	static const char *const pins[] = { "11", "22", "33", "44" };
	static const char *const words[] = { "x:25", "y:25", "z:587" };
	size_t n = tp_doc_entry_count(doc), i;

	rnd_state = seed;
	i = n ? rnd((unsigned)n + 1) : 0;	/* sometimes out of range */
	switch (op) {
	case 0:
		return tp_doc_set_level(doc, i, rnd(2) ? "encrypt" : "fingerprint");
	case 1:
		return tp_doc_set_pins(doc, i, pins, rnd(5));
	case 2:
		return tp_doc_set_attr(doc, i, rnd(2) ? "ciphers" : "protocols",
				       rnd(3) ? "high" : NULL);
	case 3:
		return tp_doc_set_annotation(doc, i, words, rnd(4),
					     rnd(3) ? "cert" : NULL);
	case 4:
		return tp_doc_set_annotation_keys(doc, i, words, rnd(4));
	case 5:
		return tp_doc_append(doc, rnd_keys[rnd(10)],
				     rnd(2) ? "may" : "fingerprint match=EE", index);
	case 6:
		return tp_doc_remove(doc, i);
	case 8:
		return tp_doc_set_annotation_field(doc, i, rnd(2) ? "next" : "since",
						   rnd(3) ? "AA:BB" : NULL);
	default:
		return tp_doc_find(doc, rnd_keys[rnd(10)], index);
	}
}

/* Every record now, as "key\tvalue\n" lines from tp__doc_record(). */
static void
records_of(const tp_doc *doc, tp_buf *out)
{
	tp_buf k = TP_BUF_INIT;
	const char *v;
	size_t vlen;

	tp__buf_truncate(out, 0);
	for (size_t i = 0; i < sizeof(rnd_keys) / sizeof(rnd_keys[0]); i++) {
		assert_int_equal(tp_key_fold(&k, rnd_keys[i], &utf8_opts), 0);
		if (tp__doc_record(doc, k.ptr, k.size, &v, &vlen) == 0) {
			tp__buf_printf(out, "%s\t", k.ptr);
			tp__buf_put(out, v, vlen);
			tp__buf_putc(out, '\n');
		}
	}
	tp_buf_dispose(&k);
}

static void
test_document__batched_edits_match_whole_document_edits(void **state)
{
	tp_buf src = TP_BUF_INIT, a = TP_BUF_INIT, b = TP_BUF_INIT;
	tp_buf ra = TP_BUF_INIT, rb = TP_BUF_INIT, r0 = TP_BUF_INIT;
	int failed = 0;

	(void)state;
	rnd_state = getenv("TP_RND_SEED") ? strtoul(getenv("TP_RND_SEED"), NULL, 10) : 20261129;
	for (int round = 0; round < (getenv("TP_RND_ROUNDS") ? atoi(getenv("TP_RND_ROUNDS")) : 400) && failed < 5; round++) {
		tp_doc *fast, *whole, *before;
		unsigned nedits = 1 + rnd(40);

		rnd_source(&src);
		assert_int_equal(tp_doc_parse(&fast, src.ptr, src.size, "f", &utf8_opts), 0);
		assert_int_equal(tp_doc_parse(&whole, src.ptr, src.size, "f", &utf8_opts), 0);
		assert_int_equal(tp_doc_parse(&before, src.ptr, src.size, "f", &utf8_opts), 0);
		tp__doc_whole_edits(whole, 1);
		for (unsigned k = 0; k < nedits && failed < 5; k++) {
			unsigned op = rnd(9), seed = rnd(1u << 30);
			size_t ia = 99, ib = 99;
			int sa = rnd_edit(fast, op, seed, &ia);
			int sb = rnd_edit(whole, op, seed, &ib);

			assert_int_equal(tp_doc_serialize(fast, &a), 0);
			assert_int_equal(tp_doc_serialize(whole, &b), 0);
			if (sa != sb || ia != ib || a.size != b.size ||
			    memcmp(a.ptr, b.ptr, a.size) != 0) {
				tp__buf_truncate(&ra, 0);
				show(&ra, src.ptr, src.size);
				print_error("round %d edit %u op %u: status %d/%d index %zu/%zu\nsource \"%s\"\n",
					    round, k, op, sa, sb, ia, ib, ra.ptr);
				tp__buf_truncate(&ra, 0);
				tp__buf_truncate(&rb, 0);
				show(&ra, a.ptr, a.size);
				show(&rb, b.ptr, b.size);
				print_error("batched \"%s\"\nwhole   \"%s\"\n", ra.ptr, rb.ptr);
				failed++;
				break;
			}
			dump(fast, &ra);
			dump(whole, &rb);
			if (strcmp(ra.ptr, rb.ptr) != 0) {
				print_error("round %d edit %u op %u: models differ\nbatched:\n%s\nwhole:\n%s\n",
					    round, k, op, ra.ptr, rb.ptr);
				failed++;
				break;
			}
			records_of(fast, &ra);
			records_of(whole, &rb);
			assert_string_equal(ra.ptr, rb.ptr);
		}
		/* Records not listed as changed are the ones parsed. */
		records_of(before, &r0);
		records_of(fast, &ra);
		{
			size_t pos = 0, len, oldlen;
			const char *key, *old;
			tp_buf keep = TP_BUF_INIT, first = TP_BUF_INIT;
			const char *r0s = r0.ptr ? r0.ptr : "";

			/*
			 * The first listing of each key carries the record it
			 * had when parsed: together, the parsed records of
			 * the listed keys.
			 */
			while (tp__doc_dirty_next(fast, &pos, &key, &len, &old, &oldlen)) {
				size_t q = 0, l2, o2;
				const char *k2, *v2;
				int seen = 0;

				while (q < pos && tp__doc_dirty_next(fast, &q, &k2, &l2, &v2, &o2) && q < pos)
					seen |= l2 == len && memcmp(k2, key, len) == 0;
				if (seen)
					continue;
				tp__buf_truncate(&rb, 0);
				tp__buf_put(&rb, key, len);
				tp__buf_putc(&rb, '\t');
				if (old != NULL) {
					tp__buf_put(&rb, old, oldlen);
					tp__buf_putc(&rb, '\n');
					if (strstr(r0s, rb.ptr) == NULL ||
					    (strstr(r0s, rb.ptr) != r0s &&
					     strstr(r0s, rb.ptr)[-1] != '\n')) {
						print_error("round %d: key %s listed with a record it did not have\n",
							    round, rb.ptr);
						failed++;
					}
				} else {
					tp__buf_putc(&rb, '\0');
					for (const char *p = r0s; p && *p; p = strchr(p, '\n') + 1)
						if (strncmp(p, rb.ptr, rb.size - 1) == 0) {
							print_error("round %d: key %s listed as new, had a record\n",
								    round, rb.ptr);
							failed++;
						}
				}
				tp__buf_putc(&first, 'x');
			}
			tp_buf_dispose(&first);

			for (const char *p = r0.ptr; p && *p;) {
				const char *nl = strchr(p, '\n');
				size_t klen = (size_t)(strchr(p, '\t') - p);
				int dirty = 0;

				pos = 0;
				while (!dirty &&
				       tp__doc_dirty_next(fast, &pos, &key, &len, &old, &oldlen))
					dirty |= len == klen && memcmp(key, p, klen) == 0;
				if (!dirty)
					tp__buf_put(&keep, p, (size_t)(nl + 1 - p));
				p = nl + 1;
			}
			/* Every kept line is still a record, as it was. */
			for (const char *p = keep.ptr; p && *p;) {
				const char *nl = strchr(p, '\n');

				tp__buf_truncate(&rb, 0);
				tp__buf_put(&rb, p, (size_t)(nl + 1 - p));
				if (strstr(ra.ptr, rb.ptr) == NULL) {
					print_error("round %d: record %s changed, not listed as changed\n",
						    round, rb.ptr);
					failed++;
				}
				p = nl + 1;
			}
			tp_buf_dispose(&keep);
		}
		tp_doc_free(fast);
		tp_doc_free(whole);
		tp_doc_free(before);
	}
	tp_buf_dispose(&src);
	tp_buf_dispose(&a);
	tp_buf_dispose(&b);
	tp_buf_dispose(&ra);
	tp_buf_dispose(&rb);
	tp_buf_dispose(&r0);
	if (failed)
		fail_msg("%d batched edit sequence(s) differ", failed);
}

/*
 * Many edits of a large table, then the bytes are what they must be:
 * every untouched byte where it was, each edited entry as edited.
 */
static void
test_document__many_edits_of_a_large_table(void **state)
{
	enum { N = 20000 };
	tp_buf in = TP_BUF_INIT, want = TP_BUF_INIT, out = TP_BUF_INIT;
	const char *pins[] = { "AA:BB" };
	char key[64];
	tp_doc *doc;
	tp_entry e;
	size_t idx;

	(void)state;
	for (int i = 0; i < N; i++)
		tp__buf_printf(&in, "# c%d\nd%d.example\tmay\n", i, i);
	assert_int_equal(tp_doc_parse(&doc, in.ptr, in.size, "f", &utf8_opts), 0);
	/* Every 7th entry pinned, every 11th removed, 500 appended. */
	for (int i = 0; i < N; i++) {
		if (i % 11 == 0 || i % 7 != 0)
			continue;
		snprintf(key, sizeof(key), "d%d.example", i);
		assert_int_equal(tp_doc_find(doc, key, &idx), 0);
		assert_int_equal(tp_doc_set_pins(doc, idx, pins, 1), 0);
		assert_int_equal(tp_doc_set_level(doc, idx, "fingerprint"), 0);
	}
	for (int i = (N - 1) / 11 * 11; i >= 0; i -= 11) {
		snprintf(key, sizeof(key), "d%d.example", i);
		assert_int_equal(tp_doc_find(doc, key, &idx), 0);
		assert_int_equal(tp_doc_remove(doc, idx), 0);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "new%d.example", i);
		assert_int_equal(tp_doc_append(doc, key, "encrypt", &idx), 0);
		assert_int_equal(idx, tp_doc_entry_count(doc) - 1);
	}
	for (int i = 0; i < N; i++) {
		tp__buf_printf(&want, "# c%d\n", i);
		if (i % 11 == 0)
			continue;
		if (i % 7 == 0)
			tp__buf_printf(&want, "d%d.example\tfingerprint match=AA:BB\n", i);
		else
			tp__buf_printf(&want, "d%d.example\tmay\n", i);
	}
	for (int i = 0; i < 500; i++)
		tp__buf_printf(&want, "new%d.example\tencrypt\n", i);
	assert_int_equal(tp_doc_serialize(doc, &out), 0);
	assert_int_equal(out.size, want.size);
	assert_memory_equal(out.ptr, want.ptr, want.size);
	/* Line numbers and lookups after all that. */
	assert_int_equal(tp_doc_find(doc, "d13.example", &idx), 0);
	assert_int_equal(tp_doc_entry_at(doc, idx, &e), 0);
	/* Its comment is line 27, less d0's and d11's lines, removed. */
	assert_int_equal(e.line, 13 * 2 + 2 - 2);
	assert_int_equal(tp_doc_find(doc, "new499.example", &idx), 0);
	assert_int_equal(tp_doc_entry_at(doc, idx, &e), 0);
	assert_int_equal(e.line, (unsigned long)(N * 2 - (N / 11 + 1) + 500));
	assert_int_equal(tp_doc_find(doc, "d22.example", &idx), TP_ENOTFOUND);
	tp_doc_free(doc);
	tp_buf_dispose(&in);
	tp_buf_dispose(&want);
	tp_buf_dispose(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document__reads_records_exactly_like_postmap),
		cmocka_unit_test(test_document__scan_reads_what_the_document_reads),
		cmocka_unit_test(test_document__edits_change_only_their_entry),
		cmocka_unit_test(test_document__edited_model_matches_its_bytes),
		cmocka_unit_test(test_document__annotation_fields_of_our_own_are_set_read_and_removed),
		cmocka_unit_test(test_document__find_returns_the_winning_duplicate),
		cmocka_unit_test(test_document__key_fold_is_postmaps),
		cmocka_unit_test(test_document__serializes_awkward_files_byte_for_byte),
		cmocka_unit_test(test_document__serializes_random_bytes_byte_for_byte),
		cmocka_unit_test(test_document__failed_edit_leaves_entries_and_bytes),
		cmocka_unit_test(test_document__input_of_4_gb_or_more_is_refused),
		cmocka_unit_test(test_document__agrees_with_real_postmap),
		cmocka_unit_test(test_document__batched_edits_match_whole_document_edits),
		cmocka_unit_test(test_document__many_edits_of_a_large_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
