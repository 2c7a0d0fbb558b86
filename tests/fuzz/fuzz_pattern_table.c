/*
 * Fuzz target for regexp: and pcre: tables (the parser of pattern.c): the
 * first byte picks the kind (bit 0) and Postfix's no-substitution mode
 * (bit 1), the rest is the table. Any bytes compile
 * (bad rules are skipped with a warning, as Postfix skips them), and
 * matching keys, fixed ones and the words of the input itself, ends with
 * an answer that is a C string and a line inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void
ask(tp__pattern_table *t, const char *key, size_t lines)
{
	tp_buf value = TP_BUF_INIT;
	unsigned long line = 0;

	if (tp__pattern_match(t, key, &value, &line) == 1) {
		sink += strlen(value.ptr);
		if (line == 0 || line > lines)
			abort();
	}
	tp_buf_dispose(&value);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = {
		"example.com", "[127.0.0.2]:25", "", "a", "MX1.EXAMPLE.COM",
		".example.com", "x.in.test",
	};
	tp__pattern_table *t;
	const char *text;
	size_t lines = 1;

	if (size < 1)
		return 0;
	/*
	 * glibc's regcomp() takes memory exponential in stacked repetition
	 * operators ("a+++++..."), in Postfix as here: that is glibc's to
	 * fix, and a table author's own foot; such inputs are not tested.
	 */
	for (size_t i = 0, run = 0; i < size; i++) {
		run = strchr("+*?{", data[i]) && data[i] ? run + 1 : 0;
		if (run >= 3)
			return 0;
	}
	text = (const char *)data + 1;
	size--;
	for (size_t i = 0; i < size; i++)
		lines += text[i] == '\n';
	if (tp__pattern_parse(&t, data[0] & 1 ? TP__PATTERN_PCRE : TP__PATTERN_REGEXP,
			      data[0] & 2 ? TP__PATTERN_NO_REGSUB : 0, "fuzz", text, size) != 0)
		return 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		ask(t, keys[i], lines);
	/* Words of the input as keys: they reach the rules that name them. */
	for (size_t i = 0; i < size;) {
		char key[64];
		size_t n = 0;

		while (i + n < size && n < sizeof(key) - 1 && text[i + n] != '\n'
		       && text[i + n] != ' ' && text[i + n] != '\0')
			n++;
		memcpy(key, text + i, n);
		key[n] = 0;
		ask(t, key, lines);
		i += n + 1;
	}
	for (size_t i = 0; i < tp__pattern_warning_count(t); i++)
		sink += strlen(tp__pattern_warning_at(t, i));
	tp__pattern_free(t);
	return 0;
}
