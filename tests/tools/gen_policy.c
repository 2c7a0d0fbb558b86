/*
 * gen_policy - awkward policy table sources for the postmap differential
 * test and the rebuild benchmark.
 *
 * gen_policy awkward SEED N DIR   writes DIR/0 .. DIR/N-1, each a random mix
 *                                 of everything postmap's reader has rules
 *                                 for (continuations, comments inside them,
 *                                 quoting, CRLF, NUL, invalid UTF-8, case
 *                                 folding, duplicates, 100 KB lines, ...)
 * gen_policy bench SEED N FILE    writes a realistic N-entry table: nexthop
 *                                 and domain keys, fingerprint pins, levels.
 *
 * Same seed, same bytes: a failure can be replayed.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint32_t
rnd(void)
{
	/* xorshift64*: small, seedable, good enough to pick test cases. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static uint32_t
below(uint32_t n)
{
	return n ? rnd() % n : 0;
}

static const char *
pick(const char *const *list, size_t n)
{
	return list[below((uint32_t)n)];
}

#define PICK(list) pick(list, sizeof(list) / sizeof(list[0]))

static const char *const domains[] = {
	"example.com", "Example.COM", "EXAMPLE.com", ".example.org", "mx.example.net",
	"b\xc3\xbc" "cher.de", "B\xc3\x9c" "CHER.DE", "stra\xc3\x9f" "e.de",
	"STRASSE.DE", "\xce\xa3\xce\xb9\xcf\x83.gr", "\xcf\x83\xce\xb9\xcf\x82.gr",
	"\xc4\xb0stanbul.tr", "istanbul.tr", "\xe2\x84\xaa" "elvin.test",
	"kelvin.test", "\xef\xac\x81" "le.test", "FILE.test", "[192.0.2.1]:25",
	"[MX.Example.com]:587", "mx1.example.com:25", "[2001:db8::1]:25",
	"a", "A", "\"quoted key\"", "\"Quoted\\\"Esc\"", "back\\ slash",
	"colon:", "x:", "\"unbalanced", "caf\xc3\xa9.fr", "CAF\xc3\x89.FR",
	"\xe6\x97\xa5\xe6\x9c\xac.jp", "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x9c\xd0\x95\xd0\xa0.ru",
	"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.ru",
};

static const char *const values[] = {
	"may", "encrypt", "secure", "verify", "none", "dane", "dane-only",
	"fingerprint match=AA:BB:CC:DD", "secure match=nexthop:dot-nexthop",
	"encrypt protocols=!SSLv2,!SSLv3 ciphers=high", "may # not a comment",
	"fingerprint\tmatch=3D:4F:AA|11:22", "verify match=hostname tafile=/x",
	"Fingerprint MATCH=aabbcc", "value with \"quotes\" and \\backslash",
	/* Two literals: "\x9cBER" would be one (too large) hex escape. */
	("caf\xc3\xa9 \xc3\x9c" "BER"), "#hash first", "x",
};

static const char *const spaces[] = { " ", "\t", "  ", " \t ", "\t\t" };
static const char *const eols[] = { "\n", "\n", "\n", "\r\n", "\r\n", "\r\r\n", " \n", "\t\r\n" };

static void
put_eol(FILE *fp)
{
	fputs(PICK(eols), fp);
}

static void
put_junk(FILE *fp)
{
	switch (below(6)) {
	case 0:
		fputc('\0', fp);
		break;
	case 1:
		fputs("\xff\xfe", fp);	/* never valid UTF-8 */
		break;
	case 2:
		fputs("\xc3", fp);	/* truncated sequence */
		break;
	case 3:
		fputs("\xed\xa0\x80", fp);	/* surrogate */
		break;
	case 4:
		fputc('\r', fp);
		break;
	default:
		fputs("\xc0\xaf", fp);	/* overlong */
		break;
	}
}

static void
put_long(FILE *fp)
{
	size_t n = 100000 + below(60000);

	for (size_t i = 0; i < n; i++)
		fputc("0123456789ABCDEF:"[below(17)], fp);
}

static void
put_entry(FILE *fp)
{
	fputs(PICK(domains), fp);
	if (below(10) == 0)
		put_junk(fp);
	if (below(12) == 0) {
		/* no value at all, or only whitespace */
		if (below(2))
			fputs(PICK(spaces), fp);
		put_eol(fp);
		return;
	}
	fputs(PICK(spaces), fp);
	fputs(PICK(values), fp);
	if (below(12) == 0)
		put_junk(fp);
	if (below(40) == 0) {
		fputs(" match=", fp);
		put_long(fp);
	}
	/* continuation lines, maybe with comments and blank lines inside */
	for (uint32_t k = below(4) == 0 ? 1 + below(3) : 0; k > 0; k--) {
		if (below(3) == 0) {
			put_eol(fp);
			fputs(below(2) ? "#" : "  # ", fp);
			fputs("comment inside", fp);
		}
		if (below(5) == 0) {
			put_eol(fp);
			fputs(below(2) ? "" : " \t", fp);	/* blank line in between */
		}
		put_eol(fp);
		fputs(PICK(spaces), fp);
		fputs(below(2) ? "match=11:22:33" : "protocols=>=TLSv1.2", fp);
		if (below(6) == 0)
			fputs(PICK(spaces), fp);
	}
	if (below(8) == 0)
		fputs(PICK(spaces), fp);	/* trailing whitespace */
	put_eol(fp);
}

static void
gen_awkward(FILE *fp, uint32_t lines)
{
	if (below(6) == 0) {
		/* a first line that starts with whitespace */
		fputs(PICK(spaces), fp);
		put_entry(fp);
	}
	for (uint32_t i = 0; i < lines; i++) {
		switch (below(14)) {
		case 0:
			fputs(below(2) ? "# comment" : "   # indented comment", fp);
			put_eol(fp);
			break;
		case 1:
			if (below(2))
				fputs(PICK(spaces), fp);
			put_eol(fp);
			break;
		case 2:
			put_junk(fp);
			put_entry(fp);
			break;
		case 3:
			/* a continuation line out of nowhere, after a comment */
			fputs("#c\n", fp);
			fputs(PICK(spaces), fp);
			fputs("orphan continuation", fp);
			put_eol(fp);
			break;
		case 4:
			fputs("# tlspolicy: from=mx1.example.com:25 pin=cert\n", fp);
			put_entry(fp);
			break;
		default:
			put_entry(fp);
			break;
		}
	}
	if (below(4) == 0)
		fputs(PICK(domains), fp);	/* no final newline */
	if (below(4) == 0)
		fputs(" may", fp);
}

static void
hexpin(FILE *fp, int bytes)
{
	for (int i = 0; i < bytes; i++)
		fprintf(fp, "%s%02X", i ? ":" : "", (unsigned)below(256));
}

static void
gen_bench(FILE *fp, uint32_t n)
{
	fputs("# TLS policy for partner domains and relays\n"
	      "# tlspolicy manages fingerprint pins below\n\n", fp);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t kind = below(10);

		if (below(20) == 0)
			fprintf(fp, "# partner %" PRIu32 "\n", i);
		if (kind < 4)
			fprintf(fp, "[mx%" PRIu32 ".example%" PRIu32 ".com]:25", i, i % 977);
		else if (kind < 5)
			fprintf(fp, "mail%" PRIu32 ".partner%" PRIu32 ".net:587", i, i % 331);
		else if (kind < 6)
			fprintf(fp, ".sub%" PRIu32 ".example.org", i);
		else
			fprintf(fp, "domain%" PRIu32 ".example.%s", i,
				(const char *[]){ "com", "net", "org", "de", "fr" }[i % 5]);
		fputs("\t", fp);
		if (kind < 5) {
			fputs("fingerprint match=", fp);
			hexpin(fp, 32);
			if (below(3) == 0) {
				fputs("\n    match=", fp);
				hexpin(fp, 32);
			}
		} else {
			fputs((const char *[]){ "secure match=nexthop:dot-nexthop", "encrypt",
						"verify", "may", "dane",
						"encrypt protocols=>=TLSv1.2" }[below(6)], fp);
		}
		fputc('\n', fp);
	}
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "awkward") == 0) {
		uint32_t n = (uint32_t)strtoul(argv[3], NULL, 10);

		for (uint32_t i = 0; i < n; i++) {
			char path[4096];
			FILE *fp;

			rng_state = strtoull(argv[2], NULL, 10) * 1000003ULL + i + 1;
			snprintf(path, sizeof(path), "%s/%" PRIu32, argv[4], i);
			if ((fp = fopen(path, "wb")) == NULL) {
				perror(path);
				return 1;
			}
			gen_awkward(fp, 1 + below(i % 10 == 0 ? 400 : 40));
			if (fclose(fp) != 0) {
				perror(path);
				return 1;
			}
		}
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "bench") == 0) {
		FILE *fp = fopen(argv[4], "wb");

		if (fp == NULL) {
			perror(argv[4]);
			return 1;
		}
		rng_state = strtoull(argv[2], NULL, 10) + 1;
		gen_bench(fp, (uint32_t)strtoul(argv[3], NULL, 10));
		return fclose(fp) == 0 ? 0 : 1;
	}
	fprintf(stderr, "usage: gen_policy awkward SEED N DIR | bench SEED N FILE\n");
	return 2;
}
