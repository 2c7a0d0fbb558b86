/*
 * Fuzz target for the record scanner (tp__doc_scan_mem(), what rebuild
 * reads a table with): for any bytes it must give exactly the records of
 * the document parser (the first of each key, in file order, same key
 * and value bytes) and the same warnings, in the same order. The first
 * input byte picks the options.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "doc_internal.h"
#include "tlspolicy/document.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tp_doc_opts opts = TP_DOC_OPTS_INIT;
	const char *in = (const char *)data;
	tp_doc *doc, *scan;
	size_t i, k = 0;
	uint8_t sel = size ? data[0] : 0;

	opts.utf8 = sel & 1;
	opts.fold_case = !(sel & 2);
	if (tp_doc_parse(&doc, in, size, "fuzz", &opts) != 0)
		return 0;
	if (tp__doc_scan_mem(&scan, in, size, "fuzz", &opts) != 0)
		abort();
	if (!tp__doc_is_scan(scan) || tp__doc_is_scan(doc) ||
	    tp_doc_entry_count(scan) != 0)
		abort();
	for (i = 0; i < tp_doc_entry_count(doc); i++) {
		const char *key, *value;
		size_t klen, vlen;
		tp_entry e;

		if (tp_doc_entry_at(doc, i, &e) != 0)
			abort();
		if (e.duplicate)
			continue;
		if (k >= tp__doc_scan_count(scan))
			abort();
		tp__doc_scan_kv(scan, k++, &key, &klen, &value, &vlen);
		if (klen != e.key_len || vlen != e.value_len ||
		    memcmp(key, e.key, klen) != 0 || key[klen] != '\0' ||
		    memcmp(value, e.value, vlen) != 0 || value[vlen] != '\0')
			abort();
	}
	if (k != tp__doc_scan_count(scan) ||
	    tp_doc_warning_count(scan) != tp_doc_warning_count(doc))
		abort();
	for (i = 0; i < tp_doc_warning_count(doc); i++) {
		const tp_doc_warning *a = tp_doc_warning_at(doc, i);
		const tp_doc_warning *b = tp_doc_warning_at(scan, i);

		if (a->line != b->line || strcmp(a->message, b->message) != 0)
			abort();
	}
	tp_doc_free(scan);
	tp_doc_free(doc);
	return 0;
}
