/*
 * NAME
 *	buf - growable buffers and string lists (internal)
 * DESCRIPTION
 *	tp__buf_put*() append to a tp_buf, keeping it NUL-terminated; they
 *	return 0 or TP_ENOMEM (the buffer is unchanged then).
 *	tp__buf_truncate() shortens it; tp__buf_detach() hands the storage
 *	to the caller (free() it) and leaves the buffer empty.
 *	tp__strarray_push() appends a copy of s; TP_ENOMEM on failure.
 *	tp__huge_pages() asks for 2 MB pages for a large array about to be
 *	written whole (a hint; arrays under 4 MB are left alone).
 */
#ifndef TP_BUF_INTERNAL_H
#define TP_BUF_INTERNAL_H

#include <stddef.h>

#include "diag.h"
#include "tlspolicy/common.h"

int tp__buf_grow(tp_buf *buf, size_t extra);
void tp__huge_pages(void *p, size_t n);
int tp__buf_put(tp_buf *buf, const void *data, size_t len);
int tp__buf_puts(tp_buf *buf, const char *s);
int tp__buf_putc(tp_buf *buf, char c);
int tp__buf_printf(tp_buf *buf, const char *fmt, ...) TP_PRINTF(2, 3);
void tp__buf_truncate(tp_buf *buf, size_t len);
char *tp__buf_detach(tp_buf *buf);

int tp__strarray_push(tp_strarray *array, const char *s);
/*
 * Postfix's mystrtokq(): the next token of *src separated by characters
 * of sep, a "{...}" group kept whole (nested); NUL-terminates it in place
 * and advances *src. NULL at the end.
 */
char *tp__strtokq(char **src, const char *sep);

#endif
