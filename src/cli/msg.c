/*
 * NAME
 *	msg - where errors, warnings and progress go
 * DESCRIPTION
 *	See cli.h. Errors and warnings go to stderr as one line each,
 *	"tlspolicy: TEXT"; when stderr is not a terminal (cron, systemd,
 *	monitoring), or with --syslog, also to syslog, facility mail like
 *	Postfix's own tools, as "tlspolicy[PID]: TEXT" at LOG_ERR or
 *	LOG_WARNING.
 *
 *	The progress line is drawn on stderr only when it is a terminal
 *	and -q is off, at most 10 times a second and not before the run is
 *	0.1 s old, and cleared before any other line goes to stderr and at
 *	the end, so it never lands in a log or mixes with messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_INTERVAL 0.1	/* seconds between two redraws */

static struct {
	int syslog;		/* copy errors and warnings to syslog */
	int opened;
	int progress_ok;	/* stderr is a terminal and not -q */
	int progress_on;	/* between start and end */
	int drawn;		/* a progress line is on the screen */
	double start, last;
	const char *what, *unit;
} msg;

void
cli_msg_setup(int force_syslog, int quiet)
{
	int tty = isatty(STDERR_FILENO);

	msg.syslog = force_syslog || !tty;
	msg.progress_ok = tty && !quiet;
}

static void
progress_clear(void)
{
	if (msg.drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		msg.drawn = 0;
	}
}

/* One message: stderr, and syslog when wanted. */
static void
emit(int priority, const char *prefix, const char *text)
{
	progress_clear();
	fprintf(stderr, "tlspolicy: %s%s\n", prefix, text);
	if (msg.syslog) {
		if (!msg.opened) {
			openlog("tlspolicy", LOG_PID, LOG_MAIL);
			msg.opened = 1;
		}
		syslog(priority, "%s%s", prefix, text);
	}
}

void
cli_msg_error(const char *text)
{
	emit(LOG_ERR, "", text);
}

/* Format without a length limit: postmap's warnings quote whole lines. */
static void
vemit(int priority, const char *prefix, const char *fmt, va_list ap)
{
	char small[1024], *buf = small;
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(small, sizeof(small), fmt, aq);
	va_end(aq);
	if (n >= (int)sizeof(small) && (buf = malloc((size_t)n + 1)) != NULL)
		vsnprintf(buf, (size_t)n + 1, fmt, ap);
	emit(priority, prefix, buf ? buf : small);
	if (buf != small)
		free(buf);
}

void
cli_msg_verror(const char *fmt, va_list ap)
{
	vemit(LOG_ERR, "", fmt, ap);
}

void
cli_warnf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit(LOG_WARNING, "warning: ", fmt, ap);
	va_end(ap);
}

void
cli_logf(const char *fmt, ...)
{
	va_list ap;
	char buf[2048];

	if (!msg.syslog)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!msg.opened) {
		openlog("tlspolicy", LOG_PID, LOG_MAIL);
		msg.opened = 1;
	}
	syslog(LOG_NOTICE, "%s", buf);
}

void
cli_notef(const char *fmt, ...)
{
	va_list ap;

	progress_clear();
	fputs("tlspolicy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
cli_progress_start(const char *what, const char *unit)
{
	if (!msg.progress_ok)
		return;
	msg.progress_on = 1;
	msg.what = what;
	msg.unit = unit;
	msg.start = msg.last = mono();
}

void
cli_progress_update(size_t done, size_t total)
{
	double t;

	if (!msg.progress_on)
		return;
	t = mono();
	if (t - msg.last < PROGRESS_INTERVAL)
		return;
	msg.last = t;
	fprintf(stderr, "\r%s %zu/%zu %s...\033[K", msg.what, done, total, msg.unit);
	fflush(stderr);
	msg.drawn = 1;
}

void
cli_progress_end(void)
{
	progress_clear();
	msg.progress_on = 0;
}
