/*
 * Fuzz target for the policy document: any bytes parse; serialising gives
 * the input back; every entry can be walked; edits keep the bytes outside
 * their entry and leave a model equal to a fresh parse of the new bytes.
 * The first input byte picks the options and the entry to edit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tlspolicy/document.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
line_offset(const char *s, size_t len, unsigned long n)
{
	size_t i = 0;

	while (--n > 0) {
		const char *nl = memchr(s + i, '\n', len - i);

		if (nl == NULL)
			return len;
		i = (size_t)(nl - s) + 1;
	}
	return i;
}

static void
walk(const tp_doc *doc)
{
	volatile size_t sink = 0;
	size_t i, j;
	tp_entry e;

	for (i = 0; i < tp_doc_entry_count(doc); i++) {
		if (tp_doc_entry_at(doc, i, &e) != 0 || e.line > e.last_line)
			abort();
		sink += strlen(e.key) + strlen(e.value) + strlen(e.raw_key);
		if (strlen(e.key) != e.key_len || strlen(e.value) != e.value_len)
			abort();
		for (j = 0; j < e.from_count; j++)
			sink += strlen(e.from[j]);
		if (e.pin_kind)
			sink += strlen(e.pin_kind);
	}
	for (i = 0; i < tp_doc_warning_count(doc); i++)
		sink += strlen(tp_doc_warning_at(doc, i)->message);
	(void)sink;
}

/* The edited model must be what parsing its own bytes gives. */
static void
check_model(const tp_doc *doc, const tp_doc_opts *opts)
{
	tp_buf out = TP_BUF_INIT;
	tp_doc *again;
	tp_entry a, b;
	size_t i;

	if (tp_doc_serialize(doc, &out) != 0 ||
	    tp_doc_parse(&again, out.ptr, out.size, "f", opts) != 0)
		abort();
	if (tp_doc_entry_count(again) != tp_doc_entry_count(doc) ||
	    tp_doc_warning_count(again) != tp_doc_warning_count(doc))
		abort();
	for (i = 0; i < tp_doc_entry_count(doc); i++) {
		tp_doc_entry_at(doc, i, &a);
		tp_doc_entry_at(again, i, &b);
		if (strcmp(a.key, b.key) || strcmp(a.value, b.value) ||
		    a.line != b.line || a.duplicate != b.duplicate)
			abort();
	}
	tp_doc_free(again);
	tp_buf_dispose(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const pins[] = { "AA:BB", "CC", "DD" };
	static const char *const hosts[] = { "mx.example:25", "[192.0.2.1]:25" };
	tp_doc_opts opts = TP_DOC_OPTS_INIT;
	const char *in = (const char *)data;
	tp_buf out = TP_BUF_INIT;
	tp_doc *doc;
	tp_entry e;
	size_t n, i, pre, suf, idx;
	uint8_t sel = size ? data[0] : 0;

	opts.utf8 = sel & 1;
	opts.fold_case = !(sel & 2);
	if (tp_doc_parse(&doc, in, size, "fuzz", &opts) != 0)
		return 0;
	if (tp_doc_serialize(doc, &out) != 0 || out.size != size ||
	    (size && memcmp(out.ptr, in, size) != 0))
		abort();
	walk(doc);
	n = tp_doc_entry_count(doc);
	if (n > 0) {
		i = (size_t)(sel >> 2) % n;
		tp_doc_entry_at(doc, i, &e);
		/*
		 * The line above may be the annotation even with no field we
		 * know ("# tlspolicy: junk"), and then it may be rewritten.
		 */
		pre = line_offset(in, size, e.line > 1 ? e.line - 1 : 1);
		suf = size - line_offset(in, size, e.last_line + 1);
		(void)tp_doc_set_pins(doc, i, pins, (size_t)(sel >> 4) % 4);
		(void)tp_doc_set_level(doc, i, "fingerprint");
		(void)tp_doc_set_attr(doc, i, "ciphers", sel & 0x40 ? NULL : "high");
		(void)tp_doc_set_annotation(doc, i, hosts, (size_t)(sel >> 6) % 3,
					    sel & 0x20 ? "cert" : NULL);
		if (tp_doc_entry_count(doc) != n || tp_doc_serialize(doc, &out) != 0 ||
		    out.size < pre + suf || memcmp(out.ptr, in, pre) != 0 ||
		    memcmp(out.ptr + out.size - suf, in + size - suf, suf) != 0)
			abort();
		check_model(doc, &opts);
		if (tp_doc_remove(doc, i) != 0 || tp_doc_entry_count(doc) != n - 1)
			abort();
		walk(doc);
	}
	if (tp_doc_append(doc, "new.example", "fingerprint match=AA", &idx) == 0 &&
	    idx + 1 != tp_doc_entry_count(doc))
		abort();
	check_model(doc, &opts);
	(void)tp_doc_find(doc, "New.Example", &idx);
	tp_doc_free(doc);
	tp_buf_dispose(&out);
	return 0;
}
