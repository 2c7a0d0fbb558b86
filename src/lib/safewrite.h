/*
 * NAME
 *	safewrite - lock files and whole-file replacement (internal)
 * SUMMARY
 *	The write protocol of tlspolicy(1) (WRITING THE TABLE), in
 *	system-call sized pieces: a lock file that queues concurrent
 *	writers, a temp file beside the target, fsync, fchmod/fchown like
 *	the old file, rename, fsync of the directory. A kill at any moment
 *	leaves the target whole.
 * DESCRIPTION
 *	tp__lock_acquire() opens (creating it 0600) the lock file path,
 *	refusing to follow a symbolic link planted there and refusing
 *	anything but a regular file, then waits for flock(LOCK_EX), at most
 *	timeout seconds (see tp__flock_wait()). It stores the descriptor in
 *	*fd. tp__lock_release() closes it (-1 is fine), which releases the
 *	lock.
 *
 *	tp__flock_wait() is flock(fd, op) waiting at most timeout seconds
 *	(0: not at all; < 0: for ever). Any local user who can read a file
 *	can hold a lock on it, so a wait without end is a denial of
 *	service: on timeout it fails with TP_ETIMEOUT, "PATH is still
 *	locked after N s, by pid P (NAME)", the holders as /proc/locks
 *	names them.
 *
 *	tp__temp_file() creates "TARGET.tmp.XXXXXX" with mkstemp semantics
 *	(O_CREAT|O_EXCL: never through a planted symlink), mode 0600.
 *	tp__temp_dir() creates a private directory "TARGET.tmp.XXXXXX"
 *	(mkdtemp, 0700), for libraries such as libdb that want to create
 *	their file themselves, and records its path and identity (device
 *	and inode) in *d. tp__temp_dir_remove() empties that directory
 *	(one level: nothing else creates directories there) and removes
 *	it, through descriptors: a symbolic link or another directory
 *	swapped in at its name is left alone. It disposes of d->path;
 *	errors are ignored, it is a cleanup path.
 *
 *	tp__file_replace() replaces path with data: temp file beside it,
 *	write, fsync, mode and owner of the old file (mode 0644 for a new
 *	one; a symlinked path is resolved and its target replaced), rename,
 *	fsync of the directory. Nothing is replaced on error and the temp
 *	file is gone.
 *
 *	tp__file_prepare() does all of that but the rename: the new
 *	contents are on disk in a temp file beside the (resolved) target,
 *	with the old file's mode and owner, described by *p.
 *	tp__file_install() renames it over the target and fsyncs the
 *	directory. tp__file_discard() unlinks a temp file not installed
 *	and frees *p (after install too; idempotent). Splitting lets a
 *	caller prepare several files and rename them only once every one
 *	was written, so a full disk changes none of them.
 *
 *	tp__temp_sweep() removes what a killed writer left of ours beside
 *	target: "TARGET.tmp.XXXXXX" (exactly mkstemp's six characters)
 *	regular files, and directories of that name holding nothing but
 *	regular files named like the target or libdb's "__db." + target.
 *	Symbolic links and anything else are left alone; it works through
 *	directory descriptors and never follows a link. Call it only while
 *	holding the table's lock, so no live writer's temp is swept. It
 *	returns the number of names removed, -1 when the directory cannot
 *	be read.
 *
 *	tp__rename_locked() renames tmp over target while holding
 *	flock(LOCK_EX) on the old target (waiting at most timeout seconds
 *	for it), when there is one, so a reader that holds LOCK_SH
 *	(Postfix, during a lookup) finishes first and a concurrent postmap,
 *	which holds LOCK_EX while it writes, is waited for. Then it fsyncs
 *	the directory. It is tp__target_lock(), which takes that lock (*fd
 *	-1 when there is no old target, or a symbolic link: nothing to
 *	lock; close *fd to release it), then tp__rename_over(), which
 *	renames and fsyncs the directory.
 *
 *	tp__fsync_dir() fsyncs the directory holding path.
 *	tp__write_all() writes len bytes, retrying short writes and EINTR.
 *	tp__flock() is flock() retried on EINTR.
 * DIAGNOSTICS
 *	TP_EIO with Postfix-style messages naming the file and errno text:
 *	"error writing /etc/postfix/tls_policy: No space left on device".
 */
#ifndef TP_SAFEWRITE_H
#define TP_SAFEWRITE_H

#include <stddef.h>
#include <sys/stat.h>

#include "tlspolicy/common.h"

int tp__lock_acquire(int *fd, const char *path, double timeout, tp_diag *diag);
int tp__flock_wait(int fd, int op, double timeout, const char *path,
		   tp_diag *diag);
void tp__lock_release(int fd);

int tp__temp_file(int *fd, tp_buf *tmp, const char *target, tp_diag *diag);
typedef struct tp__tmpdir {
	tp_buf path;
	dev_t dev;		/* the directory we made */
	ino_t ino;
} tp__tmpdir;

int tp__temp_dir(tp__tmpdir *d, const char *target, tp_diag *diag);
void tp__temp_dir_remove(tp__tmpdir *d);

typedef struct tp__pending {
	char *tmp;		/* the temp file, until installed */
	char *target;		/* the file it replaces (symlink resolved) */
} tp__pending;

int tp__file_prepare(tp__pending *p, const char *path, const void *data,
		     size_t len, tp_diag *diag);
/*
 * tp__file_prepare_with() is tp__file_prepare() with the contents
 * written by writer(ctx, fd) (0, or -1 with errno), so they need not
 * be in memory at once.
 */
typedef int (*tp__file_writer)(void *ctx, int fd);
int tp__file_prepare_with(tp__pending *p, const char *path,
			  tp__file_writer writer, void *ctx, tp_diag *diag);
int tp__file_install(tp__pending *p, tp_diag *diag);
void tp__file_discard(tp__pending *p);
int tp__temp_sweep(const char *target);

int tp__file_replace(const char *path, const void *data, size_t len,
		     tp_diag *diag);
int tp__rename_locked(const char *tmp, const char *target, double timeout,
		      tp_diag *diag);
int tp__rename_over(const char *tmp, const char *target, tp_diag *diag);

/*
 * Locks as Postfix's readers of each map type take them: TP__LOCK_FLOCK
 * (hash, btree: myflock() with flock()), TP__LOCK_FCNTL (lmdb: fcntl()
 * record locks on the whole file), TP__LOCK_NONE (cdb). tp__lock_fd()
 * takes (waiting for ever, EINTR retried) or drops one on fd; an
 * exclusive fcntl() lock needs fd open for writing. -1 with errno.
 * tp__lock_wait() takes one waiting at most timeout seconds, as
 * tp__flock_wait() (which is it for TP__LOCK_FLOCK): TP_ETIMEOUT naming
 * path and the holders.
 * tp__target_lock() takes the exclusive lock of that style on the old
 * target (see tp__rename_locked(); fcntl: opened read-write, a file we
 * may not open so is renamed over without the lock; none for
 * TP__LOCK_NONE), *fd -1 when there is nothing to lock.
 * tp__rename_locked_style() is tp__rename_locked() with the old target
 * locked in that style.
 * tp__finish_fd() is the end of every database writer: owner (when
 * do_chown) before mode (the caller passes permission bits only: no
 * set-id bits are ever copied), then fsync; errors name path ("error
 * writing PATH: ...").
 */
enum { TP__LOCK_NONE = 0, TP__LOCK_FLOCK = 1, TP__LOCK_FCNTL = 2 };
enum { TP__LOCK_SHARED = 1, TP__LOCK_EXCLUSIVE = 2, TP__LOCK_UNLOCK = 3 };
int tp__lock_fd(int fd, int style, int op);
int tp__lock_wait(int fd, int style, int op, double timeout, const char *path,
		  tp_diag *diag);
int tp__target_lock(int *fd, const char *target, int style, double timeout,
		    tp_diag *diag);
int tp__rename_locked_style(const char *tmp, const char *target, int style,
			    double timeout, tp_diag *diag);
int tp__finish_fd(int fd, const char *path, mode_t mode, int do_chown,
		  uid_t uid, gid_t gid, tp_diag *diag);

int tp__fsync_dir(const char *path, tp_diag *diag);
int tp__write_all(int fd, const void *data, size_t len);
int tp__flock(int fd, int op);

#endif
