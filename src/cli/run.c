/*
 * NAME
 *	run - run a Postfix program (postfix, postconf, postqueue)
 * SUMMARY
 *	The one place tlspolicy forks: no shell, a clean environment
 *	(postfix_environ), the child's standard output to a callback or
 *	to ours, its standard error kept for the message or passed through,
 *	and an optional deadline after which it is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * What a Postfix program we run gets: PATH of the system's directories
 * and TZ (for its log lines), nothing else of ours. postfix(1) cleans its
 * own environment, but postconf, postqueue (set-gid) and a
 * --postfix-command need not, and root's (LD_PRELOAD, IFS, MAIL_CONFIG, a
 * PATH with "." or a user's bin) is not for passing on. Fills envp
 * (NULL-terminated); tz is the room for TZ.
 */
static void
postfix_environ(char *envp[3], char *tz, size_t tzsize)
{
	const char *zone = getenv("TZ");

	envp[0] = (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	envp[1] = NULL;
	envp[2] = NULL;
	if (zone != NULL && (size_t)snprintf(tz, tzsize, "TZ=%s", zone) < tzsize)
		envp[1] = tz;
}

static void
close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

/* The child: plumbing, then exec; never returns. */
static void
child(const char *const argv[], const struct cli_run_opts *o, int out[2],
      int err[2], char *envp[])
{
	if (o->stdin_null) {
		int devnull = open("/dev/null", O_RDONLY);

		if (devnull >= 0)
			dup2(devnull, 0);
	}
	if (out[1] >= 0)
		dup2(out[1], 1);
	if (err[1] >= 0)
		dup2(err[1], 2);
	environ = envp;
	/* Only a --postfix-command without a slash is looked up (in that PATH). */
	if (o->path_search)
		execvp(argv[0], (char *const *)argv);
	else
		execv(argv[0], (char *const *)argv);
	dprintf(2, "tlspolicy: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Append to the kept stderr what fits; the last line is the reason. */
static void
keep(struct cli_run_result *r, const char *p, size_t n)
{
	size_t room = sizeof(r->err) - 1 - r->errlen;
	size_t take = n < room ? n : room;

	memcpy(r->err + r->errlen, p, take);
	r->errlen += take;
	r->err[r->errlen] = '\0';
}

/* Read the child's pipes until both close or the deadline passes. */
static void
drain(pid_t pid, const struct cli_run_opts *o, int outfd, int errfd,
      struct cli_run_result *r)
{
	struct pollfd pfd[2] = { { outfd, POLLIN, 0 }, { errfd, POLLIN, 0 } };
	double deadline = o->timeout > 0 ? now() + o->timeout : 0;
	int open_fds = (outfd >= 0) + (errfd >= 0), stop_out = 0;

	while (open_fds > 0) {
		double left = deadline > 0 ? deadline - now() : -1;
		int n;

		if (deadline > 0 && left <= 0) {
			kill(pid, SIGKILL);
			r->timed_out = 1;
			break;
		}
		n = poll(pfd, 2, left < 0 ? -1 : (int)(left * 1000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < 2; i++) {
			char chunk[16384];
			ssize_t got;

			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			got = read(pfd[i].fd, chunk, sizeof(chunk));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
				continue;
			}
			/* A consumer that stopped still drains: the child must not block. */
			if (i == 0 && !stop_out && o->out(o->ctx, chunk, (size_t)got) != 0)
				stop_out = r->out_failed = 1;
			else if (i == 1)
				keep(r, chunk, (size_t)got);
		}
	}
	for (int i = 0; i < 2; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
}

int
cli_run(const char *const argv[], const struct cli_run_opts *o,
	struct cli_run_result *r)
{
	char tzvar[256];
	char *envp[3];
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	postfix_environ(envp, tzvar, sizeof(tzvar));
	if ((o->out != NULL && pipe2(out, O_CLOEXEC) < 0) ||
	    (o->capture_err && pipe2(err, O_CLOEXEC) < 0)) {
		snprintf(r->err, sizeof(r->err), "pipe: %s", strerror(errno));
		close_pair(out);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0) {
		snprintf(r->err, sizeof(r->err), "cannot run %.300s: %s", argv[0], strerror(errno));
		close_pair(out);
		close_pair(err);
		return -1;
	}
	if (pid == 0)
		child(argv, o, out, err, envp);
	if (out[1] >= 0)
		close(out[1]);
	if (err[1] >= 0)
		close(err[1]);
	if (out[0] >= 0 || err[0] >= 0)
		drain(pid, o, out[0], err[0], r);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(r->err, sizeof(r->err), "waiting for %.300s: %s", argv[0], strerror(errno));
			return -1;
		}
	r->ran = 1;
	r->exited = WIFEXITED(status);
	r->code = r->exited ? WEXITSTATUS(status) : WTERMSIG(status);
	return r->exited && r->code == 0 && !r->timed_out && !r->out_failed ? 0 : -1;
}
