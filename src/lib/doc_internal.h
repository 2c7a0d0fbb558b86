/*
 * NAME
 *	doc_internal - fast access to a document's records (internal)
 * DESCRIPTION
 *	tp__doc_kv() gives entry i's key and value as tp_doc_entry_at()
 *	does, without the rest of a tp_entry: the map writers call it for
 *	every record, and several times per record while sorting. i must be
 *	below tp_doc_entry_count(); *dup says whether it is a later
 *	duplicate.
 */
#ifndef TP_DOC_INTERNAL_H
#define TP_DOC_INTERNAL_H

#include <stddef.h>

#include "tlspolicy/document.h"

void tp__doc_kv(const tp_doc *doc, size_t i, const char **key, size_t *klen,
		const char **value, size_t *vlen, int *dup);

#endif
