/*
 * NAME
 *	doc_internal - what the table code needs of a document (internal)
 * DESCRIPTION
 *	tp__doc_kv() gives entry i's key and value as tp_doc_entry_at()
 *	does, without the rest of a tp_entry: the map writers call it for
 *	every record, and several times per record while sorting. i must be
 *	below tp_doc_entry_count(); *dup says whether it is a later
 *	duplicate.
 *
 *	tp__doc_emit() writes the document's bytes, in order, through sink
 *	(as tp_doc_serialize() would make them, without holding them all in
 *	memory at once); the first non-zero status of sink stops it and is
 *	returned.
 *
 *	The document remembers the folded keys whose record (what postmap
 *	would store for them) an edit may have changed since it was parsed
 *	or since tp__doc_dirty_clear(): tp__doc_dirty_count() says how
 *	many (a key may be listed more than once), tp__doc_dirty_next()
 *	gives them in turn (*pos starts at 0; 0 after the last one),
 *	each with the record the key had just before the edit that listed
 *	it (*old NULL: none), so the first listing of a key has the record
 *	it had when the document was parsed.
 *	tp__doc_record() is the record a key has now: its value when some
 *	entry has the key (the first one, as postmap keeps it), else
 *	TP_ENOTFOUND. key is folded, as stored.
 *
 *	tp__doc_whole_edits(doc, 1) makes every later edit of doc work on
 *	the whole document (written and parsed whole each time), as edits
 *	did before they worked on the entry's lines alone: the tests hold
 *	one way against the other.
 *
 *	tp__doc_scan() reads the file at path as tp_doc_load() does, with
 *	the same errors, but keeps only postmap's records and warnings: a
 *	rebuild of a large table needs nothing else, and the lines, entries
 *	and annotations of a document are most of its time and memory. The
 *	result is a tp_doc with no entries (tp_doc_entry_count() is 0),
 *	the source's warnings (tp_doc_warning_count(), _at()), and
 *	tp__doc_scan_count() records: tp__doc_scan_kv() gives record i's
 *	folded key and value, NUL-terminated, in file order, first of
 *	duplicates only. It is not for editing or serializing (its bytes
 *	are no longer the file's); tp__doc_is_scan() tells it apart.
 *	tp__doc_scan_mem() is the same for data[0..len-1], as tp_doc_parse()
 *	(name: the file named in warnings).
 */
#ifndef TP_DOC_INTERNAL_H
#define TP_DOC_INTERNAL_H

#include <stddef.h>

#include "tlspolicy/document.h"

void tp__doc_kv(const tp_doc *doc, size_t i, const char **key, size_t *klen,
		const char **value, size_t *vlen, int *dup);

typedef int (*tp__doc_sink)(void *ctx, const char *p, size_t n);

int tp__doc_emit(const tp_doc *doc, tp__doc_sink sink, void *ctx);
size_t tp__doc_dirty_count(const tp_doc *doc);
int tp__doc_dirty_next(const tp_doc *doc, size_t *pos, const char **key,
		       size_t *len, const char **old, size_t *oldlen);
void tp__doc_dirty_clear(tp_doc *doc);
void tp__doc_whole_edits(tp_doc *doc, int on);
int tp__doc_record(const tp_doc *doc, const char *key, size_t klen,
		   const char **value, size_t *vlen);

int tp__doc_scan(tp_doc **out, const char *path, const tp_doc_opts *opts,
		 tp_diag *diag);
int tp__doc_scan_mem(tp_doc **out, const char *data, size_t len,
		     const char *name, const tp_doc_opts *opts);
int tp__doc_is_scan(const tp_doc *doc);
size_t tp__doc_scan_count(const tp_doc *doc);
void tp__doc_scan_kv(const tp_doc *doc, size_t i, const char **key,
		     size_t *klen, const char **value, size_t *vlen);

#endif
