/*
 * crashpoint.so - SIGKILL a program just before its Nth file-system step,
 * for the crash tests (tests/reliability/crash.sh)
 *
 * LD_PRELOAD=.../crashpoint.so TP_CRASH_STEP=N COMMAND [ARGS...]
 *   Counts the calls that make a write durable or visible (fsync,
 *   fdatasync, rename, renameat, renameat2, link, linkat, unlink,
 *   unlinkat, rmdir, mkdir, mkdirat, mkdtemp, mkstemp, mkostemp,
 *   ftruncate) and, just before the Nth, writes "crashpoint: step N
 *   (CALL)" to stderr and kills the process with SIGKILL. A run that
 *   makes fewer than N steps ends as it would have: stepping N from 1
 *   until a run exits kills it between every two steps of its write
 *   protocol in turn. Kills at random moments (killat) land where the
 *   clock says, which on a loaded machine may be nowhere near the write;
 *   these land on each step whatever the load.
 *   TP_CRASH_STEP and LD_PRELOAD leave the environment at start, so
 *   programs the command runs are neither counted nor killed.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static long crash_step = -1;	/* -1: count nothing */
static long steps_taken;

__attribute__((constructor)) static void
crashpoint_init(void)
{
	const char *v = getenv("TP_CRASH_STEP");
	char *end;
	long n;

	if (v != NULL && (n = strtol(v, &end, 10)) > 0 && *end == '\0')
		crash_step = n;
	unsetenv("TP_CRASH_STEP");
	unsetenv("LD_PRELOAD");
}

static void
step(const char *call)
{
	long n;
	char msg[96];
	int len;

	if (crash_step < 0)
		return;
	n = __atomic_add_fetch(&steps_taken, 1, __ATOMIC_SEQ_CST);
	if (n != crash_step)
		return;
	len = snprintf(msg, sizeof(msg), "crashpoint: step %ld (%s)\n", n, call);
	if (len > 0)
		(void)!write(2, msg, (size_t)len);
	(void)raise(SIGKILL);
}

/* The next definition of NAME (libc's), found once. */
#define REAL(type, name) \
	static type real; \
	if (real == NULL) \
		real = (type)dlsym(RTLD_NEXT, name)

typedef int (*fd_fn)(int);
typedef int (*fd_off_fn)(int, off_t);
typedef int (*path_fn)(const char *);
typedef int (*path2_fn)(const char *, const char *);
typedef int (*at2_fn)(int, const char *, int, const char *);
typedef int (*at2_uflags_fn)(int, const char *, int, const char *, unsigned int);
typedef int (*at2_flags_fn)(int, const char *, int, const char *, int);
typedef int (*at_flags_fn)(int, const char *, int);
typedef int (*path_mode_fn)(const char *, mode_t);
typedef int (*at_mode_fn)(int, const char *, mode_t);
typedef char *(*template_fn)(char *);
typedef int (*template_fd_fn)(char *);
typedef int (*template_flags_fn)(char *, int);

int
fsync(int fd)
{
	REAL(fd_fn, "fsync");
	step("fsync");
	return real(fd);
}

int
fdatasync(int fd)
{
	REAL(fd_fn, "fdatasync");
	step("fdatasync");
	return real(fd);
}

int
ftruncate(int fd, off_t len)
{
	REAL(fd_off_fn, "ftruncate");
	step("ftruncate");
	return real(fd, len);
}

int
rename(const char *from, const char *to)
{
	REAL(path2_fn, "rename");
	step("rename");
	return real(from, to);
}

int
renameat(int fromdir, const char *from, int todir, const char *to)
{
	REAL(at2_fn, "renameat");
	step("renameat");
	return real(fromdir, from, todir, to);
}

int
renameat2(int fromdir, const char *from, int todir, const char *to,
	  unsigned int flags)
{
	REAL(at2_uflags_fn, "renameat2");
	step("renameat2");
	return real(fromdir, from, todir, to, flags);
}

int
link(const char *from, const char *to)
{
	REAL(path2_fn, "link");
	step("link");
	return real(from, to);
}

int
linkat(int fromdir, const char *from, int todir, const char *to, int flags)
{
	REAL(at2_flags_fn, "linkat");
	step("linkat");
	return real(fromdir, from, todir, to, flags);
}

int
unlink(const char *path)
{
	REAL(path_fn, "unlink");
	step("unlink");
	return real(path);
}

int
unlinkat(int dir, const char *path, int flags)
{
	REAL(at_flags_fn, "unlinkat");
	step("unlinkat");
	return real(dir, path, flags);
}

int
rmdir(const char *path)
{
	REAL(path_fn, "rmdir");
	step("rmdir");
	return real(path);
}

int
mkdir(const char *path, mode_t mode)
{
	REAL(path_mode_fn, "mkdir");
	step("mkdir");
	return real(path, mode);
}

int
mkdirat(int dir, const char *path, mode_t mode)
{
	REAL(at_mode_fn, "mkdirat");
	step("mkdirat");
	return real(dir, path, mode);
}

char *
mkdtemp(char *template)
{
	REAL(template_fn, "mkdtemp");
	step("mkdtemp");
	return real(template);
}

int
mkstemp(char *template)
{
	REAL(template_fd_fn, "mkstemp");
	step("mkstemp");
	return real(template);
}

int
mkostemp(char *template, int flags)
{
	REAL(template_flags_fn, "mkostemp");
	step("mkostemp");
	return real(template, flags);
}
