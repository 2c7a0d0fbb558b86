/*
 * NAME
 *	diag - fill a caller's tp_diag (internal)
 * DESCRIPTION
 *	tp__diag_set() records status, file (may be NULL), line (0: none)
 *	and a printf-style message in diag (which may be NULL) and returns
 *	status, so callers can write "return tp__diag_set(...)".
 *	tp__diag_errno() records a message with no file prefix and appends
 *	": strerror(errnum)", the Postfix way: the object is named inside the
 *	sentence ("error writing FILE: No space left on device").
 */
#ifndef TP_DIAG_INTERNAL_H
#define TP_DIAG_INTERNAL_H

#include "tlspolicy/common.h"

#define TP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

int tp__diag_set(tp_diag *diag, int status, const char *file,
		 unsigned long line, const char *fmt, ...) TP_PRINTF(5, 6);
int tp__diag_errno(tp_diag *diag, int status, int errnum, const char *fmt,
		   ...) TP_PRINTF(4, 5);

#endif
