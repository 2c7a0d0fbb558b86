/*
 * NAME
 *	diag - status names and caller-owned diagnostics
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "diag.h"

const char *
tp_strerror(int status)
{
	/* No default: the compiler names any status left out here. */
	switch ((tp_status)status) {
	case TP_OK:
		return "success";
	case TP_ENOMEM:
		return "out of memory";
	case TP_EIO:
		return "input/output error";
	case TP_ESYNTAX:
		return "syntax error";
	case TP_EINVALID:
		return "invalid value";
	case TP_ENOTFOUND:
		return "not found";
	case TP_EDB:
		return "database error";
	case TP_ECONFIG:
		return "configuration error";
	case TP_ECONNECT:
		return "connection failed";
	case TP_ETIMEOUT:
		return "timed out";
	case TP_EPROTOCOL:
		return "SMTP protocol error";
	case TP_ETLS:
		return "TLS error";
	case TP_EDNS:
		return "name resolution failed";
	case TP_ELIMIT:
		return "size limit exceeded";
	case TP_EUNSUPPORTED:
		return "not supported";
	case TP_EUSAGE:
		return "bad argument";
	case TP_ECHANGED:
		return "changed since it was read";
	case TP_STATUS_LAST:
		break;
	}
	return "unknown status";
}

void
tp_diag_clear(tp_diag *diag)
{
	if (diag == NULL)
		return;
	diag->status = TP_OK;
	diag->line = 0;
	diag->file[0] = '\0';
	diag->message[0] = '\0';
}

const char *
tp_diag_format(const tp_diag *diag, char *buf, size_t size)
{
	if (size == 0)
		return buf;
	if (diag == NULL) {
		buf[0] = '\0';
		return buf;
	}
	const char *msg = diag->message[0] ? diag->message
					   : tp_strerror(diag->status);
	if (diag->file[0] && diag->line)
		snprintf(buf, size, "%s:%lu: %s", diag->file, diag->line, msg);
	else if (diag->file[0])
		snprintf(buf, size, "%s: %s", diag->file, msg);
	else
		snprintf(buf, size, "%s", msg);
	return buf;
}

static void diag_vset(tp_diag *diag, int status, const char *file,
		      unsigned long line, const char *fmt, va_list ap)
	TP_PRINTF(5, 0);

static void
diag_vset(tp_diag *diag, int status, const char *file, unsigned long line,
	  const char *fmt, va_list ap)
{
	diag->status = status;
	diag->line = line;
	snprintf(diag->file, sizeof(diag->file), "%s", file ? file : "");
	vsnprintf(diag->message, sizeof(diag->message), fmt, ap);
}

int
tp__diag_set(tp_diag *diag, int status, const char *file, unsigned long line,
	     const char *fmt, ...)
{
	va_list ap;

	if (diag == NULL)
		return status;
	va_start(ap, fmt);
	diag_vset(diag, status, file, line, fmt, ap);
	va_end(ap);
	return status;
}

int
tp__diag_errno(tp_diag *diag, int status, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	if (diag == NULL)
		return status;
	va_start(ap, fmt);
	diag_vset(diag, status, NULL, 0, fmt, ap);
	va_end(ap);
	len = strlen(diag->message);
	if (len < sizeof(diag->message))
		snprintf(diag->message + len, sizeof(diag->message) - len,
			 ": %s", strerror(errnum));
	return status;
}
