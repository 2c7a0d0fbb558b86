/*
 * NAME
 *	map_texthash - texthash: maps, whose source is the table
 * SUMMARY
 *	The tp__map_backend for Postfix's texthash: type. There is no
 *	database: Postfix reads the source file itself, when a process
 *	opens the map (so a change needs "postfix reload" to be seen at
 *	once). Writing the table is writing the source; map.c writes
 *	nothing for it (no_db).
 * DESCRIPTION
 *	Reading (get, next) parses the source as postmap and dict_thash.c
 *	do (tp_doc, UTF-8 folding on); keys are folded as stored, and a
 *	duplicate key is not a record (postmap keeps the first).
 * DIAGNOSTICS
 *	As tp_doc_load(): TP_ENOTFOUND, TP_EIO, TP_ENOMEM.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diag.h"
#include "map_backend.h"
#include "tlspolicy/document.h"

struct thash_handle {
	tp_doc *doc;
	size_t next;
};

static int
thash_open_read(void **out, const char *path, double lock_timeout, tp_diag *diag)
{
	struct thash_handle *h = calloc(1, sizeof(*h));
	tp_doc_opts opts = TP_DOC_OPTS_INIT;
	int rc;

	(void)lock_timeout;	/* Postfix's readers of this type take no lock */
	*out = NULL;
	if (h == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if ((rc = tp_doc_load(&h->doc, path, &opts, diag)) < 0) {
		free(h);
		return rc;
	}
	*out = h;
	return TP_OK;
}

static int
thash_get(void *r, const void *key, size_t klen, tp_buf *value, tp_diag *diag)
{
	struct thash_handle *h = r;

	for (size_t i = 0; i < tp_doc_entry_count(h->doc); i++) {
		tp_entry e;

		if (tp_doc_entry_at(h->doc, i, &e) < 0 || e.duplicate || e.key_len != klen
		    || memcmp(e.key, key, klen) != 0)
			continue;
		tp__buf_truncate(value, 0);
		if (tp__buf_put(value, e.value, e.value_len) < 0)
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		return TP_OK;
	}
	return TP_ENOTFOUND;
}

static int
thash_next(void *r, tp_record *rec, tp_diag *diag)
{
	struct thash_handle *h = r;

	(void)diag;
	while (h->next < tp_doc_entry_count(h->doc)) {
		tp_entry e;

		if (tp_doc_entry_at(h->doc, h->next++, &e) < 0 || e.duplicate)
			continue;
		rec->key = e.key;
		rec->key_len = e.key_len;
		rec->value = e.value;
		rec->value_len = e.value_len;
		return TP_OK;
	}
	return TP_ENOTFOUND;
}

static void
thash_close_read(void *r)
{
	struct thash_handle *h = r;

	if (h != NULL)
		tp_doc_free(h->doc);
	free(h);
}

static int
thash_reader_fd(void *r)
{
	(void)r;
	return -1;
}

const tp__map_backend tp__map_backend_texthash = {
	"texthash", "", 0, 0,
	NULL, NULL, NULL, NULL,
	thash_open_read, thash_get, thash_next, thash_close_read, NULL,
	thash_reader_fd, 0, TP__LOCK_NONE, 1,
	NULL, NULL, NULL, NULL,
};
