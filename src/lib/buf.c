/*
 * NAME
 *	buf - growable buffers and string lists
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"

void
tp_buf_dispose(tp_buf *buf)
{
	if (buf == NULL)
		return;
	free(buf->ptr);
	buf->ptr = NULL;
	buf->size = buf->asize = 0;
}

int
tp__buf_grow(tp_buf *buf, size_t extra)
{
	size_t need, asize;
	char *ptr;

	if (extra > SIZE_MAX - buf->size - 1)
		return TP_ENOMEM;
	need = buf->size + extra + 1;
	if (need <= buf->asize)
		return TP_OK;
	asize = buf->asize ? buf->asize : 64;
	while (asize < need)
		asize = asize > SIZE_MAX / 2 ? need : asize * 2;
	ptr = realloc(buf->ptr, asize);
	if (ptr == NULL)
		return TP_ENOMEM;
	buf->ptr = ptr;
	buf->asize = asize;
	/* A buffer that holds storage is always a valid C string. */
	buf->ptr[buf->size] = '\0';
	return TP_OK;
}

int
tp__buf_put(tp_buf *buf, const void *data, size_t len)
{
	if (tp__buf_grow(buf, len) != TP_OK)
		return TP_ENOMEM;
	if (len)
		memcpy(buf->ptr + buf->size, data, len);
	buf->size += len;
	buf->ptr[buf->size] = '\0';
	return TP_OK;
}

int
tp__buf_puts(tp_buf *buf, const char *s)
{
	return tp__buf_put(buf, s, strlen(s));
}

int
tp__buf_putc(tp_buf *buf, char c)
{
	return tp__buf_put(buf, &c, 1);
}

int
tp__buf_printf(tp_buf *buf, const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		return TP_ENOMEM;
	if (tp__buf_grow(buf, (size_t)len) != TP_OK)
		return TP_ENOMEM;
	va_start(ap, fmt);
	vsnprintf(buf->ptr + buf->size, (size_t)len + 1, fmt, ap);
	va_end(ap);
	buf->size += (size_t)len;
	return TP_OK;
}

void
tp__buf_truncate(tp_buf *buf, size_t len)
{
	if (buf->ptr == NULL || len >= buf->size)
		return;
	buf->size = len;
	buf->ptr[len] = '\0';
}

char *
tp__buf_detach(tp_buf *buf)
{
	char *ptr = buf->ptr;

	buf->ptr = NULL;
	buf->size = buf->asize = 0;
	return ptr;
}

void
tp_strarray_dispose(tp_strarray *array)
{
	if (array == NULL)
		return;
	for (size_t i = 0; i < array->count; i++)
		free(array->strings[i]);
	free(array->strings);
	array->strings = NULL;
	array->count = 0;
}

int
tp__strarray_push(tp_strarray *array, const char *s)
{
	char **strings;
	char *copy = strdup(s);

	if (copy == NULL)
		return TP_ENOMEM;
	strings = realloc(array->strings, (array->count + 1) * sizeof(*strings));
	if (strings == NULL) {
		free(copy);
		return TP_ENOMEM;
	}
	strings[array->count++] = copy;
	array->strings = strings;
	return TP_OK;
}

char *
tp__strtokq(char **src, const char *sep)
{
	char *cp = *src, *start = NULL;
	int level = 0;

	cp += strspn(cp, sep);
	if (*cp) {
		for (start = cp; *cp; cp++) {
			if (*cp == '{')
				level++;
			else if (level > 0 && *cp == '}')
				level--;
			else if (level == 0 && strchr(sep, *cp)) {
				*cp++ = 0;
				break;
			}
		}
	}
	*src = cp;
	return start;
}

/*
 * tp__huge_pages - fault a large array (a document's input, its line and
 * entry tables, the duplicate hash, a map's sort keys) in 2 MB pages
 * rather than 4 KB ones: page faults were a third of a large table's
 * load, and the arrays are written whole.
 * Only a hint. Arrays under 4 MB are left alone: madvise would split the
 * heap's mapping for little.
 */
void
tp__huge_pages(void *p_in, size_t n)
{
#ifdef MADV_HUGEPAGE
	char *p = p_in;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)p + n) & ~(page - 1);

	if (n >= ((size_t)4 << 20) && end > start)
		(void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
	(void)p_in;
	(void)n;
#endif
}
