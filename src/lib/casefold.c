/*
 * NAME
 *	casefold - key folding and UTF-8 checks the way Postfix does them
 * SUMMARY
 *	postmap folds every key before it stores it, and skips lines that are
 *	not UTF-8 when smtputf8_enable is on. A key folded differently from
 *	postmap is a key Postfix never finds, so this module follows
 *	Postfix 3.7's valid_utf8_string(), allascii(), lowercase() and
 *	casefold() (ICU) rule for rule.
 * DESCRIPTION
 *	See casefold.h.
 * DIAGNOSTICS
 *	TP_EINVALID for malformed UTF-8 when UTF-8 folding is requested,
 *	TP_ENOMEM, TP_ELIMIT for a key longer than ICU can take (2 GB).
 */
#include <stdint.h>
#include <string.h>

#include <unicode/ucasemap.h>
#include <unicode/utypes.h>

#include "buf.h"
#include "casefold.h"

/* Length of the well-formed UTF-8 sequence at cp (end excluded), or 0. */
static size_t
utf8_seq_len(const unsigned char *cp, const unsigned char *end)
{
	unsigned char c0 = *cp, lo = 0x80, hi = 0xbf;
	size_t tail;

	if (c0 <= 0x7f)
		return 1;
	if (c0 < 0xc2 || c0 > 0xf4)
		return 0;
	/* Second byte range excludes overlongs, surrogates, > U+10FFFF. */
	if (c0 <= 0xdf) {
		tail = 1;
	} else if (c0 <= 0xef) {
		tail = 2;
		if (c0 == 0xe0)
			lo = 0xa0;
		else if (c0 == 0xed)
			hi = 0x9f;
	} else {
		tail = 3;
		if (c0 == 0xf0)
			lo = 0x90;
		else if (c0 == 0xf4)
			hi = 0x8f;
	}
	if ((size_t)(end - cp) <= tail || cp[1] < lo || cp[1] > hi)
		return 0;
	for (size_t i = 2; i <= tail; i++)
		if ((cp[i] & 0xc0) != 0x80)
			return 0;
	return tail + 1;
}

void
tp__utf8_sanitize(char *s)
{
	unsigned char *in = (unsigned char *)s, *out = in;
	const unsigned char *end = in + strlen(s);

	while (in < end) {
		size_t n = utf8_seq_len(in, end);

		/* C0 controls, DEL, and C1 controls (U+0080..U+009F). */
		if (n == 0 || (n == 1 && (*in < 0x20 || *in == 0x7f)) ||
		    (n == 2 && in[0] == 0xc2 && in[1] < 0xa0)) {
			*out++ = '?';
			in += n ? n : 1;
			continue;
		}
		memmove(out, in, n);
		out += n;
		in += n;
	}
	*out = '\0';
}

int
tp__utf8_valid(const char *s, size_t len)
{
	const unsigned char *cp = (const unsigned char *)s;
	const unsigned char *end = cp + len;

	while (cp < end) {
		size_t n = utf8_seq_len(cp, end);

		if (n == 0)
			return 0;
		cp += n;
	}
	return 1;
}

int
tp__allascii(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '\0')
		return 0;
	/* Eight bytes at a time while none is a NUL or above 0x7f. */
	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		/* (b & 0x7f) + 0x7f has its top bit set when b & 0x7f is not 0. */
		if ((w & 0x8080808080808080u) != 0 ||
		    (((w & 0x7f7f7f7f7f7f7f7fu) + 0x7f7f7f7f7f7f7f7fu) &
		     0x8080808080808080u) != 0x8080808080808080u)
			break;
	}
	for (; i < len && s[i] != '\0'; i++)
		if ((unsigned char)s[i] > 0x7f)
			return 0;
	return 1;
}

static int
fold_ascii(tp_buf *out, const char *s, size_t len)
{
	size_t i, start = out->size;

	if (tp__buf_put(out, s, len) != TP_OK)
		return TP_ENOMEM;
	for (i = start; i < out->size; i++)
		if (out->ptr[i] >= 'A' && out->ptr[i] <= 'Z')
			out->ptr[i] = (char)(out->ptr[i] - 'A' + 'a');
	return TP_OK;
}

int
tp__fold_key(tp__folder *folder, tp_buf *out, const char *s, size_t len,
	     int utf8, int fold)
{
	UErrorCode err;
	int32_t need;
	size_t start = out->size, room;

	if (utf8 && !tp__allascii(s, len) && !tp__utf8_valid(s, len))
		return TP_EINVALID;
	if (!fold)
		return tp__buf_put(out, s, len);
	if (!utf8 || tp__allascii(s, len) || len == 0)
		return fold_ascii(out, s, len);
	if (len > INT32_MAX / 4)
		return TP_ELIMIT;
	if (folder->csm == NULL) {
		err = U_ZERO_ERROR;
		folder->csm = ucasemap_open("en_US", U_FOLD_CASE_DEFAULT, &err);
		if (U_FAILURE(err))
			return TP_ENOMEM;
	}
	/* Folding can grow a string (U+1E9E is 3 bytes, "ss" 2): ask ICU. */
	room = len + 16;
	for (;;) {
		if (tp__buf_grow(out, room) != TP_OK)
			return TP_ENOMEM;
		err = U_ZERO_ERROR;
		need = ucasemap_utf8FoldCase(folder->csm, out->ptr + start,
					     (int32_t)room, s, (int32_t)len,
					     &err);
		if (err == U_BUFFER_OVERFLOW_ERROR && need > 0 &&
		    (size_t)need > room) {
			room = (size_t)need + 1;
			continue;
		}
		break;
	}
	if (U_FAILURE(err) || need < 0)
		return TP_EINVALID;
	out->size = start + (size_t)need;
	out->ptr[out->size] = '\0';
	return TP_OK;
}

void
tp__folder_close(tp__folder *folder)
{
	if (folder != NULL && folder->csm != NULL) {
		ucasemap_close(folder->csm);
		folder->csm = NULL;
	}
}

void
tp__printable(char *s, int utf8)
{
	unsigned char *cp = (unsigned char *)s;
	unsigned char ch;

	for (; (ch = *cp) != '\0'; cp++) {
		if (ch >= 0x20 && ch < 0x7f)
			continue;
		/* Postfix's loose test: a lead byte and its tail bytes pass. */
		if (utf8 && ch >= 194 && ch <= 254 && cp[1] >= 128 &&
		    cp[1] < 192) {
			while (cp[1] >= 128 && cp[1] < 192)
				cp++;
			continue;
		}
		*cp = '?';
	}
}
