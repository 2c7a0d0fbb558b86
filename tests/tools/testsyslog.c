/*
 * NAME
 *	testsyslog - a /dev/log stand-in for the test suite
 * SYNOPSIS
 *	testsyslog --socket PATH --out FILE
 * DESCRIPTION
 *	Binds a Unix datagram socket at PATH (mode 0666; an old socket
 *	there is removed) and appends each datagram received to FILE as one
 *	line (trailing newlines and NULs of the datagram dropped, other
 *	newlines shown as \n), flushed at once. syslog(3) sends to
 *	/dev/log this way; a test bind-mounts a directory holding PATH
 *	over /dev in a private mount namespace (see tests/cli/syslog.sh),
 *	so no syslog daemon is needed. PATH exists once it is bound.
 *	Exits on SIGTERM or SIGINT, removing PATH.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	const char *path = NULL, *out = NULL;
	struct sockaddr_un sun;
	struct sigaction sa;
	char buf[65536];
	FILE *fp;
	int fd;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--socket") == 0)
			path = argv[i + 1];
		else if (strcmp(argv[i], "--out") == 0)
			out = argv[i + 1];
	}
	if (path == NULL || out == NULL || strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "usage: testsyslog --socket PATH --out FILE\n");
		return 64;
	}
	if ((fp = fopen(out, "a")) == NULL) {
		fprintf(stderr, "testsyslog: %s: %s\n", out, strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: recv returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0666) != 0) {
		fprintf(stderr, "testsyslog: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while (!stop) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "testsyslog: recv: %s\n", strerror(errno));
			break;
		}
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
			n--;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n')
				fputs("\\n", fp);
			else
				fputc(buf[i], fp);
		}
		fputc('\n', fp);
		fflush(fp);
	}
	unlink(path);
	fclose(fp);
	return 0;
}
