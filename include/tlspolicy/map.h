/*
 * NAME
 *	tlspolicy/map.h - the indexed table Postfix reads, and safe updates
 * SUMMARY
 *	Writes the database postmap(1) would write for a source file (same
 *	records, byte for byte: keys and values with their trailing NUL),
 *	reads it the way Postfix does, and updates source and database
 *	with the write protocol of tlspolicy(1), WRITING THE TABLE: lock
 *	file, temp file beside the target, fsync, rename, fsync of the
 *	directory; mode and owner kept. A kill at any moment leaves each file whole, old or new.
 * DESCRIPTION
 *	Map types: hash (Berkeley DB DB_HASH) and btree (DB_BTREE), file
 *	suffix ".db"; lmdb (liblmdb, ".lmdb"); cdb (tinycdb, ".cdb");
 *	texthash (no database: Postfix reads the source, when a process
 *	starts, so a change needs a reload). Each is written with the
 *	records postmap writes for it (hash, btree, lmdb: keys and values
 *	with a trailing NUL; cdb without) and locked as Postfix's readers
 *	lock it (flock for hash and btree, fcntl for lmdb, none for cdb,
 *	whose files are only replaced). tp_map_type_parse() takes those
 *	names; TP_EUNSUPPORTED for other Postfix types. tp_map_spec_parse()
 *	takes "TYPE:PATH" or a bare path (hash; callers that know main.cf
 *	use its default_database_type instead).
 *
 *	tp_map_write() replaces db_path with a database holding records, in
 *	order (a key already written is skipped: first wins, as postmap).
 *	Mode and owner as postmap's: an existing database keeps its own
 *	permission bits and owner (postmap rewrites it in place; set-uid,
 *	set-gid and sticky bits are dropped); a new one, or one replacing a
 *	symbolic link, gets 0644 narrowed by the
 *	group/other bits of mode_from (the source: 0640 gives 0640, 0666
 *	gives 0644) and, when run as root, mode_from's owner and group
 *	unless that is root; mode_from NULL: 0644 and our own. It builds the
 *	database in a private temp directory beside db_path ("DB.tmp.XXXXXX",
 *	because libdb creates its file itself), fsyncs it, takes
 *	flock(LOCK_EX) on the old database (so Postfix readers and a
 *	concurrent postmap wait), renames, fsyncs the directory. On error
 *	nothing is replaced and no temp file is left. A db_path that is a
 *	symbolic link is replaced, not written through.
 *
 *	tp_map_lookup() finds key (exactly as given: fold it first with
 *	tp_key_fold) the way Postfix does: with a trailing NUL first, then
 *	without, under the type's reader lock (db_path: the source for
 *	texthash). tp_map_lookup_timed() is the same waiting at most
 *	lock_timeout seconds for that lock; tp_map_lookup() and
 *	tp_map_write() wait at most TP_LOCK_TIMEOUT_DEFAULT seconds.
 *	TP_ENOTFOUND when the key is absent;
 *	TP_EIO when there is no database ("open database X.db: No such file
 *	or directory"), TP_EDB when libdb cannot read it. The value is
 *	copied as Postfix copies it: up to its first NUL.
 *
 *	Locks: any local user who can read the database can hold a lock on
 *	it, so no wait is without end. A lock still held after the timeout
 *	(seconds; 0: do not wait; < 0: wait for ever) fails with TP_ETIMEOUT
 *	and a message naming the file and, from /proc/locks, the process
 *	holding it: "/etc/postfix/tls_policy.db is still locked after 60 s,
 *	by pid 4321 (postmap)".
 *
 *	A tp_table ties a source file to its database. tp_table_open() with
 *	TP_TABLE_WRITE takes the exclusive lock file "SOURCE.lock" (waiting
 *	for a concurrent tlspolicy) and treats a missing source as empty;
 *	without it a missing source is TP_ENOTFOUND. tp_table_doc() is the
 *	parsed source, owned by the table, to read or edit.
 *	TP_TABLE_REBUILD (with TP_TABLE_WRITE) opens a table for
 *	tp_table_rebuild() and tp_table_db_state() alone: the source is
 *	read for its records only, in a fraction of the time and memory of
 *	a document; tp_table_doc() is then an empty document holding the
 *	source's warnings (tp_doc_append() and tp_doc_serialize() on it fail
 *	with TP_EUSAGE), and tp_table_commit() fails with TP_EUSAGE.
 *	tp_table_commit() writes the source if its bytes changed (temp,
 *	fsync, rename; permission bits and owner kept; a symlinked source
 *	stays a link and the file it points to is replaced, beside itself),
 *	then the database: a copy of the old one with only the records the
 *	edits changed (stored or removed), renamed over it the same way;
 *	built whole instead when it is missing or a symbolic link, not a
 *	database of the type, older than the source as loaded, does not
 *	hold what the loaded source says for a changed key, when the type
 *	has no incremental writer (cdb, lmdb), or when the edits changed
 *	more than a quarter of the records. tp_table_db_written() says how
 *	the last commit wrote it: TP_TABLE_DB_UPDATED (*records: records
 *	changed), TP_TABLE_DB_REBUILT (*records: records written) or
 *	TP_TABLE_DB_NONE (no commit yet).
 *	tp_table_rebuild() rebuilds the database only. Both refuse with
 *	TP_ECHANGED, writing nothing, when the source is no longer the file
 *	tp_table_open() read (its device, inode, size or mtime changed: a
 *	hand edit meanwhile would otherwise be overwritten); open the table
 *	again and redo the edit. tp_table_db_state()
 *	compares the database's records with the source's (content, not
 *	mtime). tp_table_free() releases the lock; it accepts NULL.
 *	opts->lock_timeout bounds every lock wait of the table: the lock
 *	file, the database's LOCK_EX at a commit or rebuild and its LOCK_SH
 *	in tp_table_db_state() (TP_TABLE_OPTS_VERSION 2 added it; options
 *	of version 1 get TP_LOCK_TIMEOUT_DEFAULT).
 */
#ifndef TLSPOLICY_MAP_H
#define TLSPOLICY_MAP_H

#include "common.h"
#include "document.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values are never renumbered; new types go before TP_MAP_LAST. */
typedef enum tp_map_type {
	TP_MAP_HASH = 0,
	TP_MAP_BTREE = 1,
	TP_MAP_LMDB = 2,
	TP_MAP_CDB = 3,
	TP_MAP_TEXTHASH = 4,
	TP_MAP_LAST
} tp_map_type;

typedef struct tp_record {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
} tp_record;

TP_EXTERN(int) tp_map_type_parse(tp_map_type *out, const char *name);
TP_EXTERN(const char *) tp_map_type_name(tp_map_type type);
TP_EXTERN(const char *) tp_map_type_suffix(tp_map_type type);
TP_EXTERN(int) tp_map_spec_parse(tp_map_type *type, tp_buf *path,
				 const char *spec, tp_diag *diag);

TP_EXTERN(int) tp_map_write(tp_map_type type, const char *db_path,
			    const tp_record *records, size_t n,
			    const char *mode_from, tp_diag *diag);
TP_EXTERN(int) tp_map_lookup(tp_map_type type, const char *db_path,
			     const char *key, tp_buf *value, tp_diag *diag);
TP_EXTERN(int) tp_map_lookup_timed(tp_map_type type, const char *db_path,
				   const char *key, tp_buf *value,
				   double lock_timeout, tp_diag *diag);

/* Seconds a lock is waited for unless the caller says otherwise. */
#define TP_LOCK_TIMEOUT_DEFAULT 60.0

typedef struct tp_table tp_table;

typedef enum tp_db_state {
	TP_DB_IN_STEP = 0,	/* the db holds exactly the source's records */
	TP_DB_MISSING = 1,	/* no db file */
	TP_DB_STALE = 2		/* the db differs from the source */
} tp_db_state;

#define TP_TABLE_WRITE 0x1
#define TP_TABLE_REBUILD 0x2

typedef struct tp_table_opts {
	unsigned int version;
	tp_doc_opts doc;
	unsigned int flags;
	double lock_timeout;	/* version 2: seconds; 0 no wait; < 0 for ever */
} tp_table_opts;

#define TP_TABLE_OPTS_VERSION 2
#define TP_TABLE_OPTS_INIT \
	{ TP_TABLE_OPTS_VERSION, TP_DOC_OPTS_INIT, 0, TP_LOCK_TIMEOUT_DEFAULT }

TP_EXTERN(int) tp_table_open(tp_table **out, tp_map_type type,
			     const char *source, const tp_table_opts *opts,
			     tp_diag *diag);
TP_EXTERN(tp_doc *) tp_table_doc(tp_table *table);
TP_EXTERN(const char *) tp_table_source(const tp_table *table);
TP_EXTERN(const char *) tp_table_db_path(const tp_table *table);
TP_EXTERN(tp_map_type) tp_table_type(const tp_table *table);
TP_EXTERN(int) tp_table_commit(tp_table *table, tp_diag *diag);
TP_EXTERN(int) tp_table_rebuild(tp_table *table, tp_diag *diag);
TP_EXTERN(int) tp_table_db_state(tp_table *table, tp_db_state *state,
				 tp_diag *diag);
TP_EXTERN(void) tp_table_free(tp_table *table);

#define TP_TABLE_DB_NONE 0	/* no commit yet */
#define TP_TABLE_DB_UPDATED 1	/* a copy with the changed records */
#define TP_TABLE_DB_REBUILT 2	/* built whole */

TP_EXTERN(int) tp_table_db_written(const tp_table *table, size_t *records);

#ifdef __cplusplus
}
#endif

#endif
