/*
 * NAME
 *	casefold - key folding and UTF-8 checks the way Postfix does them
 *	(internal)
 * DESCRIPTION
 *	tp__utf8_valid() checks RFC 3629 UTF-8 as Postfix's
 *	valid_utf8_string() does (no overlong forms, no surrogates, nothing
 *	above U+10FFFF; NUL bytes are valid).
 *
 *	tp__allascii() is Postfix's allascii(): true when the C string at s
 *	(at most len bytes, up to the first NUL) is non-empty and all ASCII.
 *	The "non-empty" part matters: postmap treats a line that starts with
 *	a NUL byte as "not all ASCII" and validates all of it.
 *
 *	tp__fold_key() appends to out the key s[0..len-1] folded as
 *	postmap folds keys: nothing when fold is 0 (but with utf8 the key
 *	must still be valid UTF-8); ASCII lower case when utf8 is 0 or the
 *	key is all ASCII; else full Unicode case folding with ICU's
 *	ucasemap_utf8FoldCase() for locale en_US and U_FOLD_CASE_DEFAULT, as
 *	Postfix's casefold() does. TP_EINVALID: utf8 set and s is not valid
 *	UTF-8; TP_ENOMEM. The folder caches the ICU case map; it needs no
 *	initialisation beyond TP__FOLDER_INIT, and tp__folder_close() frees it.
 *
 *	tp__printable() rewrites a message in place the way Postfix's
 *	msg_output() sanitises every log line (printable(3), replacement '?').
 *
 *	tp__utf8_sanitize() rewrites text from a server (banner, replies,
 *	certificate names) in place so that it is always valid UTF-8 and
 *	safe on a terminal: each well-formed UTF-8 sequence stays, unless it
 *	is a C0 or C1 control or DEL; every other byte becomes '?'. It
 *	never splits a sequence and never makes the text longer, so a
 *	Latin-1 banner reaches JSON output as "?" instead of failing it.
 */
#ifndef TP_CASEFOLD_INTERNAL_H
#define TP_CASEFOLD_INTERNAL_H

#include <stddef.h>

#include "tlspolicy/common.h"

typedef struct tp__folder {
	void *csm;		/* UCaseMap *, opened on first non-ASCII key */
} tp__folder;

#define TP__FOLDER_INIT { NULL }

int tp__utf8_valid(const char *s, size_t len);
int tp__allascii(const char *s, size_t len);
int tp__fold_key(tp__folder *folder, tp_buf *out, const char *s, size_t len,
		 int utf8, int fold);
void tp__folder_close(tp__folder *folder);
void tp__printable(char *s, int utf8);
void tp__utf8_sanitize(char *s);

#endif
