/*
 * NAME
 *	pattern - regexp: and pcre: tables as Postfix reads them (internal)
 * DESCRIPTION
 *	tp__pattern_parse() compiles the text of a regexp_table(5) or
 *	pcre_table(5) file the way Postfix's dict_regexp.c and dict_pcre.c
 *	do: logical lines as readllines() makes them (continuation lines,
 *	comments), trailing whitespace trimmed, then per line a match rule
 *	(/pattern/flags result, with "!" negation and, for regexp, a second
 *	"!/pattern/"), "if /pattern/" or "endif". A rule Postfix would skip
 *	(a pattern that does not compile, an unknown flag, a bad $number) is
 *	skipped here too and recorded as a warning in Postfix's words
 *	("regexp map NAME, line N: ..."); so is an endif without if. name
 *	is the map's file, for warnings. Only TP_ENOMEM fails; the input is
 *	any bytes (a NUL ends its logical line, as in Postfix).
 *
 *	regexp: POSIX regcomp() with REG_EXTENDED | REG_ICASE toggled by the
 *	flags i, x (and m: REG_NEWLINE); pcre: libpcre2-8 with
 *	PCRE2_CASELESS | PCRE2_DOTALL toggled by i, s and m x A E U (X is
 *	ignored), as Debian's postfix-pcre (PCRE2) builds them.
 *
 *	flags: TP__PATTERN_NO_REGSUB is Postfix's DICT_FLAG_NO_REGSUB, which
 *	skips (with a warning) every rule whose result has a $number.
 *
 *	tp__pattern_match() runs key through the rules as the lookup does:
 *	1 and the result (with $1... substituted) in value, and the rule's
 *	line in *line, when a rule answers; 0 when none does (including an
 *	"if" that fails and has no "endif"). TP_ENOMEM.
 *
 *	tp__pattern_warning_count()/_at() give the warnings of the parse.
 */
#ifndef TP_PATTERN_H
#define TP_PATTERN_H

#include <stddef.h>

#include "tlspolicy/common.h"

typedef enum tp__pattern_kind {
	TP__PATTERN_REGEXP,
	TP__PATTERN_PCRE
} tp__pattern_kind;

#define TP__PATTERN_NO_REGSUB 1u

typedef struct tp__pattern_table tp__pattern_table;

int tp__pattern_parse(tp__pattern_table **out, tp__pattern_kind kind,
		      unsigned flags, const char *name, const char *text,
		      size_t len);
int tp__pattern_match(tp__pattern_table *table, const char *key,
		      tp_buf *value, unsigned long *line);
size_t tp__pattern_warning_count(const tp__pattern_table *table);
const char *tp__pattern_warning_at(const tp__pattern_table *table, size_t i);
void tp__pattern_free(tp__pattern_table *table);

#endif
