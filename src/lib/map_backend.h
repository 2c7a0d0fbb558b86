/*
 * NAME
 *	map_backend - the table of map writers and readers (internal)
 * SUMMARY
 *	One tp__map_backend per Postfix map type, as OpenSMTPD's
 *	struct table_backend: map.c does the file handling (temp
 *	directory, mode and owner, locked rename) and the record policy
 *	(first wins, trailing NUL), a backend only stores and finds bytes.
 *	lmdb: and cdb: follow by adding a backend here.
 * DESCRIPTION
 *	create() makes a new, empty database file at path, a name inside a
 *	private directory nobody else can write (so libraries that insist
 *	on creating their file themselves are safe); name is the file
 *	messages talk about (the database being replaced). nrecords and nbytes
 *	(total key and value bytes) size caches and hash tables.
 *	put() stores one record as given (the caller appends the NUL);
 *	1 when the key is already there (the record is not stored).
 *	finish() flushes everything, applies mode (and owner when chown is
 *	set), fsyncs and closes; the writer is gone afterwards, on success
 *	or failure. abort() drops a writer; the caller unlinks the file.
 *
 *	open_read() opens an existing database and holds its reader lock
 *	(see lock_style) shared until close_read(), as Postfix readers do
 *	around a lookup, waiting at most lock_timeout seconds for it
 *	(tp__lock_wait());
 *	TP_ENOTFOUND when there is no file. get() finds the record whose
 *	key is exactly key[0..klen) and copies its value bytes (all of
 *	them, NULs included) to value; TP_ENOTFOUND when absent. next()
 *	walks every record in storage order; rec points into the backend's
 *	memory until the next call; TP_ENOTFOUND after the last one.
 *	bucket(), when not NULL, tells a writer's storage order: records
 *	put in ascending bucket() order (of the key as stored) fill the file
 *	front to back, so a small cache suffices. Only speed depends on it.
 *	lock_style is the lock Postfix's readers take on the database file
 *	(flock() for hash/btree, fcntl() for lmdb, none for cdb, whose
 *	files are only ever replaced): open_read() takes it shared, and
 *	map.c takes it exclusive on the old file while it renames the new
 *	one over it. no_db: the type has no database (texthash: Postfix
 *	reads the source when a process starts); map.c then writes nothing.
 *	finish() ends with tp__finish_fd(), the owner, mode and fsync steps
 *	every backend shares.
 *	open_update(), when not NULL, opens an existing database file at
 *	path (a private copy of the one named name) to change records in
 *	place: replace() stores a record, over the one with its key if
 *	any; del() removes the record with exactly that key (TP_ENOTFOUND
 *	when there is none); finish() and abort() end it as for a new
 *	database; get() works on it too. TP_EDB or TP_EIO from
 *	open_update(): the file is not a database of this type. cdb (a
 *	constant database), lmdb (not written yet) and texthash have none.
 *	assume_unique(), when not NULL, tells a new writer that its puts
 *	will all have distinct keys (map.c knows when): put() may then skip
 *	looking for an existing record (libdb's DB_NOOVERWRITE is a second
 *	search per put).
 *	reader_fd() is the descriptor of the file open_read() locked: a
 *	reader kept open across lookups (tp_maps) unlocks it after
 *	open_read() and takes LOCK_SH on it around each lookup, as Postfix
 *	does, so it never holds up a writer between lookups.
 */
#ifndef TP_MAP_BACKEND_H
#define TP_MAP_BACKEND_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "tlspolicy/map.h"
#include "safewrite.h"

typedef struct tp__map_backend {
	const char *name;
	const char *suffix;
	int nul_terminated;	/* keys and values stored with a trailing NUL */
	int sorted_input;	/* puts are fastest in ascending key order */
	int (*create)(void **out, const char *path, const char *name,
		      size_t nrecords, size_t nbytes, tp_diag *diag);
	int (*put)(void *w, const void *key, size_t klen, const void *value,
		   size_t vlen, tp_diag *diag);
	int (*finish)(void *w, mode_t mode, int chown, uid_t uid, gid_t gid,
		      tp_diag *diag);
	void (*abort)(void *w);
	int (*open_read)(void **out, const char *path, double lock_timeout,
			 tp_diag *diag);
	int (*get)(void *r, const void *key, size_t klen, tp_buf *value,
		   tp_diag *diag);
	int (*next)(void *r, tp_record *rec, tp_diag *diag);
	void (*close_read)(void *r);
	uint32_t (*bucket)(void *w, const void *key, size_t klen);
	int (*reader_fd)(void *r);
	int unique_puts;	/* put() cannot refuse a duplicate: never give it one */
	int lock_style;		/* how Postfix's readers lock the file: TP__LOCK_* */
	int no_db;		/* no database: Postfix reads the source (texthash) */
	/* Incremental writes (NULL: the type is always rebuilt whole). */
	int (*open_update)(void **out, const char *path, const char *name,
			   tp_diag *diag);
	int (*replace)(void *w, const void *key, size_t klen,
		       const void *value, size_t vlen, tp_diag *diag);
	int (*del)(void *w, const void *key, size_t klen, tp_diag *diag);
	void (*assume_unique)(void *w);
} tp__map_backend;

extern const tp__map_backend tp__map_backend_hash;
extern const tp__map_backend tp__map_backend_btree;
extern const tp__map_backend tp__map_backend_lmdb;
extern const tp__map_backend tp__map_backend_cdb;
extern const tp__map_backend tp__map_backend_texthash;

const tp__map_backend *tp__map_backend_get(tp_map_type type);

/*
 * tp_map_write() in two steps, so a caller can write several files
 * before it renames any (tp_table_commit: a full disk then changes
 * nothing). tp__map_prepare() builds, fsyncs and closes the whole new
 * database in a private temp directory beside db_path (p->file inside
 * p->dir); on error nothing is left and *p needs no discard.
 * tp__map_install() renames it over db_path holding flock(LOCK_EX) on
 * the old one (waiting at most lock_timeout seconds for it) and fsyncs
 * the directory. tp__map_lock() takes that lock ahead, so a caller can
 * wait for it before it changes anything else (install then keeps it).
 * tp__map_write() is tp_map_write() with a lock timeout.
 * tp__map_discard() removes the temp directory (whatever is left in it),
 * releases the lock and frees *p; call it after install too.
 */
typedef struct tp__map_pending {
	tp__tmpdir dir;
	tp_buf file;
	int lock_fd;		/* exclusive lock on the old db, from tp__map_lock() */
	int lock_style;
	int no_db;
} tp__map_pending;

/*
 * The records to write, through an accessor so a table's records need
 * not be copied into an array first (memory: the source is held once,
 * in its document). unique: no two records share a key (the document
 * dropped later duplicates), so no duplicate needs finding.
 */
typedef struct tp__records {
	size_t n;
	void (*at)(const void *ctx, size_t i, tp_record *out);
	const void *ctx;
	int unique;
	int cstrings;	/* key[key_len] and value[value_len] are NULs */
} tp__records;

int tp__map_prepare(tp__map_pending *p, tp_map_type type, const char *db_path,
		    const tp__records *recs, const char *mode_from,
		    tp_diag *diag);
int tp__map_lock(tp__map_pending *p, const char *db_path, double lock_timeout,
		 tp_diag *diag);
int tp__map_install(tp__map_pending *p, const char *db_path,
		    double lock_timeout, tp_diag *diag);
int tp__map_write(tp_map_type type, const char *db_path,
		  const tp_record *records, size_t n, const char *mode_from,
		  double lock_timeout, tp_diag *diag);

/*
 * tp__map_prepare_update() is tp__map_prepare() by changing records of
 * a copy of the database at db_path instead of building it whole: the
 * copy (made under the readers' lock, waited for at most lock_timeout
 * seconds; keeping the database's permission bits and owner) gets each
 * change, a record stored (value) or removed (value NULL), and is
 * fsynced, ready for tp__map_install(). Each change also
 * says the record its key has now (old, NULL: none): when the database
 * does not hold exactly that, it is out of step. TP__MAP_REBUILD (then
 * nothing is left and *p needs no discard) when the database must be
 * built whole instead: the type has no incremental writer, there is no
 * database or it is a symbolic link (replaced, never written through),
 * it is not a database of this type, its mtime is older than
 * not_before (when not NULL: the source's, as loaded), or it is out of
 * step. Errors (a full disk) as tp__map_prepare().
 */
#define TP__MAP_REBUILD 1

typedef struct tp__map_change {
	const char *key;
	size_t key_len;
	const char *value;	/* NULL: remove the record */
	size_t value_len;
	const char *old;	/* the record now; NULL: none */
	size_t old_len;
} tp__map_change;

int tp__map_prepare_update(tp__map_pending *p, tp_map_type type,
			   const char *db_path, const tp__map_change *changes,
			   size_t n, const struct timespec *not_before,
			   double lock_timeout, tp_diag *diag);
void tp__map_discard(tp__map_pending *p);

/*
 * tp__map_get() is the lookup of tp_map_lookup() on a reader already
 * open: key with its trailing NUL first (when the backend stores one),
 * then without, the value cut at its first NUL as Postfix copies it.
 * TP_ENOTFOUND when absent.
 */
int tp__map_get(const tp__map_backend *b, void *r, const char *key,
		tp_buf *value, tp_diag *diag);

/*
 * tp__map_iterate() calls fn for every record of the database, raw (as
 * stored, trailing NULs included), holding the reader lock throughout
 * (waiting at most lock_timeout seconds for it). fn returns 0 to go on,
 * anything else stops the walk and is returned.
 */
int tp__map_iterate(tp_map_type type, const char *db_path, double lock_timeout,
		    int (*fn)(void *arg, const tp_record *rec), void *arg,
		    tp_diag *diag);

#endif
