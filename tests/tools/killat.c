/*
 * killat - run a command and SIGKILL it after a delay, for crash tests
 *
 * killat USEC COMMAND [ARGS...]
 *   Starts COMMAND (stdout and stderr to /dev/null), waits USEC
 *   microseconds, sends SIGKILL unless it has exited, and prints one
 *   line: "killed" when the signal ended it, "exit N" when it had exited
 *   with status N before the signal. Exit status 0, or 2 on a usage or
 *   system error. A shell's `sleep` costs a fork and exec per kill; this
 *   puts the signal within a few microseconds of the chosen moment.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct timespec ts;
	long long usec;
	char *end;
	pid_t pid;
	int status;

	if (argc < 3 || (usec = strtoll(argv[1], &end, 10)) < 0 || *end) {
		fprintf(stderr, "usage: killat USEC COMMAND [ARGS...]\n");
		return 2;
	}
	if ((pid = fork()) < 0) {
		perror("killat: fork");
		return 2;
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	ts.tv_sec = (time_t)(usec / 1000000);
	ts.tv_nsec = (long)(usec % 1000000) * 1000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		continue;
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("killat: waitpid");
			return 2;
		}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		printf("killed\n");
	else if (WIFEXITED(status))
		printf("exit %d\n", WEXITSTATUS(status));
	else
		printf("signal %d\n", WTERMSIG(status));
	return 0;
}
