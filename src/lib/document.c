/*
 * NAME
 *	document - lossless model of a policy source file
 * SUMMARY
 *	Keeps the bytes of a policy table source as they are, a table of its
 *	physical lines, and the logical records postmap(1) makes of them.
 * DESCRIPTION
 *	The public contract is in include/tlspolicy/document.h; this block
 *	says how it is kept.
 *
 *	The document owns one copy of the input bytes, read into a buffer
 *	of the file's size and parsed in place. Parsing splits them into
 *	physical lines (blank, comment, start of a logical line,
 *	continuation), groups lines into logical records the way Postfix
 *	3.7's readllines() does (comment and blank lines inside a continued
 *	record are part of its span but not of its text), and runs postmap's
 *	per-record rules: whitespace-first record, non-UTF-8 check, key
 *	scan with quotes and backslashes, value trimming, "key whitespace
 *	value", alias-file hint, case folding, first duplicate wins.
 *
 *	Memory: a record on one physical line (nearly all of them) costs no
 *	copy. Its raw key and value are byte ranges of the input, made C
 *	strings by overwriting the byte after each (a separator, trailing
 *	whitespace, the newline, or the buffer's own final NUL) with a NUL;
 *	the entry keeps the byte it replaced. The key shares the raw key's
 *	bytes unless folding changes it. tp_doc_serialize() puts the saved
 *	bytes back in its copy; an edit puts them back in the buffer first
 *	(and takes them out again if it fails), so the edit code always sees
 *	the file's bytes. Only what is not a contiguous range of the input
 *	lives in the arena: the value of a continued record, a key that
 *	spans lines, a folded key, annotation hosts. Offsets and line
 *	numbers are 32 bits, so an input of 4 GB or more is refused
 *	(TP_ELIMIT) rather than mis-indexed.
 *
 *	Every edit computes a list of byte replacements inside the entry's
 *	span (and its annotation line), builds new bytes, parses them into a
 *	fresh document and swaps it in only when the result still has the
 *	entry the caller meant: the model can never drift from the bytes,
 *	and an argument that would not survive the file format is refused
 *	(TP_EUSAGE) with the document untouched.
 *
 *	Tokens of a value are split on ", \t\r\n" like Postfix's
 *	smtp_tls_policy.c, and additionally at physical line boundaries so a
 *	token is always one contiguous byte range (a continuation line that
 *	starts with \v or \f would otherwise glue two tokens across lines).
 *
 *	tp_doc_serialize() and tp_key_fold() overwrite the caller's tp_buf
 *	(they do not append). A line "# tlspolicy: ..." directly above an
 *	entry is its annotation even when it names no field we know; it is
 *	what tp_doc_set_annotation() replaces and tp_doc_remove() removes.
 *
 *	A scan (tp__doc_scan(), for rebuild) runs the same per-record rules
 *	and warnings over the input without the line table, entries or
 *	annotations: continued records are joined in place, and each record
 *	is 16 bytes of offsets. Its bytes are not the file's afterwards, so
 *	a scanned document refuses to be serialized or edited.
 *
 *	Warnings carry postmap's text after Postfix's printable() filter,
 *	which turns control bytes into '?' (and non-ASCII too, unless UTF-8
 *	is enabled).
 * DIAGNOSTICS
 *	tp_doc_parse() fails with TP_ENOMEM, or TP_ELIMIT for an input of
 *	4 GB or more; edits with TP_EUSAGE, TP_ENOMEM or TP_ELIMIT;
 *	tp_doc_load() adds TP_ENOTFOUND and TP_EIO with the file name and
 *	errno text in the tp_diag.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tlspolicy/document.h"

#include "buf.h"
#include "casefold.h"
#include "doc_internal.h"
#include "diag.h"
#include "doc_internal.h"

#define NONE SIZE_MAX
#define NONE32 UINT32_MAX

/* Inputs must be shorter than this: offsets, line and entry indexes fit. */
#define DOC_MAX_BYTES ((size_t)UINT32_MAX - 1)

enum line_kind { L_BLANK, L_COMMENT, L_START, L_CONT };

struct line {
	uint32_t off;		/* first byte */
	uint32_t len;		/* content bytes, without the '\n' */
	unsigned char nl;	/* 1: terminated by '\n' */
	unsigned char kind;
};

/* ent flags */
#define E_DUP		0x01	/* an earlier entry has the same key */
#define E_KEY_OWN	0x02	/* key in the arena; else it is the raw key */
#define E_RAW_ARENA	0x04	/* raw key in the arena; else in data */
#define E_VAL_ARENA	0x08	/* value in the arena; else in data */
#define E_DEAD		0x10	/* removed (top document only) */
#define E_SUB		0x20	/* edited or appended: its bytes are a sub-document */

struct ent {
	uint32_t first, last;	/* line indexes of the logical record */
	uint32_t key, key_len;	/* arena offset (E_KEY_OWN) */
	uint32_t raw, raw_len;	/* data or arena offset */
	uint32_t val, val_len;	/* data or arena offset */
	uint32_t ann;		/* annotation: index in anns + 1, 0 none */
	unsigned char flags;
	unsigned char raw_end;	/* data bytes the terminating NULs replaced */
	unsigned char val_end;
};

/* The annotation comment on the line above an entry. */
struct annot {
	uint32_t kind;		/* pin kind arena offset, or NONE32 */
	uint32_t from_count;
	size_t from_first;	/* into host_offs / hosts */
	uint32_t key_count;	/* keys=, in host_offs / hosts too */
	size_t key_first;
};

/* A scanned record (tp__doc_scan()): offsets into data, or the arena. */
struct scanned {
	uint32_t key, key_len;	/* key_len & SCAN_KEY_ARENA: in the arena */
	uint32_t val, val_len;
};

struct warn {
	unsigned long line;
	size_t msg;		/* offset in wtext */
};

struct tp_doc {
	tp_buf data;
	int patched;		/* entry terminators are NULs in data */
	char *name;
	tp_doc_opts opts;
	struct line *lines;
	size_t nlines;
	struct ent *ents;
	size_t nents, aents;
	struct annot *anns;
	size_t nanns, aanns;
	struct warn *warns;
	size_t nwarns, awarns;
	tp_doc_warning *pub_warns;
	tp_buf wtext;		/* warning messages */
	uint32_t *host_offs;
	size_t nhosts, ahosts;
	const char **hosts;
	tp_buf arena;
	uint64_t *hash;		/* parse only: hash tag << 32 | entry index + 1; 0 empty */
	size_t hash_size;
	tp_buf scratch;		/* logical text of a continued record */
	tp__folder folder;

	/*
	 * Edits (see "Edits" above): entries are slots, ents[0..nbase) parsed
	 * from data, later ones appended. An edited or appended slot's bytes
	 * live in a sub-document of their own (subs, sorted by slot).
	 */
	struct sub *subs;
	size_t nsubs, asubs;
	size_t nbase;		/* slots parsed from data */
	size_t ndead;		/* removed slots */
	size_t ndup;		/* live slots with E_DUP */
	int32_t *lfen;		/* Fenwick tree: region line-count change per slot */
	int32_t *afen;		/* Fenwick tree: 1 per live slot (after a removal) */
	size_t fen_cap;		/* slots both trees have room for */
	uint32_t *kidx;		/* folded key -> first live slot + 1, 0 empty */
	size_t kidx_size, kidx_used, nlookups;
	const char *tail_eol;	/* written after data, before appended slots */
	const char *eol_above;	/* a sub-document: the terminator above it */
	tp_doc *wdoc;		/* warnings of an edited document, on demand */
	tp_buf dirty;		/* folded keys whose record may have changed */
	size_t ndirty;
	int whole;		/* tests: every edit on the whole document */
	int is_scan;		/* tp__doc_scan(): records only, no lines or entries */
	struct scanned *scanned;
	size_t nscanned;
};

struct sub {
	size_t slot;
	tp_doc *doc;
};

static int
is_space(unsigned char c)
{
	/* Postfix's ISSPACE() in any locale postmap runs in. */
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static int
is_sep(unsigned char c)
{
	/* CHARS_COMMA_SP, what smtp_tls_policy.c splits a value on. */
	return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *line_eol(const tp_doc *doc, size_t l);

static int
grow_array(void **ptr, size_t *alloc, size_t need, size_t elem)
{
	size_t n = *alloc ? *alloc : 16;
	void *p;

	if (need <= *alloc)
		return TP_OK;
	while (n < need) {
		if (n > SIZE_MAX / 2 / elem)
			return TP_ENOMEM;
		n *= 2;
	}
	p = realloc(*ptr, n * elem);
	if (p == NULL)
		return TP_ENOMEM;
	*ptr = p;
	*alloc = n;
	return TP_OK;
}

/* arena_check - entry offsets are 32 bits: TP_ELIMIT past that */

static int
arena_check(const tp_doc *doc)
{
	return doc->arena.size >= NONE32 ? TP_ELIMIT : TP_OK;
}

/* arena_put - store a NUL-terminated copy, return its offset */

static int
arena_put(tp_doc *doc, const char *s, size_t len, uint32_t *off)
{
	*off = (uint32_t)doc->arena.size;
	if (tp__buf_put(&doc->arena, s, len) != TP_OK ||
	    tp__buf_putc(&doc->arena, '\0') != TP_OK)
		return TP_ENOMEM;
	return arena_check(doc);
}

static const char *
ent_raw(const tp_doc *doc, const struct ent *e)
{
	return (e->flags & E_RAW_ARENA ? doc->arena.ptr : doc->data.ptr) +
	       e->raw;
}

static const char *
ent_key(const tp_doc *doc, const struct ent *e)
{
	return e->flags & E_KEY_OWN ? doc->arena.ptr + e->key :
	    ent_raw(doc, e);
}

static const char *
ent_val(const tp_doc *doc, const struct ent *e)
{
	return (e->flags & E_VAL_ARENA ? doc->arena.ptr : doc->data.ptr) +
	       e->val;
}

static size_t
ent_key_len(const struct ent *e)
{
	return e->flags & E_KEY_OWN ? e->key_len : e->raw_len;
}

/* ent_ann_line - the annotation's line index, or NONE */

static size_t
ent_ann_line(const struct ent *e)
{
	return e->ann ? (size_t)e->first - 1 : NONE;
}

static const struct annot *
ent_annot(const tp_doc *doc, const struct ent *e)
{
	return e->ann ? doc->anns + e->ann - 1 : NULL;
}

/*
 * doc_patch - on: the NULs that end in-place raw keys and values; off:
 * the file's bytes back, for code that reads them (the edits).
 */
static void
doc_patch(tp_doc *doc, int on)
{
	char *d = doc->data.ptr;
	size_t i;

	if (doc->patched == on)
		return;
	for (i = 0; i < doc->nents; i++) {
		const struct ent *e = doc->ents + i;

		if (!(e->flags & E_RAW_ARENA))
			d[e->raw + e->raw_len] = on ? '\0' : (char)e->raw_end;
		if (!(e->flags & E_VAL_ARENA))
			d[e->val + e->val_len] = on ? '\0' : (char)e->val_end;
	}
	doc->patched = on;
}

static int
add_warning(tp_doc *doc, unsigned long line, const char *fmt, ...)
	TP_PRINTF(3, 4);

static int
add_warning(tp_doc *doc, unsigned long line, const char *fmt, ...)
{
	va_list ap;
	int len;
	size_t off = doc->wtext.size;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0 || tp__buf_grow(&doc->wtext, (size_t)len) != TP_OK ||
	    grow_array((void **)&doc->warns, &doc->awarns, doc->nwarns + 1,
		       sizeof(*doc->warns)) != TP_OK)
		return TP_ENOMEM;
	va_start(ap, fmt);
	(void)vsnprintf(doc->wtext.ptr + off, (size_t)len + 1, fmt, ap);
	va_end(ap);
	tp__printable(doc->wtext.ptr + off, doc->opts.utf8);
	/* Keep it a C string even if the text held a NUL: as before. */
	doc->wtext.size = off + strlen(doc->wtext.ptr + off);
	if (tp__buf_putc(&doc->wtext, '\0') != TP_OK)
		return TP_ENOMEM;
	doc->warns[doc->nwarns].line = line;
	doc->warns[doc->nwarns].msg = off;
	doc->nwarns++;
	return TP_OK;
}

/* line_kind - what the physical line p[0..len-1] is to readllines() */

static enum line_kind
line_kind(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && is_space((unsigned char)p[i]); i++)
		;
	if (i == len)
		return L_BLANK;
	if (p[i] == '#')
		return L_COMMENT;
	return i > 0 ? L_CONT : L_START;
}

/* count_lines - the physical lines of p[0..end-p-1], a last one unterminated */

static size_t
count_lines(const char *p, const char *end)
{
	const char *nl;
	size_t n = 0;

	for (; p < end; n++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		p = nl ? nl + 1 : end;
	}
	return n;
}

/* split_lines - the physical line table; *nstart: L_START lines */
static int
split_lines(tp_doc *doc, size_t *nstart)
{
	const char *base = doc->data.ptr, *p = base, *end = p + doc->data.size;
	const char *nl;
	struct line *ln;
	size_t n;

	/* Count first: the table is allocated once, at its exact size. */
	n = count_lines(base, end);
	*nstart = 0;
	if (n == 0)
		return TP_OK;
	if ((doc->lines = malloc(n * sizeof(*doc->lines))) == NULL)
		return TP_ENOMEM;
	tp__huge_pages((char *)doc->lines, n * sizeof(*doc->lines));
	for (p = base; p < end;) {
		ln = doc->lines + doc->nlines++;
		nl = memchr(p, '\n', (size_t)(end - p));
		ln->off = (uint32_t)(p - base);
		ln->len = (uint32_t)((nl ? nl : end) - p);
		ln->nl = nl != NULL;
		ln->kind = (unsigned char)line_kind(p, ln->len);
		*nstart += ln->kind == L_START;
		p = nl ? nl + 1 : end;
	}
	return TP_OK;
}

static const char *
line_ptr(const tp_doc *doc, size_t i)
{
	return doc->data.ptr + doc->lines[i].off;
}

/* record_text - the logical text of lines first..last, as readllines() */

static int
record_text(const tp_doc *doc, size_t first, size_t last, tp_buf *out)
{
	size_t i;

	tp__buf_truncate(out, 0);
	for (i = first; i <= last; i++) {
		if (doc->lines[i].kind != L_START &&
		    doc->lines[i].kind != L_CONT)
			continue;
		if (tp__buf_put(out, line_ptr(doc, i), doc->lines[i].len) !=
		    TP_OK)
			return TP_ENOMEM;
	}
	/* An empty tp_buf has no storage; the key scan wants a C string. */
	return tp__buf_put(out, "", 0);
}

/*
 * key_scan - postmap's key scan over the C string in text[0..len-1]
 * (it ends at len or at a NUL): the offset where the key ends, or NONE
 * for an unbalanced quote.
 */
static size_t
key_scan(const char *text, size_t len)
{
	const char *cp, *end = text + len;
	int in_quotes = 0;

	for (cp = text; cp < end && *cp; cp++) {
		if (*cp == '\\') {
			if (++cp >= end || *cp == '\0')
				break;
		} else if (is_space((unsigned char)*cp)) {
			if (!in_quotes)
				break;
		} else if (*cp == '"') {
			in_quotes = !in_quotes;
		}
	}
	return in_quotes ? NONE : (size_t)(cp - text);
}

/*
 * value_range - postmap's value: [*vs, *ve) of the C string in
 * text[0..len-1] after a key of klen
 */
static void
value_range(const char *text, size_t len, size_t klen, size_t *vs,
	    size_t *ve)
{
	size_t s = klen, e;

	if (s < len && text[s] != '\0')
		s++;
	while (s < len && is_space((unsigned char)text[s]))
		s++;
	e = s + strnlen(text + s, len - s);
	while (e > s && is_space((unsigned char)text[e - 1]))
		e--;
	*vs = s;
	*ve = e;
}

static size_t
hash_bytes(const char *s, size_t len)
{
	size_t h = 14695981039346656037u & SIZE_MAX;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= (size_t)1099511628211u;
	}
	/*
	 * FNV's low bits see only the low bits of earlier state, and the
	 * table is indexed by low bits: fold the high bits down (keys like
	 * "[mxN.example.com]:25" otherwise make long probe chains).
	 */
	h ^= h >> 29;
	h *= (size_t)0xbf58476d1ce4e5b9u;
	h ^= h >> 32;
	return h;
}

/*
 * dup_find_or_add - the duplicate hash: the index of the first record
 * with key k[0..klen-1] (hv: its hash_bytes()), or NONE after adding idx
 * as that key's first. key_at gives an earlier record's key; a slot
 * keeps the high half of its key's hash, so a probe reads other keys
 * only when that matches. The table was sized for every possible
 * record: it never fills or grows.
 */
typedef const char *(*key_at_fn)(const tp_doc *doc, uint32_t idx, size_t *len);

static size_t
dup_find_or_add(tp_doc *doc, size_t idx, const char *k, size_t klen, size_t hv,
		key_at_fn key_at)
{
	size_t mask = doc->hash_size - 1, h, olen;
	uint64_t tag = (uint64_t)hv >> 32 << 32, slot;
	const char *o;

	for (h = hv & mask; (slot = doc->hash[h]) != 0; h = (h + 1) & mask) {
		if ((slot & ~(uint64_t)UINT32_MAX) != tag)
			continue;
		o = key_at(doc, (uint32_t)slot - 1, &olen);
		if (olen == klen && memcmp(o, k, klen) == 0)
			return (uint32_t)slot - 1;
	}
	doc->hash[h] = tag | ((uint64_t)idx + 1);
	return NONE;
}

static const char *
ent_key_at(const tp_doc *doc, uint32_t idx, size_t *len)
{
	*len = ent_key_len(doc->ents + idx);
	return ent_key(doc, doc->ents + idx);
}

/*
 * dup_hash_make - a duplicate hash for up to n records, at most 4/5 full:
 * the tags keep a probe past other keys to the slots themselves, so
 * a fuller table costs little, and it is memory touched at random.
 */
static int
dup_hash_make(tp_doc *doc, size_t n)
{
	for (doc->hash_size = 64; doc->hash_size < n + n / 4;)
		doc->hash_size *= 2;
	if ((doc->hash = calloc(doc->hash_size, sizeof(*doc->hash))) == NULL)
		return TP_ENOMEM;
	tp__huge_pages((char *)doc->hash, doc->hash_size * sizeof(*doc->hash));
	return TP_OK;
}

/* dup_hash_drop - the duplicate hash is for the parse only */

static void
dup_hash_drop(tp_doc *doc)
{
	free(doc->hash);
	doc->hash = NULL;
	doc->hash_size = 0;
}

/*
 * dup_hash_keep - the duplicate hash, once the parse is done, becomes the
 * key index: both map a folded key to the first entry with it, hashed by
 * hash_bytes() into a power-of-two table with linear probing, so the low
 * halves of its slots, in place, are the index kidx_make() would build by
 * hashing every key again (that and the scans before it was made were a
 * tenth of the CPU of a set on a 300k-entry table). Past the index's 3/4
 * load (the hash goes to 4/5), kidx_room() makes a bigger one at the
 * first put.
 */
static void
dup_hash_keep(tp_doc *doc)
{
	unsigned char *mem = (unsigned char *)doc->hash;
	size_t used = 0;
	uint32_t *kidx;

	/* No hash (no records): no index until one is needed. */
	if (mem == NULL || doc->hash_size == 0) {
		dup_hash_drop(doc);
		return;
	}
	/* In place, front to back: slot i's 4 bytes land where slot i / 2's 8
	 * were, already read. memcpy() keeps the compiler from assuming the
	 * two widths cannot overlap. */
	for (size_t i = 0; i < doc->hash_size; i++) {
		uint64_t wide;
		uint32_t narrow;

		memcpy(&wide, mem + i * sizeof(wide), sizeof(wide));
		narrow = (uint32_t)wide;
		memcpy(mem + i * sizeof(narrow), &narrow, sizeof(narrow));
		used += narrow != 0;
	}
	kidx = realloc(mem, doc->hash_size * sizeof(*kidx));
	free(doc->kidx);
	doc->kidx = kidx != NULL ? kidx : (uint32_t *)(void *)mem;
	doc->kidx_size = doc->hash_size;
	doc->kidx_used = used;
	doc->hash = NULL;
	doc->hash_size = 0;
}

/*
 * put_list - the comma-separated words of [c, end) into host_offs, as
 * arena strings; *count counts them. Empty words are skipped.
 */
static int
put_list(tp_doc *doc, const char *c, const char *end, uint32_t *count)
{
	const char *comma;
	uint32_t off;
	int status;

	for (; c < end; c = comma + 1) {
		comma = memchr(c, ',', (size_t)(end - c));
		if (comma == NULL)
			comma = end;
		if (comma == c)
			continue;
		if ((status = arena_put(doc, c, (size_t)(comma - c), &off)) !=
		    TP_OK)
			return status;
		if (grow_array((void **)&doc->host_offs, &doc->ahosts,
			       doc->nhosts + 1, sizeof(*doc->host_offs)) != TP_OK)
			return TP_ENOMEM;
		doc->host_offs[doc->nhosts++] = off;
		(*count)++;
	}
	return TP_OK;
}

/*
 * annot_fields - where the fields of an annotation line start, or NULL
 * when line a is not one ("# tlspolicy:" after optional blanks).
 */
static const char *
annot_fields(const tp_doc *doc, size_t a)
{
	static const char tag[] = "tlspolicy:";
	const char *p = line_ptr(doc, a), *end = p + doc->lines[a].len;

	while (p < end && is_space((unsigned char)*p))
		p++;
	if (p == end || *p != '#')
		return NULL;
	p++;
	while (p < end && is_space((unsigned char)*p))
		p++;
	if ((size_t)(end - p) < sizeof(tag) - 1 ||
	    memcmp(p, tag, sizeof(tag) - 1) != 0)
		return NULL;
	return p + sizeof(tag) - 1;
}

/* field_is - the word [tok, end) is "name=VALUE" with a value */

static int
field_is(const char *tok, const char *end, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(end - tok) > n + 1 && memcmp(tok, name, n) == 0 &&
	       tok[n] == '=';
}

/*
 * parse_annotation - "# tlspolicy: from=h1,h2 pin=cert keys=K1,K2" on
 * line a, into entry e. Returns 0 when the line is not an annotation.
 * from= and keys= may repeat (their lists add up); the last pin= wins;
 * other words are ignored, so a newer writer's fields do not break us.
 */
static int
parse_annotation(tp_doc *doc, size_t a, struct ent *e, int *status)
{
	const char *p = annot_fields(doc, a), *end, *tok;
	struct annot an;

	*status = TP_OK;
	if (p == NULL)
		return 0;
	end = line_ptr(doc, a) + doc->lines[a].len;
	an.kind = NONE32;
	an.from_count = 0;
	an.from_first = doc->nhosts;
	an.key_count = 0;
	an.key_first = 0;
	/* from= words first, then keys= words: each list is contiguous. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			an.key_first = doc->nhosts;
		for (p = annot_fields(doc, a); p < end;) {
			while (p < end && is_space((unsigned char)*p))
				p++;
			for (tok = p; p < end && !is_space((unsigned char)*p);
			     p++)
				;
			if (pass == 0 && field_is(tok, p, "from"))
				*status = put_list(doc, tok + 5, p,
						   &an.from_count);
			else if (pass == 1 && field_is(tok, p, "keys"))
				*status = put_list(doc, tok + 5, p,
						   &an.key_count);
			else if (pass == 0 && field_is(tok, p, "pin"))
				*status = arena_put(doc, tok + 4,
						    (size_t)(p - tok - 4),
						    &an.kind);
			if (*status != TP_OK)
				return 1;
		}
	}
	*status = TP_ENOMEM;
	if (grow_array((void **)&doc->anns, &doc->aanns, doc->nanns + 1,
		       sizeof(*doc->anns)) != TP_OK)
		return 1;
	doc->anns[doc->nanns++] = an;
	e->ann = (uint32_t)doc->nanns;
	*status = TP_OK;
	return 1;
}

/* print_len - bytes of text[0..len-1] printf's "%s" would show */

static int
cstr_int(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* has_upper - an ASCII upper-case letter in s[0..len-1] */

static int
has_upper(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return 1;
	return 0;
}

/*
 * fold_key - the key of the raw key s[0..len-1]: *own 0 when folding
 * leaves it as it is (the raw key's bytes serve), else 1 and a copy in
 * the arena at *off, *flen bytes. TP_EINVALID (not UTF-8) means postmap
 * would not store the record.
 */
static int
fold_key(tp_doc *doc, const char *s, size_t len, int *own, uint32_t *off,
	 uint32_t *flen)
{
	size_t start = doc->arena.size;
	int status;

	*own = 0;
	if (!doc->opts.fold_case ||
	    ((!doc->opts.utf8 || tp__allascii(s, len)) && !has_upper(s, len))) {
		/* What tp__fold_key() would do, without the copy. */
		if (doc->opts.utf8 && !tp__allascii(s, len) &&
		    !tp__utf8_valid(s, len))
			return TP_EINVALID;
		return TP_OK;
	}
	status = tp__fold_key(&doc->folder, &doc->arena, s, len,
			      doc->opts.utf8, doc->opts.fold_case);
	if (status != TP_OK) {
		tp__buf_truncate(&doc->arena, start);
		return status;
	}
	if (doc->arena.size - start == len &&
	    memcmp(doc->arena.ptr + start, s, len) == 0) {
		tp__buf_truncate(&doc->arena, start);
		return TP_OK;
	}
	if (tp__buf_putc(&doc->arena, '\0') != TP_OK)
		return TP_ENOMEM;
	*own = 1;
	*off = (uint32_t)start;
	*flen = (uint32_t)(doc->arena.size - 1 - start);
	return arena_check(doc);
}

/* What postmap makes of a logical record's text. */
enum rec_verdict {
	REC_OK,
	REC_INDENTED,		/* starts with whitespace */
	REC_NOT_UTF8,
	REC_UNBALANCED,		/* an unbalanced '"' */
	REC_NO_VALUE		/* not "key whitespace value" */
};

/*
 * record_fields - postmap's per-record rules over the logical text
 * text[0..tlen-1] (a C string to postmap: it ends at a NUL): on REC_OK
 * the key is text[0..*klen-1] and the value text[*vs..*ve-1].
 */
static enum rec_verdict
record_fields(const tp_doc *doc, const char *text, size_t tlen, size_t *klen,
	      size_t *vs, size_t *ve)
{
	if (tlen > 0 && is_space((unsigned char)text[0]))
		return REC_INDENTED;
	if (doc->opts.utf8 && !tp__allascii(text, tlen) &&
	    !tp__utf8_valid(text, tlen))
		return REC_NOT_UTF8;
	if ((*klen = key_scan(text, tlen)) == NONE)
		return REC_UNBALANCED;
	value_range(text, tlen, *klen, vs, ve);
	return *klen == 0 || *ve == *vs ? REC_NO_VALUE : REC_OK;
}

/*
 * record_warning - postmap's warning for a record it skips, in its
 * words; t is the record's logical text as a C string (tp_buf).
 */
static int
record_warning(tp_doc *doc, enum rec_verdict v, unsigned long lineno,
	       const tp_buf *t)
{
	const char *name = doc->name;

	switch (v) {
	case REC_INDENTED:
		return add_warning(doc, lineno,
				   "%s: logical line must not start with "
				   "whitespace: \"%.*s%s\"",
				   name, cstr_int(t->ptr, 30), t->ptr,
				   t->size > 30 ? "..." : "");
	case REC_NOT_UTF8:
		return add_warning(doc, lineno,
				   "%s, line %lu: non-UTF-8 input \"%s\" -- "
				   "ignoring this line", name, lineno, t->ptr);
	case REC_UNBALANCED:
		return add_warning(doc, lineno,
				   "%s, line %lu: unbalanced '\"' in '%s' -- "
				   "ignoring this line", name, lineno, t->ptr);
	case REC_NO_VALUE:
		return add_warning(doc, lineno,
				   "%s, line %lu: expected format: key "
				   "whitespace value", name, lineno);
	case REC_OK:
		break;
	}
	return TP_OK;
}

/* alias_warning - postmap's hint for a key ending in ':' */

static int
alias_warning(tp_doc *doc, const char *key, size_t klen, unsigned long lineno)
{
	if (key[klen - 1] != ':')
		return TP_OK;
	return add_warning(doc, lineno,
			   "%s, line %lu: record is in \"key: value\" format; "
			   "is this an alias file?", doc->name, lineno);
}

static int
dup_warning(tp_doc *doc, const char *key, unsigned long lineno)
{
	return add_warning(doc, lineno, "%s.db: duplicate entry: \"%s\"",
			   doc->name, key);
}

/*
 * The duplicate check of a record waits until the next record is
 * parsed, its hash slot fetched meanwhile (__builtin_prefetch): the
 * slot's cache miss was a quarter of a large rebuild. Records are still
 * checked in file order, and any warning settles the check first, so
 * warnings stay in line order.
 */
struct dup_pending {
	int live;
	size_t idx;		/* the entry (document); the last record (scan) */
	size_t hv;
	unsigned long line;
};

static void
dup_pend(tp_doc *doc, struct dup_pending *pend, size_t idx, size_t hv,
	 unsigned long line)
{
	__builtin_prefetch(doc->hash + (hv & (doc->hash_size - 1)));
	pend->live = 1;
	pend->idx = idx;
	pend->hv = hv;
	pend->line = line;
}

/* doc_settle - the pending entry's duplicate check */

static int
doc_settle(tp_doc *doc, struct dup_pending *pend)
{
	struct ent *e;

	/* Nothing pending; and ents may not exist (no record yet). */
	if (!pend->live)
		return TP_OK;
	pend->live = 0;
	e = doc->ents + pend->idx;
	if (dup_find_or_add(doc, pend->idx, ent_key(doc, e), ent_key_len(e),
			    pend->hv, ent_key_at) == NONE)
		return TP_OK;
	e->flags |= E_DUP;
	doc->ndup++;
	return dup_warning(doc, ent_key(doc, e), pend->line);
}

/* do_record - postmap's treatment of the logical record first..last */

static int
do_record(tp_doc *doc, struct dup_pending *pend, size_t first, size_t last)
{
	tp_buf *t = &doc->scratch;
	const char *text;
	unsigned long lineno = (unsigned long)first + 1;
	size_t klen = 0, vs = 0, ve = 0, tlen, hv, off = doc->lines[first].off;
	enum rec_verdict v;
	struct ent *e;
	int status, own;

	/* A record on one line is parsed where it stands; else joined. */
	if (first == last) {
		text = line_ptr(doc, first);
		tlen = doc->lines[first].len;
	} else {
		if (record_text(doc, first, last, t) != TP_OK)
			return TP_ENOMEM;
		text = t->ptr;
		tlen = t->size;
	}
	if ((v = record_fields(doc, text, tlen, &klen, &vs, &ve)) != REC_OK) {
		if ((status = doc_settle(doc, pend)) != TP_OK)
			return status;
		/* Warnings quote the text as a C string: those need the copy. */
		if (v != REC_NO_VALUE && record_text(doc, first, last, t) != TP_OK)
			return TP_ENOMEM;
		return record_warning(doc, v, lineno, t);
	}
	if (text[klen - 1] == ':' &&
	    ((status = doc_settle(doc, pend)) != TP_OK ||
	     (status = alias_warning(doc, text, klen, lineno)) != TP_OK))
		return status;

	/* parse_all() made room for an entry per L_START line. */
	e = doc->ents + doc->nents;
	memset(e, 0, sizeof(*e));
	e->first = (uint32_t)first;
	e->last = (uint32_t)last;
	/* The first line's text is the start of the logical text. */
	if (klen < doc->lines[first].len) {
		e->raw = (uint32_t)off;
	} else {
		e->flags |= E_RAW_ARENA;
		if ((status = arena_put(doc, text, klen, &e->raw)) != TP_OK)
			return status;
	}
	e->raw_len = (uint32_t)klen;
	if (first == last) {
		e->val = (uint32_t)(off + vs);
	} else {
		e->flags |= E_VAL_ARENA;
		if ((status = arena_put(doc, text + vs, ve - vs, &e->val)) !=
		    TP_OK)
			return status;
	}
	e->val_len = (uint32_t)(ve - vs);
	/* The line passed the UTF-8 check, so only ENOMEM is left here. */
	if ((status = fold_key(doc, text, klen, &own, &e->key, &e->key_len)) !=
	    TP_OK)
		return status == TP_EINVALID ? TP_OK : status;
	if (own)
		e->flags |= E_KEY_OWN;
	if (first > 0 && doc->lines[first - 1].kind == L_COMMENT &&
	    parse_annotation(doc, first - 1, e, &status) && status != TP_OK)
		return status;
	/* Done with the text: end the in-place strings with NULs. */
	if (!(e->flags & E_RAW_ARENA)) {
		e->raw_end = (unsigned char)doc->data.ptr[e->raw + e->raw_len];
		doc->data.ptr[e->raw + e->raw_len] = '\0';
	}
	if (!(e->flags & E_VAL_ARENA)) {
		e->val_end = (unsigned char)doc->data.ptr[e->val + e->val_len];
		doc->data.ptr[e->val + e->val_len] = '\0';
	}
	hv = hash_bytes(ent_key(doc, e), ent_key_len(e));
	if ((status = doc_settle(doc, pend)) != TP_OK)
		return status;
	dup_pend(doc, pend, doc->nents++, hv, lineno);
	return TP_OK;
}

/* publish_warnings - the public view of the warnings, once parsed */

static int
publish_warnings(tp_doc *doc)
{
	if (doc->nwarns == 0)
		return TP_OK;
	doc->pub_warns = malloc(doc->nwarns * sizeof(*doc->pub_warns));
	if (doc->pub_warns == NULL)
		return TP_ENOMEM;
	for (size_t i = 0; i < doc->nwarns; i++) {
		doc->pub_warns[i].line = doc->warns[i].line;
		doc->pub_warns[i].message = doc->wtext.ptr + doc->warns[i].msg;
	}
	return TP_OK;
}

static int
parse_all(tp_doc *doc)
{
	size_t i, first = NONE, last = 0, nstart;
	struct dup_pending pend = { 0, 0, 0, 0 };
	int status;

	if (doc->data.size > DOC_MAX_BYTES)
		return TP_ELIMIT;
	if (split_lines(doc, &nstart) != TP_OK)
		return TP_ENOMEM;
	/* Every entry starts on an L_START line: room for all, once. */
	if (nstart > 0) {
		if ((doc->ents = malloc(nstart * sizeof(*doc->ents))) == NULL ||
		    dup_hash_make(doc, nstart) != TP_OK)
			return TP_ENOMEM;
		tp__huge_pages((char *)doc->ents, nstart * sizeof(*doc->ents));
		doc->aents = nstart;
	}
	doc->patched = 1;
	for (i = 0; i < doc->nlines; i++) {
		switch (doc->lines[i].kind) {
		case L_START:
			if (first != NONE &&
			    (status = do_record(doc, &pend, first, last)) != TP_OK)
				return status;
			first = last = i;
			break;
		case L_CONT:
			/* Whitespace before any logical line: postmap warns. */
			if (first == NONE)
				first = i;
			last = i;
			break;
		default:
			break;
		}
	}
	if (first != NONE && (status = do_record(doc, &pend, first, last)) != TP_OK)
		return status;
	if ((status = doc_settle(doc, &pend)) != TP_OK)
		return status;
	dup_hash_keep(doc);
	doc->nbase = doc->nents;

	/* The arena is final: resolve the pointers handed out. */
	if (doc->nhosts) {
		doc->hosts = malloc(doc->nhosts * sizeof(*doc->hosts));
		if (doc->hosts == NULL)
			return TP_ENOMEM;
		for (i = 0; i < doc->nhosts; i++)
			doc->hosts[i] = doc->arena.ptr + doc->host_offs[i];
	}
	tp_buf_dispose(&doc->scratch);
	return publish_warnings(doc);
}

/*
 * Scanning: postmap's records without the document, for a rebuild of a
 * large table (see tp__doc_scan() in doc_internal.h). The same rules,
 * the same warnings, in one pass over the input: a continued record is
 * joined in place (the joined text is never longer than the lines it
 * came from, and nothing reads those lines again), keys and values are
 * ended with NULs in place, and each record costs 16 bytes.
 */

/* A scanned record's key is in the arena (folded) when its length has: */
#define SCAN_KEY_ARENA 0x80000000u

static const char *
scan_key_of(const tp_doc *doc, const struct scanned *r, size_t *len)
{
	*len = r->key_len & ~SCAN_KEY_ARENA;
	return (r->key_len & SCAN_KEY_ARENA ? doc->arena.ptr : doc->data.ptr) +
	       r->key;
}

static const char *
scan_key_at(const tp_doc *doc, uint32_t idx, size_t *len)
{
	return scan_key_of(doc, doc->scanned + idx, len);
}

/* scan_settle - the pending record's duplicate check */

static int
scan_settle(tp_doc *doc, struct dup_pending *pend)
{
	size_t len;
	const char *key;

	if (!pend->live)
		return TP_OK;
	pend->live = 0;
	/* The pending record is the last one: a duplicate is dropped. */
	key = scan_key_at(doc, (uint32_t)pend->idx, &len);
	if (dup_find_or_add(doc, pend->idx, key, len, pend->hv, scan_key_at) == NONE)
		return TP_OK;
	doc->nscanned--;
	return dup_warning(doc, key, pend->line);
}

/* scan_record - do_record() for the logical text at text[0..tlen-1] */

static int
scan_record(tp_doc *doc, struct dup_pending *pend, char *text, size_t tlen,
	    unsigned long lineno)
{
	struct scanned *r;
	size_t klen = 0, vs = 0, ve = 0, len, hv;
	enum rec_verdict v;
	const char *key;
	uint32_t off = 0, flen = 0;
	int status, own;

	if ((v = record_fields(doc, text, tlen, &klen, &vs, &ve)) != REC_OK) {
		if ((status = scan_settle(doc, pend)) != TP_OK)
			return status;
		tp__buf_truncate(&doc->scratch, 0);
		if (v != REC_NO_VALUE &&
		    (tp__buf_put(&doc->scratch, text, tlen) != TP_OK ||
		     tp__buf_put(&doc->scratch, "", 0) != TP_OK))
			return TP_ENOMEM;
		return record_warning(doc, v, lineno, &doc->scratch);
	}
	if (text[klen - 1] == ':' &&
	    ((status = scan_settle(doc, pend)) != TP_OK ||
	     (status = alias_warning(doc, text, klen, lineno)) != TP_OK))
		return status;
	if ((status = fold_key(doc, text, klen, &own, &off, &flen)) != TP_OK)
		return status == TP_EINVALID ? TP_OK : status;
	/* A value follows the key and a separator: these NULs clobber neither. */
	text[klen] = '\0';
	text[ve] = '\0';
	/* Past the pending record; it moves down if it was a duplicate. */
	r = doc->scanned + doc->nscanned;
	r->key = own ? off : (uint32_t)(text - doc->data.ptr);
	r->key_len = own ? flen | SCAN_KEY_ARENA : (uint32_t)klen;
	r->val = (uint32_t)(text + vs - doc->data.ptr);
	r->val_len = (uint32_t)(ve - vs);
	key = scan_key_of(doc, r, &len);
	hv = hash_bytes(key, len);
	if ((status = scan_settle(doc, pend)) != TP_OK)
		return status;
	if (r != doc->scanned + doc->nscanned)	/* the pending one was a duplicate */
		doc->scanned[doc->nscanned] = *r;
	dup_pend(doc, pend, doc->nscanned++, hv, lineno);
	return TP_OK;
}

static int
scan_all(tp_doc *doc)
{
	char *base = doc->data.ptr, *end = base + doc->data.size, *p, *nl;
	char *rec = NULL, *rec_end = NULL;	/* the logical record so far */
	struct dup_pending pend = { 0, 0, 0, 0 };
	unsigned long lineno = 0, rec_line = 0;
	size_t n, len;
	int status;

	if (doc->data.size > DOC_MAX_BYTES)
		return TP_ELIMIT;
	/* A record per line at most: the arrays are sized once. */
	n = count_lines(base, end);
	if (n > 0 &&
	    ((doc->scanned = malloc(n * sizeof(*doc->scanned))) == NULL ||
	     dup_hash_make(doc, n) != TP_OK))
		return TP_ENOMEM;
	if (n > 0)
		tp__huge_pages((char *)doc->scanned, n * sizeof(*doc->scanned));
	for (p = base; p < end; p = nl ? nl + 1 : end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)((nl ? nl : end) - p);
		lineno++;
		switch (line_kind(p, len)) {
		case L_START:
			if (rec != NULL && (status = scan_record(doc, &pend, rec,
			    (size_t)(rec_end - rec), rec_line)) != TP_OK)
				return status;
			rec = p;
			rec_end = p + len;
			rec_line = lineno;
			break;
		case L_CONT:
			if (rec == NULL) {	/* postmap warns: see do_record() */
				rec = p;
				rec_end = p + len;
				rec_line = lineno;
			} else {
				memmove(rec_end, p, len);
				rec_end += len;
			}
			break;
		default:
			break;
		}
	}
	if (rec != NULL && (status = scan_record(doc, &pend, rec,
	    (size_t)(rec_end - rec), rec_line)) != TP_OK)
		return status;
	if ((status = scan_settle(doc, &pend)) != TP_OK)
		return status;
	dup_hash_drop(doc);
	doc->is_scan = 1;
	tp_buf_dispose(&doc->scratch);
	return publish_warnings(doc);
}

size_t
tp__doc_scan_count(const tp_doc *doc)
{
	return doc->nscanned;
}

void
tp__doc_scan_kv(const tp_doc *doc, size_t i, const char **key, size_t *klen,
		const char **value, size_t *vlen)
{
	const struct scanned *r = doc->scanned + i;

	*key = scan_key_at(doc, (uint32_t)i, klen);
	*value = doc->data.ptr + r->val;
	*vlen = r->val_len;
}

int
tp__doc_is_scan(const tp_doc *doc)
{
	return doc->is_scan;
}

void
tp_doc_free(tp_doc *doc)
{
	size_t i;

	if (doc == NULL)
		return;
	tp_buf_dispose(&doc->data);
	free(doc->name);
	free(doc->lines);
	free(doc->ents);
	free(doc->anns);
	free(doc->warns);
	free(doc->pub_warns);
	tp_buf_dispose(&doc->wtext);
	free(doc->host_offs);
	free(doc->hosts);
	tp_buf_dispose(&doc->arena);
	free(doc->hash);
	tp_buf_dispose(&doc->scratch);
	tp__folder_close(&doc->folder);
	for (i = 0; i < doc->nsubs; i++)
		tp_doc_free(doc->subs[i].doc);
	free(doc->subs);
	free(doc->lfen);
	free(doc->afen);
	free(doc->kidx);
	tp_doc_free(doc->wdoc);
	tp_buf_dispose(&doc->dirty);
	free(doc->scanned);
	free(doc);
}

/* doc_new - parse data (taking the buffer) into a new document */

static int
doc_new(tp_doc **out, tp_buf *data, const char *name, const tp_doc_opts *opts,
	int (*parse)(tp_doc *))
{
	static const tp_doc_opts defaults = TP_DOC_OPTS_INIT;
	tp_doc *doc;
	int status = TP_ENOMEM;

	*out = NULL;
	if ((doc = calloc(1, sizeof(*doc))) == NULL)
		return TP_ENOMEM;
	doc->opts = opts ? *opts : defaults;
	doc->data = *data;
	*data = (tp_buf)TP_BUF_INIT;
	if (tp__buf_put(&doc->data, "", 0) != TP_OK ||
	    (doc->name = strdup(name ? name : "-")) == NULL ||
	    (status = parse(doc)) != TP_OK) {
		tp_doc_free(doc);
		return status;
	}
	*out = doc;
	return TP_OK;
}

/* parse_copy - a document of a copy of data[0..len-1], made by parse */

static int
parse_copy(tp_doc **out, const char *data, size_t len, const char *name,
	   const tp_doc_opts *opts, int (*parse)(tp_doc *))
{
	tp_buf copy = TP_BUF_INIT;

	if (out == NULL)
		return TP_EUSAGE;
	*out = NULL;
	if (data == NULL && len > 0)
		return TP_EUSAGE;
	if (len > DOC_MAX_BYTES)
		return TP_ELIMIT;
	/* One exact allocation: tp__buf_put() would round up. */
	if ((copy.ptr = malloc(len + 1)) == NULL)
		return TP_ENOMEM;
	copy.asize = len + 1;
	if (len)
		memcpy(copy.ptr, data, len);
	copy.size = len;
	copy.ptr[len] = '\0';
	return doc_new(out, &copy, name, opts, parse);
}

int
tp_doc_parse(tp_doc **out, const char *data, size_t len, const char *name,
	     const tp_doc_opts *opts)
{
	return parse_copy(out, data, len, name, opts, parse_all);
}

int
tp__doc_scan_mem(tp_doc **out, const char *data, size_t len, const char *name,
		 const tp_doc_opts *opts)
{
	return parse_copy(out, data, len, name, opts, scan_all);
}

/* read_source - the whole file at path, into *out */

static int
read_source(const char *path, tp_buf *out, tp_diag *diag)
{
	tp_buf data = TP_BUF_INIT;
	struct stat st;
	ssize_t n;
	int fd, err;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err = errno;
		return tp__diag_errno(diag, err == ENOENT ? TP_ENOTFOUND :
				      TP_EIO, err, "open %s", path);
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		close(fd);
		return tp__diag_errno(diag, TP_EIO, err, "stat %s", path);
	}
	if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > DOC_MAX_BYTES) {
		close(fd);
		return tp__diag_set(diag, TP_ELIMIT, path, 0,
				    "file too large (4 GB or more)");
	}
	/* The file's size, read once; a file that grows still reads whole. */
	if (S_ISREG(st.st_mode) && st.st_size > 0) {
		if ((data.ptr = malloc((size_t)st.st_size + 1)) == NULL) {
			close(fd);
			return tp__diag_set(diag, TP_ENOMEM, path, 0,
					    "out of memory");
		}
		data.asize = (size_t)st.st_size + 1;
		data.ptr[0] = '\0';
		tp__huge_pages(data.ptr, data.asize);
	}
	for (;;) {
		char more[4096];
		int full = data.size + 1 >= data.asize;

		/* Full: probe for more before growing the exact buffer. */
		if (full)
			n = read(fd, more, sizeof(more));
		else
			n = read(fd, data.ptr + data.size,
				 data.asize - data.size - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			close(fd);
			tp_buf_dispose(&data);
			return tp__diag_errno(diag, TP_EIO, err, "read %s",
					      path);
		}
		if (n == 0)
			break;
		if (full && tp__buf_put(&data, more, (size_t)n) != TP_OK) {
			close(fd);
			tp_buf_dispose(&data);
			return tp__diag_set(diag, TP_ENOMEM, path, 0,
					    "out of memory");
		}
		if (!full)
			data.size += (size_t)n;
		data.ptr[data.size] = '\0';
		if (data.size > DOC_MAX_BYTES) {
			close(fd);
			tp_buf_dispose(&data);
			return tp__diag_set(diag, TP_ELIMIT, path, 0,
					    "file too large (4 GB or more)");
		}
	}
	close(fd);
	*out = data;
	return TP_OK;
}

/* load_with - a document of the file at path, made by parse */

static int
load_with(tp_doc **out, const char *path, const tp_doc_opts *opts,
	  int (*parse)(tp_doc *), tp_diag *diag)
{
	tp_buf data = TP_BUF_INIT;
	int status;

	if (out == NULL || path == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "tp_doc_load: no path");
	*out = NULL;
	if ((status = read_source(path, &data, diag)) != TP_OK)
		return status;
	if ((status = doc_new(out, &data, path, opts, parse)) != TP_OK) {
		tp_buf_dispose(&data);
		if (status == TP_ELIMIT)
			return tp__diag_set(diag, status, path, 0,
					    "file too large (4 GB or more)");
		return tp__diag_set(diag, status, path, 0, "out of memory");
	}
	return TP_OK;
}

int
tp_doc_load(tp_doc **out, const char *path, const tp_doc_opts *opts,
	    tp_diag *diag)
{
	return load_with(out, path, opts, parse_all, diag);
}

int
tp__doc_scan(tp_doc **out, const char *path, const tp_doc_opts *opts,
	     tp_diag *diag)
{
	return load_with(out, path, opts, scan_all, diag);
}

/*
 * Slots, sub-documents, and the trees that keep entry indexes and line
 * numbers right after edits (see "Edits" above).
 */

/* An edit's status meaning: do it on the whole document instead. */
#define NEED_FLAT 1

static int
doc_edited(const tp_doc *doc)
{
	return doc->nsubs > 0 || doc->ndead > 0 || doc->nents != doc->nbase ||
	       doc->tail_eol != NULL;
}

/* Fenwick trees over slots: element a[i] lives at f[i + 1]. */

static size_t
low_bit(size_t k)
{
	return k & (~k + 1);
}

/* fen_prefix - a[0] + ... + a[i - 1] */
static int32_t
fen_prefix(const int32_t *f, size_t i)
{
	int32_t sum = 0;

	for (; i > 0; i -= low_bit(i))
		sum += f[i];
	return sum;
}

static void
fen_add(int32_t *f, size_t n, size_t i, int32_t v)
{
	for (i++; i <= n; i += low_bit(i))
		f[i] += v;
}

/* fen_push - a[n] = v: a tree of n elements becomes one of n + 1 */
static void
fen_push(int32_t *f, size_t n, int32_t v)
{
	size_t k = n + 1;

	f[k] = v + fen_prefix(f, n) - fen_prefix(f, k - low_bit(k));
}

/* fen_select - in a tree of 0s and 1s, the index of 1 number rank + 1 */
static size_t
fen_select(const int32_t *f, size_t n, size_t rank)
{
	size_t pos = 0, step = 1;
	int32_t rem = (int32_t)rank + 1;

	while (step * 2 <= n)
		step *= 2;
	for (; step > 0; step /= 2)
		if (pos + step <= n && f[pos + step] < rem) {
			pos += step;
			rem -= f[pos];
		}
	return pos;
}

/* fen_room - both trees (those made) hold n slots */
static int
fen_room(tp_doc *doc, size_t n)
{
	size_t cap = doc->fen_cap ? doc->fen_cap : 16;
	int32_t *p;

	if (n <= doc->fen_cap)
		return TP_OK;
	while (cap < n)
		cap += cap / 4 + 16;
	if (doc->lfen) {
		if ((p = realloc(doc->lfen, (cap + 1) * sizeof(*p))) == NULL)
			return TP_ENOMEM;
		doc->lfen = p;
	}
	if (doc->afen) {
		if ((p = realloc(doc->afen, (cap + 1) * sizeof(*p))) == NULL)
			return TP_ENOMEM;
		doc->afen = p;
	}
	doc->fen_cap = cap;
	return TP_OK;
}

/* fen_make - the tree *f over every slot: zeros, or 1 per live slot */
static int
fen_make(tp_doc *doc, int32_t **f, int live)
{
	size_t n = doc->nents, k, j;

	if (*f != NULL)
		return TP_OK;
	if (fen_room(doc, n) != TP_OK ||
	    (*f = calloc(doc->fen_cap + 1, sizeof(**f))) == NULL)
		return TP_ENOMEM;
	for (k = 1; live && k <= n; k++) {
		(*f)[k] += !(doc->ents[k - 1].flags & E_DEAD);
		if ((j = k + low_bit(k)) <= n)
			(*f)[j] += (*f)[k];
	}
	return TP_OK;
}

/* slot_of - the slot of entry index i; index_of - the other way */
static size_t
slot_of(const tp_doc *doc, size_t i)
{
	return doc->ndead == 0 ? i : fen_select(doc->afen, doc->nents, i);
}

static size_t
index_of(const tp_doc *doc, size_t s)
{
	return doc->ndead == 0 ? s : (size_t)fen_prefix(doc->afen, s);
}

static struct sub *
sub_find(const tp_doc *doc, size_t s)
{
	size_t lo = 0, hi = doc->nsubs, mid;

	if (!(doc->ents[s].flags & E_SUB))
		return NULL;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (doc->subs[mid].slot < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < doc->nsubs && doc->subs[lo].slot == s ? doc->subs + lo : NULL;
}

/*
 * The region of a slot: its annotation line (when it has one) through
 * its last line, base line indexes [region_first, region_end). Appended
 * slots have an empty region at the end of the base.
 */
static size_t
region_first(const tp_doc *doc, size_t s)
{
	const struct ent *e = doc->ents + s;

	if (s >= doc->nbase)
		return doc->nlines;
	return e->ann ? (size_t)e->first - 1 : e->first;
}

static size_t
region_end(const tp_doc *doc, size_t s)
{
	return s >= doc->nbase ? doc->nlines : (size_t)doc->ents[s].last + 1;
}

static size_t
line_end_off(const tp_doc *doc, size_t l)
{
	return (size_t)doc->lines[l].off + doc->lines[l].len + doc->lines[l].nl;
}

/* region_lines - how many lines slot s has now */
static size_t
region_lines(const tp_doc *doc, size_t s)
{
	const struct sub *sb;

	if (doc->ents[s].flags & E_DEAD)
		return 0;
	if ((sb = sub_find(doc, s)) != NULL)
		return sb->doc->nlines;
	return region_end(doc, s) - region_first(doc, s);
}

/* An entry as a reader sees it: in data, or in its sub-document. */
struct view {
	const tp_doc *d;
	const struct ent *e;
	long line_off;		/* add to e's line indexes */
	int dup;
};

static void
entry_view(const tp_doc *doc, size_t s, struct view *v)
{
	const struct sub *sb = sub_find(doc, s);

	v->dup = (doc->ents[s].flags & E_DUP) != 0;
	v->line_off = doc->lfen ? fen_prefix(doc->lfen, s) : 0;
	if (sb != NULL) {
		v->d = sb->doc;
		v->e = sb->doc->ents;
		v->line_off += (long)region_first(doc, s);
	} else {
		v->d = doc;
		v->e = doc->ents + s;
	}
}

static const char *
slot_key(const tp_doc *doc, size_t s, size_t *len)
{
	struct view v;

	entry_view(doc, s, &v);
	*len = ent_key_len(v.e);
	return ent_key(v.d, v.e);
}

/*
 * Bytes of data, [from, to), with the bytes entry e's NULs stand for
 * put back (e NULL: the range holds none of them).
 */
static int
emit_data(const tp_doc *doc, const struct ent *e, size_t from, size_t to,
	  tp__doc_sink sink, void *ctx)
{
	const char *d = doc->data.ptr;
	size_t pos[2];
	char byte[2];
	int n = 0, k, status;

	if (e != NULL && doc->patched) {
		if (!(e->flags & E_RAW_ARENA)) {
			pos[n] = (size_t)e->raw + e->raw_len;
			byte[n++] = (char)e->raw_end;
		}
		if (!(e->flags & E_VAL_ARENA)) {
			pos[n] = (size_t)e->val + e->val_len;
			byte[n++] = (char)e->val_end;
		}
	}
	for (k = 0; k < n; k++) {
		if (pos[k] < from || pos[k] >= to)
			continue;
		if ((pos[k] > from &&
		     (status = sink(ctx, d + from, pos[k] - from)) != 0) ||
		    (status = sink(ctx, byte + k, 1)) != 0)
			return status;
		from = pos[k] + 1;
	}
	return to > from ? sink(ctx, d + from, to - from) : 0;
}

/* The last byte written, so a missing final newline can be added. */
struct emit_state {
	tp__doc_sink sink;
	void *ctx;
	int any;
	char last;
};

static int
tracking_sink(void *ctx, const char *p, size_t n)
{
	struct emit_state *st = ctx;

	if (n == 0)
		return 0;
	st->any = 1;
	st->last = p[n - 1];
	return st->sink(st->ctx, p, n);
}

int
tp__doc_emit(const tp_doc *doc, tp__doc_sink sink, void *ctx)
{
	struct emit_state st = { sink, ctx, 0, '\n' };
	const struct sub *sb;
	size_t s, pos = 0, re;
	int status;

	/* Entry by entry: each puts back the bytes its NULs stand for. */
	for (s = 0; s < doc->nbase; s++) {
		const struct ent *e = doc->ents + s;

		re = line_end_off(doc, e->last);
		if (!(e->flags & (E_DEAD | E_SUB))) {
			if ((status = emit_data(doc, e, pos, re, tracking_sink,
						&st)) != 0)
				return status;
			pos = re;
			continue;
		}
		if ((status = emit_data(doc, NULL, pos,
					doc->lines[region_first(doc, s)].off,
					tracking_sink, &st)) != 0)
			return status;
		if ((sb = sub_find(doc, s)) != NULL &&
		    (status = tp__doc_emit(sb->doc, tracking_sink, &st)) != 0)
			return status;
		pos = re;
	}
	if ((status = emit_data(doc, NULL, pos, doc->data.size, tracking_sink,
				&st)) != 0)
		return status;
	if (doc->nents == doc->nbase)
		return 0;
	if (doc->tail_eol != NULL && st.any && st.last != '\n' &&
	    (status = tracking_sink(&st, doc->tail_eol,
				    strlen(doc->tail_eol))) != 0)
		return status;
	for (s = doc->nbase; s < doc->nents; s++)
		if ((sb = sub_find(doc, s)) != NULL &&
		    (status = tp__doc_emit(sb->doc, tracking_sink, &st)) != 0)
			return status;
	return 0;
}

/*
 * The key index: folded key -> the first live slot with it (the record
 * postmap keeps), open addressing with linear probing. A parsed document
 * has one from its parse (dup_hash_keep()); otherwise (no records when
 * parsed, or out of memory when it had to grow) it is made on demand, and
 * a run that looks up a few keys scans instead.
 */
#define KIDX_AFTER 4		/* lookups before the index is made */

static size_t
kidx_pos(const tp_doc *doc, const char *k, size_t len, size_t *slot)
{
	size_t mask = doc->kidx_size - 1, h, klen;
	const char *key;

	for (h = hash_bytes(k, len) & mask; doc->kidx[h]; h = (h + 1) & mask) {
		key = slot_key(doc, doc->kidx[h] - 1, &klen);
		if (klen == len && memcmp(key, k, len) == 0) {
			*slot = doc->kidx[h] - 1;
			return h;
		}
	}
	*slot = NONE;
	return h;
}

static int
kidx_make(tp_doc *doc, size_t size)
{
	uint32_t *old = doc->kidx;
	size_t s, h, len;
	const char *k;

	if ((doc->kidx = calloc(size, sizeof(*doc->kidx))) == NULL) {
		doc->kidx = old;
		return TP_ENOMEM;
	}
	doc->kidx_size = size;
	doc->kidx_used = 0;
	free(old);
	for (s = 0; s < doc->nents; s++) {
		if (doc->ents[s].flags & (E_DEAD | E_DUP))
			continue;
		k = slot_key(doc, s, &len);
		for (h = hash_bytes(k, len) & (size - 1); doc->kidx[h];
		     h = (h + 1) & (size - 1))
			;
		doc->kidx[h] = (uint32_t)s + 1;
		doc->kidx_used++;
	}
	return TP_OK;
}

/* kidx_room - an index (when there is one) with room for one more */
static int
kidx_room(tp_doc *doc)
{
	size_t size = 64, used;

	if (doc->kidx != NULL && (doc->kidx_used + 1) * 4 < doc->kidx_size * 3)
		return TP_OK;
	/* A first index holds every live key that is not a duplicate. */
	used = doc->kidx != NULL ? doc->kidx_used :
				   doc->nents - doc->ndead - doc->ndup;
	while ((used + 1) * 4 >= size * 3)
		size *= 2;
	return kidx_make(doc, size);
}

/* find_slot - the first live slot with folded key k: TP_ENOTFOUND */
static int
find_slot(tp_doc *doc, const char *k, size_t len, size_t *slot)
{
	size_t s, klen;
	const char *key;

	*slot = NONE;
	if (doc->kidx == NULL && ++doc->nlookups > KIDX_AFTER &&
	    kidx_room(doc) != TP_OK)
		return TP_ENOMEM;
	if (doc->kidx != NULL) {
		(void)kidx_pos(doc, k, len, slot);
		return *slot == NONE ? TP_ENOTFOUND : TP_OK;
	}
	for (s = 0; s < doc->nents; s++) {
		if (doc->ents[s].flags & (E_DEAD | E_DUP))
			continue;
		key = slot_key(doc, s, &klen);
		if (klen == len && memcmp(key, k, len) == 0) {
			*slot = s;
			return TP_OK;
		}
	}
	return TP_ENOTFOUND;
}

/* kidx_drop - slot s (the first with its key) leaves the index */
static void
kidx_drop(tp_doc *doc, size_t s)
{
	size_t mask = doc->kidx_size - 1, i, j, h, len, found;
	const char *k = slot_key(doc, s, &len);

	i = kidx_pos(doc, k, len, &found);
	if (found != s)
		return;
	doc->kidx[i] = 0;
	doc->kidx_used--;
	/* Backward shift: later keys of the probe run move up if they may. */
	for (j = (i + 1) & mask; doc->kidx[j]; j = (j + 1) & mask) {
		k = slot_key(doc, doc->kidx[j] - 1, &len);
		h = hash_bytes(k, len) & mask;
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		doc->kidx[i] = doc->kidx[j];
		doc->kidx[j] = 0;
		i = j;
	}
}

/* kidx_put - slot s (a key not in the index) joins it */
static int
kidx_put(tp_doc *doc, size_t s)
{
	size_t h, len, found;
	const char *k;

	if (doc->kidx == NULL)
		return TP_OK;
	if (kidx_room(doc) != TP_OK)
		return TP_ENOMEM;
	k = slot_key(doc, s, &len);
	h = kidx_pos(doc, k, len, &found);
	if (found == NONE) {
		doc->kidx[h] = (uint32_t)s + 1;
		doc->kidx_used++;
	}
	return TP_OK;
}

/*
 * real_byte - the file's byte at data offset pos on base line l (an
 * entry's first line may hold one of its NULs there instead)
 */
static char
real_byte(const tp_doc *doc, size_t pos, size_t l)
{
	size_t lo = 0, hi = doc->nbase, mid;
	const struct ent *e;

	if (doc->data.ptr[pos] != '\0' || !doc->patched)
		return doc->data.ptr[pos];
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (doc->ents[mid].first < l)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == doc->nbase || doc->ents[lo].first != l)
		return '\0';
	e = doc->ents + lo;
	if (!(e->flags & E_RAW_ARENA) && (size_t)e->raw + e->raw_len == pos)
		return (char)e->raw_end;
	if (!(e->flags & E_VAL_ARENA) && (size_t)e->val + e->val_len == pos)
		return (char)e->val_end;
	return '\0';
}

/* base_eol - base line l's terminator style, its real bytes read */
static const char *
base_eol(const tp_doc *doc, size_t l)
{
	const struct line *ln = doc->lines + l;

	if (ln->nl && ln->len > 0 &&
	    real_byte(doc, (size_t)ln->off + ln->len - 1, l) == '\r')
		return "\r\n";
	return "\n";
}

/*
 * lines_before - the lines written before slot s (s == nents: all of
 * them), last first, (document, line index) to fn until it returns
 * non-zero, which is returned
 */
typedef int (*line_fn)(const tp_doc *d, size_t l, void *ctx);

static int
lines_in(const tp_doc *d, size_t from, size_t to, line_fn fn, void *ctx)
{
	int r;

	while (to-- > from)
		if ((r = fn(d, to, ctx)) != 0)
			return r;
	return 0;
}

static int
lines_before(const tp_doc *doc, size_t s, line_fn fn, void *ctx)
{
	const struct sub *sb;
	size_t t, l, stop;
	int r;

	for (t = s; t > doc->nbase; t--)
		if ((sb = sub_find(doc, t - 1)) != NULL &&
		    (r = lines_in(sb->doc, 0, sb->doc->nlines, fn, ctx)) != 0)
			return r;
	t = s < doc->nbase ? s : doc->nbase;
	l = t < doc->nbase ? region_first(doc, t) : doc->nlines;
	for (;; t--) {
		/* Lines between regions, then the region of slot t - 1. */
		stop = t > 0 ? region_end(doc, t - 1) : 0;
		if ((r = lines_in(doc, stop, l, fn, ctx)) != 0 || t == 0)
			return r;
		if ((sb = sub_find(doc, t - 1)) != NULL)
			r = lines_in(sb->doc, 0, sb->doc->nlines, fn, ctx);
		else if (!(doc->ents[t - 1].flags & E_DEAD))
			r = lines_in(doc, region_first(doc, t - 1), stop, fn,
				     ctx);
		if (r != 0)
			return r;
		l = region_first(doc, t - 1);
	}
}

struct eol_find {
	const tp_doc *top;
	const char *eol;
};

static int
eol_fn(const tp_doc *d, size_t l, void *ctx)
{
	struct eol_find *f = ctx;

	if (d->lines[l].nl) {
		f->eol = base_eol(d, l);
		return 1;
	}
	/*
	 * The file's unterminated last line (in data or in its entry's
	 * sub-document), ended before appended ones.
	 */
	if (f->top->tail_eol != NULL) {
		f->eol = f->top->tail_eol;
		return 1;
	}
	return 0;
}

/*
 * eol_before - the terminator of the last terminated line written
 * before slot s (s == nents: the end), NULL when there is none; as
 * doc_append and doc_eol read it in the document written whole
 */
static const char *
eol_before(const tp_doc *doc, size_t s)
{
	struct eol_find f = { doc, NULL };

	(void)lines_before(doc, s, eol_fn, &f);
	return f.eol;
}

static const char *
append_eol(const tp_doc *doc)
{
	const char *eol = eol_before(doc, doc->nents);

	return eol ? eol : "\n";
}

/*
 * above_is_annotation - is the line just above slot s's region (s ==
 * nents: the end of the document), as the document is now, a comment
 * "# tlspolicy:"? Then what is below it would take it as its annotation,
 * something only a parse of the whole document gets right.
 */
static int
above_is_annotation(const tp_doc *doc, size_t s)
{
	size_t t = s, pos = s >= doc->nbase ? doc->nlines : region_first(doc, s);

	/* pos: the line below the one asked about (base line index). */
	while (t-- > 0) {
		if (t >= doc->nbase) {
			if (!(doc->ents[t].flags & E_DEAD))
				return 0;	/* an entry's last line */
			continue;
		}
		if (region_end(doc, t) < pos)
			break;		/* pos - 1 is between regions */
		if (!(doc->ents[t].flags & E_DEAD))
			return 0;
		pos = region_first(doc, t);
	}
	return pos > 0 && doc->lines[pos - 1].kind == L_COMMENT &&
	       annot_fields(doc, pos - 1) != NULL;
}

/*
 * The changed keys, each with the record it had before the edit, as
 * [u32 key length][key][u8 had a record][u32 value length][value].
 */
static int
dirty_put(tp_doc *doc, const char *k, size_t len, const char *old,
	  size_t oldlen)
{
	uint32_t n = (uint32_t)len, vn = (uint32_t)oldlen;
	unsigned char had = old != NULL;

	if (len > UINT32_MAX || oldlen > UINT32_MAX ||
	    tp__buf_put(&doc->dirty, (const char *)&n, sizeof(n)) != TP_OK ||
	    tp__buf_put(&doc->dirty, k, len) != TP_OK ||
	    tp__buf_putc(&doc->dirty, (char)had) != TP_OK ||
	    tp__buf_put(&doc->dirty, (const char *)&vn, sizeof(vn)) != TP_OK ||
	    (oldlen && tp__buf_put(&doc->dirty, old, oldlen) != TP_OK))
		return TP_ENOMEM;
	doc->ndirty++;
	return TP_OK;
}

/*
 * mark_dirty - the record of key k may differ from the db's: listed
 * with the record it has now, before the edit
 */
static int
mark_dirty(tp_doc *doc, const char *k, size_t len)
{
	const char *old = NULL;
	size_t oldlen = 0;
	int status = tp__doc_record(doc, k, len, &old, &oldlen);

	if (status == TP_ENOTFOUND)
		old = NULL;
	else if (status != TP_OK)
		return status;
	return dirty_put(doc, k, len, old, oldlen);
}

size_t
tp__doc_dirty_count(const tp_doc *doc)
{
	return doc->ndirty;
}

int
tp__doc_dirty_next(const tp_doc *doc, size_t *pos, const char **key,
		   size_t *len, const char **old, size_t *oldlen)
{
	uint32_t n, vn;
	const char *p = doc->dirty.ptr + *pos;

	if (*pos + sizeof(n) > doc->dirty.size)
		return 0;
	memcpy(&n, p, sizeof(n));
	*key = p + sizeof(n);
	*len = n;
	p += sizeof(n) + n;
	memcpy(&vn, p + 1, sizeof(vn));
	*old = *p ? p + 1 + sizeof(vn) : NULL;
	*oldlen = vn;
	*pos += sizeof(n) + n + 1 + sizeof(vn) + vn;
	return 1;
}

void
tp__doc_whole_edits(tp_doc *doc, int on)
{
	doc->whole = on;
}

void
tp__doc_dirty_clear(tp_doc *doc)
{
	tp__buf_truncate(&doc->dirty, 0);
	doc->ndirty = 0;
}

int
tp__doc_record(const tp_doc *doc, const char *key, size_t klen,
	       const char **value, size_t *vlen)
{
	struct view v;
	size_t s;
	int status;

	if ((status = find_slot((tp_doc *)doc, key, klen, &s)) != TP_OK)
		return status;
	entry_view(doc, s, &v);
	*value = ent_val(v.d, v.e);
	*vlen = v.e->val_len;
	return TP_OK;
}

static int
buf_sink(void *ctx, const char *p, size_t n)
{
	return tp__buf_put(ctx, p, n);
}

int
tp_doc_serialize(const tp_doc *doc, tp_buf *out)
{
	int status;

	/* A scan's bytes are not the file's any more (tp__doc_scan()). */
	if (doc == NULL || out == NULL || doc->is_scan)
		return TP_EUSAGE;
	tp__buf_truncate(out, 0);
	if ((status = tp__doc_emit(doc, buf_sink, out)) != TP_OK)
		tp__buf_truncate(out, 0);
	return status == TP_OK ? TP_OK : TP_ENOMEM;
}

/*
 * An edited document's warnings are those of its bytes as they are now:
 * parsed once on demand (the edits keep no warnings of their own).
 */
static const tp_doc *
warn_doc(const tp_doc *doc)
{
	tp_doc *d = (tp_doc *)doc;
	tp_buf bytes = TP_BUF_INIT;

	if (!doc_edited(doc))
		return doc;
	if (d->wdoc == NULL && tp__doc_emit(doc, buf_sink, &bytes) == TP_OK)
		(void)doc_new(&d->wdoc, &bytes, doc->name, &doc->opts, parse_all);
	tp_buf_dispose(&bytes);
	return d->wdoc;
}

size_t
tp_doc_warning_count(const tp_doc *doc)
{
	const tp_doc *w = doc ? warn_doc(doc) : NULL;

	return w ? w->nwarns : 0;
}

const tp_doc_warning *
tp_doc_warning_at(const tp_doc *doc, size_t i)
{
	const tp_doc *w = doc ? warn_doc(doc) : NULL;

	return w && i < w->nwarns ? w->pub_warns + i : NULL;
}

size_t
tp_doc_entry_count(const tp_doc *doc)
{
	return doc ? doc->nents - doc->ndead : 0;
}

int
tp_doc_entry_at(const tp_doc *doc, size_t i, tp_entry *out)
{
	const struct ent *e;
	const struct annot *an;
	struct view v;

	if (doc == NULL || out == NULL || i >= tp_doc_entry_count(doc))
		return TP_EUSAGE;
	entry_view(doc, slot_of(doc, i), &v);
	doc = v.d;
	e = v.e;
	memset(out, 0, sizeof(*out));
	out->key = ent_key(doc, e);
	out->key_len = ent_key_len(e);
	out->value = ent_val(doc, e);
	out->value_len = e->val_len;
	out->raw_key = ent_raw(doc, e);
	out->line = (unsigned long)((long)e->first + 1 + v.line_off);
	out->last_line = (unsigned long)((long)e->last + 1 + v.line_off);
	out->duplicate = v.dup;
	if ((an = ent_annot(doc, e)) != NULL) {
		if (an->from_count) {
			out->from = doc->hosts + an->from_first;
			out->from_count = an->from_count;
		}
		if (an->kind != NONE32)
			out->pin_kind = doc->arena.ptr + an->kind;
		if (an->key_count) {
			out->keys = doc->hosts + an->key_first;
			out->key_count = an->key_count;
		}
	}
	return TP_OK;
}

void
tp__doc_kv(const tp_doc *doc, size_t i, const char **key, size_t *klen,
	   const char **value, size_t *vlen, int *dup)
{
	size_t s = slot_of(doc, i);
	const struct sub *sb = sub_find(doc, s);
	const tp_doc *d = sb ? sb->doc : doc;
	const struct ent *e = sb ? sb->doc->ents : doc->ents + s;

	*key = ent_key(d, e);
	*klen = ent_key_len(e);
	*value = ent_val(d, e);
	*vlen = e->val_len;
	*dup = (doc->ents[s].flags & E_DUP) != 0;
}

int
tp_key_fold(tp_buf *out, const char *key, const tp_doc_opts *opts)
{
	static const tp_doc_opts defaults = TP_DOC_OPTS_INIT;
	tp__folder folder = TP__FOLDER_INIT;
	int status;

	if (out == NULL || key == NULL)
		return TP_EUSAGE;
	if (opts == NULL)
		opts = &defaults;
	tp__buf_truncate(out, 0);
	status = tp__fold_key(&folder, out, key, strlen(key), opts->utf8,
			      opts->fold_case);
	tp__folder_close(&folder);
	if (status == TP_OK)
		status = tp__buf_put(out, "", 0);
	if (status != TP_OK)
		tp__buf_truncate(out, 0);
	return status;
}

int
tp_doc_find(const tp_doc *doc, const char *key, size_t *index)
{
	tp_buf k = TP_BUF_INIT;
	size_t s;
	int status;

	if (doc == NULL || key == NULL)
		return TP_EUSAGE;
	if ((status = tp_key_fold(&k, key, &doc->opts)) != TP_OK)
		return status == TP_EINVALID ? TP_ENOTFOUND : status;
	status = find_slot((tp_doc *)doc, k.ptr, k.size, &s);
	if (status == TP_OK && index)
		*index = index_of(doc, s);
	tp_buf_dispose(&k);
	return status;
}

/*
 * Edits.
 */

struct repl {
	size_t start, end;	/* bytes replaced */
	size_t text, len;	/* replacement in the edit's text buffer */
	size_t seq;		/* inserts at one point keep their order */
};

struct edit {
	struct repl *r;
	size_t n, alloc;
	tp_buf text;
};

static int
edit_add(struct edit *ed, size_t start, size_t end, const char *s, size_t len)
{
	struct repl *r;

	if (grow_array((void **)&ed->r, &ed->alloc, ed->n + 1,
		       sizeof(*ed->r)) != TP_OK)
		return TP_ENOMEM;
	r = ed->r + ed->n++;
	r->start = start;
	r->end = end;
	r->text = ed->text.size;
	r->len = len;
	r->seq = ed->n - 1;
	return tp__buf_put(&ed->text, s, len);
}

static int
edit_adds(struct edit *ed, size_t start, size_t end, const char *s)
{
	return edit_add(ed, start, end, s, strlen(s));
}

static void
edit_free(struct edit *ed)
{
	free(ed->r);
	tp_buf_dispose(&ed->text);
}

static int
cmp_repl(const void *a, const void *b)
{
	const struct repl *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

/* edit_apply - new bytes with every replacement, in a fresh buffer */

static int
edit_apply(const tp_doc *doc, struct edit *ed, tp_buf *out)
{
	size_t pos = 0, i;

	if (ed->n > 1)
		qsort(ed->r, ed->n, sizeof(*ed->r), cmp_repl);
	for (i = 0; i < ed->n; i++) {
		/*
		 * Deletions of neighbouring tokens may share a separator:
		 * they merge. Any other overlap is a bug in the caller.
		 */
		if (ed->r[i].start < pos) {
			if (ed->r[i].len != 0)
				return TP_EUSAGE;
			if (ed->r[i].end > pos)
				pos = ed->r[i].end;
			continue;
		}
		if (tp__buf_put(out, doc->data.ptr + pos,
				ed->r[i].start - pos) != TP_OK ||
		    tp__buf_put(out, ed->text.ptr + ed->r[i].text,
				ed->r[i].len) != TP_OK)
			return TP_ENOMEM;
		pos = ed->r[i].end;
	}
	return tp__buf_put(out, doc->data.ptr + pos, doc->data.size - pos);
}

/* doc_swap - move the parsed result of an edit into doc */

static void
doc_swap(tp_doc *doc, tp_doc *fresh)
{
	tp_doc tmp = *doc;

	*doc = *fresh;
	*fresh = tmp;
	/* What the document knows beyond its bytes stays with it. */
	doc->dirty = fresh->dirty;
	doc->ndirty = fresh->ndirty;
	doc->eol_above = fresh->eol_above;
	doc->whole = fresh->whole;
	fresh->dirty = (tp_buf)TP_BUF_INIT;
	fresh->ndirty = 0;
	tp_doc_free(fresh);
}

typedef int (*edit_check)(const tp_doc *before, const tp_doc *after,
			  size_t i, const void *arg);

/*
 * edit_commit - apply ed, parse, and keep the result only when the entry
 * the caller meant is still there (check), else TP_EUSAGE and no change.
 */
static int
edit_commit(tp_doc *doc, struct edit *ed, size_t i, edit_check check,
	    const void *arg)
{
	tp_buf bytes = TP_BUF_INIT;
	tp_doc *fresh;
	int status;

	if ((status = edit_apply(doc, ed, &bytes)) != TP_OK) {
		tp_buf_dispose(&bytes);
		return status;
	}
	status = doc_new(&fresh, &bytes, doc->name, &doc->opts, parse_all);
	tp_buf_dispose(&bytes);
	if (status != TP_OK)
		return status;
	if (check && !check(doc, fresh, i, arg)) {
		tp_doc_free(fresh);
		return TP_EUSAGE;
	}
	doc_swap(doc, fresh);
	return TP_OK;
}

/* same_entry - the edit kept the entry count and the entry's key */

static int
same_entry(const tp_doc *before, const tp_doc *after, size_t i,
	   const void *arg)
{
	const struct ent *a = before->ents + i, *b = after->ents + i;

	(void)arg;
	return before->nents == after->nents &&
	       a->raw_len == b->raw_len &&
	       memcmp(ent_raw(before, a), ent_raw(after, b), a->raw_len) == 0 &&
	       (a->flags & E_DUP) == (b->flags & E_DUP);
}

/* Tokens of an entry's value, as byte ranges of the document. */

struct tok {
	size_t s, e;		/* bytes [s, e) */
	size_t line;		/* physical line index */
	size_t eq;		/* offset of '=' from s, or NONE */
};

struct toks {
	struct tok *t;
	size_t n, alloc;
};

/*
 * entry_tokens - the value tokens of entry i. The logical text is built
 * again with a map from logical offsets back to physical lines.
 */
static int
entry_tokens(const tp_doc *doc, size_t i, struct toks *tk)
{
	const struct ent *e = doc->ents + i;
	tp_buf text = TP_BUF_INIT;
	size_t *seg_line = NULL, *seg_log = NULL, nseg = 0, aseg = 0, aseg2 = 0;
	size_t l, klen, vs, ve, p, q, sg;
	struct tok *t;
	int status = TP_ENOMEM;

	for (l = e->first; l <= e->last; l++) {
		if (doc->lines[l].kind != L_START && doc->lines[l].kind != L_CONT)
			continue;
		if (grow_array((void **)&seg_line, &aseg, nseg + 1,
			       sizeof(*seg_line)) != TP_OK ||
		    grow_array((void **)&seg_log, &aseg2, nseg + 1,
			       sizeof(*seg_log)) != TP_OK)
			goto out;
		seg_line[nseg] = l;
		seg_log[nseg++] = text.size;
		if (tp__buf_put(&text, line_ptr(doc, l), doc->lines[l].len) !=
		    TP_OK)
			goto out;
	}
	if (tp__buf_put(&text, "", 0) != TP_OK)
		goto out;
	klen = key_scan(text.ptr, text.size);
	status = TP_EUSAGE;
	if (klen == NONE)
		goto out;
	value_range(text.ptr, text.size, klen, &vs, &ve);
	status = TP_ENOMEM;
	sg = 0;
	for (p = vs; p < ve;) {
		if (is_sep((unsigned char)text.ptr[p])) {
			p++;
			continue;
		}
		while (sg + 1 < nseg && seg_log[sg + 1] <= p)
			sg++;
		q = p;
		while (q < ve && !is_sep((unsigned char)text.ptr[q]) &&
		       (sg + 1 >= nseg || q < seg_log[sg + 1]))
			q++;
		if (grow_array((void **)&tk->t, &tk->alloc, tk->n + 1,
			       sizeof(*tk->t)) != TP_OK)
			goto out;
		t = tk->t + tk->n++;
		t->line = seg_line[sg];
		t->s = doc->lines[t->line].off + (p - seg_log[sg]);
		t->e = t->s + (q - p);
		{
			const char *eq = memchr(text.ptr + p, '=', q - p);

			t->eq = eq ? (size_t)(eq - (text.ptr + p)) : NONE;
		}
		p = q;
	}
	status = TP_OK;
out:
	free(seg_line);
	free(seg_log);
	tp_buf_dispose(&text);
	return status;
}

static int
tok_is(const tp_doc *doc, const struct tok *t, const char *name)
{
	size_t n = strlen(name);

	return t->eq == n && strncasecmp(doc->data.ptr + t->s, name, n) == 0;
}

static int
is_ws_or_sep(unsigned char c)
{
	return is_space(c) || c == ',';
}

/* line_terminator - "\r\n" when line l ends that way, else "\n" */

static const char *
line_eol(const tp_doc *doc, size_t l)
{
	const struct line *ln = doc->lines + l;

	if (ln->nl && ln->len > 0 && line_ptr(doc, l)[ln->len - 1] == '\r')
		return "\r\n";
	return "\n";
}

/* doc_eol - line l's terminator, or the one before it when l has none */

static const char *
doc_eol(const tp_doc *doc, size_t l)
{
	if (!doc->lines[l].nl && l > 0)
		return line_eol(doc, l - 1);
	/* A sub-document's first line: the line above it is outside. */
	if (!doc->lines[l].nl && doc->eol_above != NULL)
		return doc->eol_above;
	return line_eol(doc, l);
}

/* content_end - where to insert before line l's terminator */

static size_t
content_end(const tp_doc *doc, size_t l)
{
	const struct line *ln = doc->lines + l;

	if (line_eol(doc, l)[0] == '\r')
		return ln->off + ln->len - 1;
	return ln->off + ln->len;
}

/*
 * remove_doomed - delete the tokens marked in doomed[]; a continuation
 * line left with nothing but separators goes too, with its newline.
 */
static int
remove_doomed(const tp_doc *doc, size_t i, const struct toks *tk,
	      const char *doomed, struct edit *ed)
{
	const struct ent *e = doc->ents + i;
	const char *d = doc->data.ptr;
	const struct tok *t;
	const struct line *ln;
	size_t j, k, ls, le, p, q, first;
	int empty, status;

	for (j = 0; j < tk->n; j++) {
		if (!doomed[j])
			continue;
		t = tk->t + j;
		ln = doc->lines + t->line;
		ls = ln->off;
		le = ln->off + ln->len;
		/* Empty once every doomed token of this line is gone? */
		empty = t->line != e->first;
		for (p = ls; p < le && empty;) {
			for (k = 0; k < tk->n; k++)
				if (doomed[k] && tk->t[k].s == p)
					break;
			if (k < tk->n)
				p = tk->t[k].e;
			else if (is_ws_or_sep((unsigned char)d[p]))
				p++;
			else
				empty = 0;
		}
		if (empty) {
			if (ln->nl)
				status = edit_add(ed, ls, le + 1, "", 0);
			else	/* last line of a file with no final newline */
				status = edit_add(ed,
						  content_end(doc, t->line - 1),
						  le, "", 0);
		} else {
			for (p = t->s;
			     p > ls && is_ws_or_sep((unsigned char)d[p - 1]);
			     p--)
				;
			for (q = t->e;
			     q < le && is_ws_or_sep((unsigned char)d[q]); q++)
				;
			for (first = ls;
			     first < le && is_space((unsigned char)d[first]);
			     first++)
				;
			/* Take the separator before it, or after when first. */
			if (t->s > first)
				status = edit_add(ed, p, t->e, "", 0);
			else
				status = edit_add(ed, t->s, q, "", 0);
		}
		if (status != TP_OK)
			return status;
	}
	return TP_OK;
}

static int
bad_word(const char *s, int extra)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL || *p == '\0' || *p == '#')
		return 1;
	for (; *p; p++)
		if (is_space(*p) || *p == ',' || *p == extra)
			return 1;
	return 0;
}

static int
bad_utf8(const tp_doc *doc, const char *s)
{
	return doc->opts.utf8 && !tp__allascii(s, strlen(s)) &&
	       !tp__utf8_valid(s, strlen(s));
}

static int
doc_set_level(tp_doc *doc, size_t i, const char *level)
{
	struct toks tk = { NULL, 0, 0 };
	struct edit ed = { NULL, 0, 0, TP_BUF_INIT };
	int status;

	if (doc == NULL || i >= doc->nents || bad_word(level, '=') ||
	    bad_utf8(doc, level))
		return TP_EUSAGE;
	if ((status = entry_tokens(doc, i, &tk)) == TP_OK) {
		status = tk.n == 0 ? TP_EUSAGE :
		    edit_adds(&ed, tk.t[0].s, tk.t[0].e, level);
		if (status == TP_OK)
			status = edit_commit(doc, &ed, i, same_entry, NULL);
	}
	free(tk.t);
	edit_free(&ed);
	return status;
}

static int
doc_set_attr(tp_doc *doc, size_t i, const char *name, const char *value)
{
	struct toks tk = { NULL, 0, 0 };
	struct edit ed = { NULL, 0, 0, TP_BUF_INIT };
	size_t j, found = NONE;
	char *doomed = NULL;
	int status;

	if (doc == NULL || i >= doc->nents || bad_word(name, '=') ||
	    strcasecmp(name, "match") == 0 || bad_utf8(doc, name) ||
	    (value != NULL && (*value == '\0' || bad_word(value, 0) ||
			       bad_utf8(doc, value))))
		return TP_EUSAGE;
	if ((status = entry_tokens(doc, i, &tk)) != TP_OK)
		goto out;
	if (tk.n && (doomed = calloc(tk.n, 1)) == NULL) {
		status = TP_ENOMEM;
		goto out;
	}
	for (j = 1; j < tk.n && status == TP_OK; j++) {
		if (!tok_is(doc, tk.t + j, name))
			continue;
		if (found == NONE && value != NULL)
			status = edit_adds(&ed, tk.t[j].s + tk.t[j].eq + 1,
					   tk.t[j].e, value);
		else
			doomed[j] = 1;
		if (found == NONE)
			found = j;
	}
	if (status == TP_OK && tk.n)
		status = remove_doomed(doc, i, &tk, doomed, &ed);
	if (status == TP_OK && found == NONE && value != NULL && tk.n > 0) {
		size_t at = tk.t[tk.n - 1].e;

		if ((status = edit_adds(&ed, at, at, " ")) == TP_OK &&
		    (status = edit_adds(&ed, at, at, name)) == TP_OK &&
		    (status = edit_adds(&ed, at, at, "=")) == TP_OK)
			status = edit_adds(&ed, at, at, value);
	}
	if (status == TP_OK)
		status = edit_commit(doc, &ed, i, same_entry, NULL);
out:
	free(doomed);
	free(tk.t);
	edit_free(&ed);
	return status;
}

/* join_pins - "p1|p2|..." */

static int
join_pins(tp_buf *b, const char *const *pins, size_t from, size_t n)
{
	size_t j;

	for (j = from; j < n; j++)
		if ((j > from && tp__buf_putc(b, '|') != TP_OK) ||
		    tp__buf_puts(b, pins[j]) != TP_OK)
			return TP_ENOMEM;
	return TP_OK;
}

static int
doc_set_pins(tp_doc *doc, size_t i, const char *const *pins, size_t n)
{
	struct toks tk = { NULL, 0, 0 };
	struct edit ed = { NULL, 0, 0, TP_BUF_INIT };
	tp_buf b = TP_BUF_INIT;
	size_t *m = NULL, nm = 0, j, p, ls, at;
	char *doomed = NULL;
	const char *d;
	int status, pipes, on_lines;

	if (doc == NULL || i >= doc->nents || (n > 0 && pins == NULL))
		return TP_EUSAGE;
	for (j = 0; j < n; j++)
		if (bad_word(pins[j], '|') || bad_utf8(doc, pins[j]))
			return TP_EUSAGE;
	d = doc->data.ptr;
	if ((status = entry_tokens(doc, i, &tk)) != TP_OK)
		goto out;
	status = TP_ENOMEM;
	if (tk.n && ((m = malloc(tk.n * sizeof(*m))) == NULL ||
		     (doomed = calloc(tk.n, 1)) == NULL))
		goto out;
	for (j = 1; j < tk.n; j++)
		if (tok_is(doc, tk.t + j, "match"))
			m[nm++] = j;
	status = TP_OK;
	if (nm == 0) {
		/* No layout to follow: one attribute after the last token. */
		if (n > 0 && tk.n > 0) {
			at = tk.t[tk.n - 1].e;
			if (tp__buf_puts(&b, " match=") != TP_OK ||
			    join_pins(&b, pins, 0, n) != TP_OK)
				status = TP_ENOMEM;
			else
				status = edit_add(&ed, at, at, b.ptr, b.size);
		}
		goto commit;
	}
	pipes = nm == 1 || memchr(d + tk.t[m[0]].s, '|',
				  tk.t[m[0]].e - tk.t[m[0]].s) != NULL;
	if (pipes) {
		/* "match=A|B": all pins in the first attribute. */
		for (j = (n > 0); j < nm; j++)
			doomed[m[j]] = 1;
		status = remove_doomed(doc, i, &tk, doomed, &ed);
		if (status == TP_OK && n > 0) {
			if (join_pins(&b, pins, 0, n) != TP_OK)
				status = TP_ENOMEM;
			else
				status = edit_add(&ed,
						  tk.t[m[0]].s + tk.t[m[0]].eq + 1,
						  tk.t[m[0]].e, b.ptr, b.size);
		}
		goto commit;
	}
	/* One pin per match attribute: reuse them, then add or remove. */
	for (j = 0; j < nm && status == TP_OK; j++) {
		const struct tok *t = tk.t + m[j];

		if (j < n)
			status = edit_adds(&ed, t->s + t->eq + 1, t->e, pins[j]);
		else
			doomed[m[j]] = 1;
	}
	if (status == TP_OK)
		status = remove_doomed(doc, i, &tk, doomed, &ed);
	if (status != TP_OK || n <= nm)
		goto commit;
	/* The second attribute shows the layout: own line, or separator. */
	ls = doc->lines[tk.t[m[1]].line].off;
	for (p = tk.t[m[1]].s; p > ls && is_ws_or_sep((unsigned char)d[p - 1]);
	     p--)
		;
	on_lines = p == ls;
	{
		const struct tok *last = tk.t + m[nm - 1];
		const char *eol = doc_eol(doc, last->line);

		for (j = nm; j < n && status == TP_OK; j++) {
			if (on_lines) {
				if (tp__buf_puts(&b, eol) != TP_OK ||
				    tp__buf_put(&b, d + ls,
						tk.t[m[1]].s - ls) != TP_OK)
					status = TP_ENOMEM;
			} else if (tp__buf_put(&b, d + p,
					       tk.t[m[1]].s - p) != TP_OK) {
				status = TP_ENOMEM;
			}
			if (status == TP_OK &&
			    (tp__buf_puts(&b, "match=") != TP_OK ||
			     tp__buf_puts(&b, pins[j]) != TP_OK))
				status = TP_ENOMEM;
		}
		at = on_lines ? content_end(doc, last->line) : last->e;
		if (status == TP_OK)
			status = edit_add(&ed, at, at, b.ptr, b.size);
	}
commit:
	if (status == TP_OK)
		status = edit_commit(doc, &ed, i, same_entry, NULL);
out:
	free(doomed);
	free(m);
	free(tk.t);
	tp_buf_dispose(&b);
	edit_free(&ed);
	return status;
}

/*
 * What an annotation edit sets. A field being set with no value (from
 * with n == 0, pin NULL, keys with n == 0) is removed; fields not set,
 * and words the parser does not know, stay as they are.
 */
struct ann_set {
	int set_from, set_kind, set_keys, remove;
	const char *const *hosts;
	size_t n;
	const char *kind;
	const char *const *keys;
	size_t nkeys;
	const char *field;	/* another field, set to field_value (NULL removes) */
	const char *field_value;
};

static int
same_annotation(const tp_doc *before, const tp_doc *after, size_t i,
		const void *arg)
{
	const struct ann_set *s = arg;
	const struct annot *an;

	if (!same_entry(before, after, i, NULL))
		return 0;
	an = ent_annot(after, after->ents + i);
	if (s->remove)
		return an == NULL;
	if (s->set_from && (an ? an->from_count : 0) != s->n)
		return 0;
	if (s->set_keys && (an ? an->key_count : 0) != s->nkeys)
		return 0;
	if (s->field != NULL) {
		tp_buf v = TP_BUF_INIT;
		int st = tp_doc_annotation_field(after, i, s->field, &v), same;

		same = s->field_value == NULL ? st == TP_ENOTFOUND
		    : st == TP_OK && strcmp(v.ptr ? v.ptr : "", s->field_value) == 0;
		tp_buf_dispose(&v);
		if (!same)
			return 0;
	}
	if (!s->set_kind)
		return 1;
	if (s->kind == NULL)
		return an == NULL || an->kind == NONE32;
	return an != NULL && an->kind != NONE32 &&
	       strcmp(after->arena.ptr + an->kind, s->kind) == 0;
}

/* field_text - "name=w1,w2" into b, or 0 when there is nothing to set */

static int
field_text(tp_buf *b, const char *name, const char *const *words, size_t n)
{
	size_t j;

	tp__buf_truncate(b, 0);
	if (n == 0)
		return 0;
	if (tp__buf_puts(b, name) != TP_OK || tp__buf_putc(b, '=') != TP_OK)
		return -1;
	for (j = 0; j < n; j++)
		if ((j && tp__buf_putc(b, ',') != TP_OK) ||
		    tp__buf_puts(b, words[j]) != TP_OK)
			return -1;
	return 1;
}

static int
bad_words(const tp_doc *doc, const char *const *w, size_t n)
{
	size_t j;

	if (n > 0 && w == NULL)
		return 1;
	for (j = 0; j < n; j++)
		if (bad_word(w[j], 0) || bad_utf8(doc, w[j]))
			return 1;
	return 0;
}

enum { F_FROM, F_PIN, F_KEYS, F_OTHER, F_COUNT };

static int
doc_edit_annotation(tp_doc *doc, size_t i, const struct ann_set *s)
{
	const char *names[F_COUNT] = { "from", "pin", "keys", s->field };
	struct edit ed = { NULL, 0, 0, TP_BUF_INIT };
	tp_buf text[F_COUNT] = { TP_BUF_INIT, TP_BUF_INIT, TP_BUF_INIT, TP_BUF_INIT };
	tp_buf b = TP_BUF_INIT;
	int set[F_COUNT], has[F_COUNT], done[F_COUNT] = { 0, 0, 0, 0 };
	const struct ent *e;
	const char *f, *p, *end, *tok, *prev;
	size_t al, kept = 0, k, start, at;
	int status = TP_OK, r;

	if (doc == NULL || i >= doc->nents ||
	    (s->set_from && bad_words(doc, s->hosts, s->n)) ||
	    (s->set_keys && bad_words(doc, s->keys, s->nkeys)) ||
	    (s->set_kind && s->kind != NULL && (bad_word(s->kind, 0) ||
						bad_utf8(doc, s->kind))) ||
	    (s->field != NULL && s->field_value != NULL &&
	     (bad_word(s->field_value, 0) || bad_utf8(doc, s->field_value))))
		return TP_EUSAGE;
	e = doc->ents + i;
	al = ent_ann_line(e);
	set[F_FROM] = s->set_from;
	set[F_PIN] = s->set_kind;
	set[F_KEYS] = s->set_keys;
	set[F_OTHER] = s->field != NULL;
	for (k = 0; k < F_COUNT; k++) {
		if (k == F_PIN)
			r = field_text(text + k, "pin", &s->kind, s->kind != NULL);
		else if (k == F_FROM)
			r = field_text(text + k, "from", s->hosts, s->n);
		else if (k == F_KEYS)
			r = field_text(text + k, "keys", s->keys, s->nkeys);
		else if (s->field != NULL)
			r = field_text(text + k, s->field, &s->field_value,
				       s->field_value != NULL);
		else
			r = 0;
		if (r < 0) {
			status = TP_ENOMEM;
			goto out;
		}
		has[k] = set[k] && r > 0;
	}
	if (s->remove) {
		if (al != NONE)
			status = edit_add(&ed, doc->lines[al].off,
					  doc->lines[al].off + doc->lines[al].len +
					  doc->lines[al].nl, "", 0);
		goto commit;
	}
	if (al == NONE) {
		/* A new line above the entry, in the entry's line style. */
		if (!has[F_FROM] && !has[F_PIN] && !has[F_KEYS] && !has[F_OTHER])
			goto commit;	/* nothing to remove, nothing to write */
		status = tp__buf_puts(&b, "# tlspolicy:");
		for (k = 0; k < F_COUNT && status == TP_OK; k++)
			if (has[k] && (status = tp__buf_putc(&b, ' ')) == TP_OK)
				status = tp__buf_put(&b, text[k].ptr, text[k].size);
		if (status == TP_OK &&
		    (status = tp__buf_puts(&b, doc_eol(doc, e->first))) == TP_OK)
			status = edit_add(&ed, doc->lines[e->first].off,
					  doc->lines[e->first].off, b.ptr,
					  b.size);
		goto commit;
	}
	/* Edit the words of the line in place: the first of a field is
	 * replaced, later ones (and removed fields) go with the blanks
	 * before them; fields not there yet are appended. */
	f = annot_fields(doc, al);
	end = line_ptr(doc, al) + doc->lines[al].len;
	at = (size_t)(f - doc->data.ptr);
	for (p = prev = f; p < end && status == TP_OK;) {
		while (p < end && is_space((unsigned char)*p))
			p++;
		if (p == end)
			break;
		for (tok = p; p < end && !is_space((unsigned char)*p); p++)
			;
		for (k = 0; k < F_COUNT; k++)
			if (set[k] && field_is(tok, p, names[k]))
				break;
		/* Appends go after the last word, kept or removed: an
		 * insertion must not fall inside a removed range. */
		start = (size_t)(tok - doc->data.ptr);
		at = (size_t)(p - doc->data.ptr);
		if (k == F_COUNT) {
			kept++;
		} else if (has[k] && !done[k]) {
			done[k] = 1;
			kept++;
			status = edit_add(&ed, start, at, text[k].ptr,
					  text[k].size);
		} else {
			status = edit_add(&ed, (size_t)(prev - doc->data.ptr),
					  at, "", 0);
		}
		prev = p;
	}
	for (k = 0; k < F_COUNT && status == TP_OK; k++)
		if (has[k] && !done[k]) {
			kept++;
			if ((status = edit_adds(&ed, at, at, " ")) == TP_OK)
				status = edit_add(&ed, at, at, text[k].ptr,
						  text[k].size);
		}
	if (status == TP_OK && kept == 0) {
		/* Nothing left to say: the whole line goes. */
		edit_free(&ed);
		memset(&ed, 0, sizeof(ed));
		status = edit_add(&ed, doc->lines[al].off,
				  doc->lines[al].off + doc->lines[al].len +
				  doc->lines[al].nl, "", 0);
	}
commit:
	if (status == TP_OK && ed.n == 0) {
		/* No change: no fresh document to swap in (and no parse of
		 * the whole file for nothing), so the NULs go back here. */
		doc_patch(doc, 1);
	} else if (status == TP_OK) {
		status = edit_commit(doc, &ed, i, same_annotation, s);
	}
out:
	for (k = 0; k < F_COUNT; k++)
		tp_buf_dispose(text + k);
	tp_buf_dispose(&b);
	edit_free(&ed);
	return status;
}

static int
doc_set_annotation(tp_doc *doc, size_t i, const char *const *hosts,
		   size_t n, const char *pin_kind)
{
	struct ann_set s = { 1, 1, 0, 0, hosts, n, pin_kind, NULL, 0, NULL, NULL };

	s.remove = n == 0 && pin_kind == NULL;
	return doc_edit_annotation(doc, i, &s);
}

static int
doc_set_annotation_keys(tp_doc *doc, size_t i, const char *const *keys,
			size_t n)
{
	struct ann_set s = { 0, 0, 1, 0, NULL, 0, NULL, keys, n, NULL, NULL };

	return doc_edit_annotation(doc, i, &s);
}

/* A field name of our own: lower-case letters, digits, '-'. */
static int
bad_field_name(const char *name)
{
	static const char *const own[] = { "from", "pin", "keys" };

	if (name == NULL || *name == '\0' || strlen(name) > 32)
		return 1;
	for (size_t j = 0; j < sizeof(own) / sizeof(own[0]); j++)
		if (strcmp(name, own[j]) == 0)
			return 1;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return 1;
	return 0;
}

static int
doc_set_annotation_field(tp_doc *doc, size_t i, const char *name, const char *value)
{
	struct ann_set s = { 0, 0, 0, 0, NULL, 0, NULL, NULL, 0, name, value };

	if (bad_field_name(name))
		return TP_EUSAGE;
	return doc_edit_annotation(doc, i, &s);
}

int
tp_doc_annotation_field(const tp_doc *doc, size_t i, const char *name,
			tp_buf *value)
{
	const char *p, *end, *tok;
	size_t al, n;
	struct view v;

	if (doc == NULL || value == NULL || i >= tp_doc_entry_count(doc) ||
	    name == NULL)
		return TP_EUSAGE;
	/* The entry as it is now: in data, or in its sub-document. */
	entry_view(doc, slot_of(doc, i), &v);
	doc = v.d;
	tp__buf_truncate(value, 0);
	if ((al = ent_ann_line(v.e)) == NONE ||
	    (p = annot_fields(doc, al)) == NULL)
		return TP_ENOTFOUND;
	end = line_ptr(doc, al) + doc->lines[al].len;
	n = strlen(name);
	/* The first word "name=VALUE" with a value, as the parser reads it. */
	while (p < end) {
		while (p < end && is_space((unsigned char)*p))
			p++;
		for (tok = p; p < end && !is_space((unsigned char)*p); p++)
			;
		if ((size_t)(p - tok) > n + 1 && memcmp(tok, name, n) == 0 &&
		    tok[n] == '=') {
			if (tp__buf_put(value, tok + n + 1, (size_t)(p - tok) - n - 1) != TP_OK)
				return TP_ENOMEM;
			return TP_OK;
		}
	}
	return TP_ENOTFOUND;
}

struct append_arg {
	const char *key, *value;
};

static int
appended(const tp_doc *before, const tp_doc *after, size_t i,
	 const void *arg)
{
	const struct append_arg *a = arg;
	const struct ent *e = after->ents + i;

	return after->nents == before->nents + 1 &&
	       e->raw_len == strlen(a->key) &&
	       memcmp(ent_raw(after, e), a->key, e->raw_len) == 0 &&
	       e->val_len == strlen(a->value) &&
	       memcmp(ent_val(after, e), a->value, e->val_len) == 0;
}

static int
doc_append(tp_doc *doc, const char *key, const char *value,
	   size_t *index)
{
	struct edit ed = { NULL, 0, 0, TP_BUF_INIT };
	struct append_arg arg = { key, value };
	const char *eol = "\n";
	size_t end, l;
	int status;

	if (doc == NULL || key == NULL || value == NULL ||
	    strchr(value, '\n') != NULL)
		return TP_EUSAGE;
	end = doc->data.size;
	/* New lines follow the file's style: its last terminated line. */
	for (l = doc->nlines; l > 0; l--)
		if (doc->lines[l - 1].nl) {
			eol = line_eol(doc, l - 1);
			break;
		}
	status = TP_OK;
	if (end > 0 && doc->data.ptr[end - 1] != '\n')
		status = edit_adds(&ed, end, end, eol);
	if (status == TP_OK &&
	    ((status = edit_adds(&ed, end, end, key)) != TP_OK ||
	     (status = edit_adds(&ed, end, end, "\t")) != TP_OK ||
	     (status = edit_adds(&ed, end, end, value)) != TP_OK))
		goto out;
	if (status == TP_OK && (status = edit_adds(&ed, end, end, eol)) ==
	    TP_OK) {
		status = edit_commit(doc, &ed, doc->nents, appended, &arg);
	}
	if (status == TP_OK && index)
		*index = doc->nents - 1;
out:
	edit_free(&ed);
	return status;
}

static int
removed(const tp_doc *before, const tp_doc *after, size_t i, const void *arg)
{
	(void)i;
	(void)arg;
	return after->nents + 1 == before->nents;
}

static int
doc_remove(tp_doc *doc, size_t i)
{
	struct edit ed = { NULL, 0, 0, TP_BUF_INIT };
	const struct ent *e;
	const struct line *last;
	size_t start;
	int status;

	if (doc == NULL || i >= doc->nents)
		return TP_EUSAGE;
	e = doc->ents + i;
	last = doc->lines + e->last;
	start = doc->lines[ent_ann_line(e) != NONE ? ent_ann_line(e) :
			   e->first].off;
	status = edit_add(&ed, start, last->off + last->len + last->nl, "", 0);
	if (status == TP_OK)
		status = edit_commit(doc, &ed, i, removed, NULL);
	edit_free(&ed);
	return status;
}

/*
 * How an edit of the document is done. Each edit function above works
 * on a flat document (no slots edited before): it replaces bytes and
 * parses the result whole. On the top document that would cost a parse
 * of the whole file per edit, so an entry is edited in a sub-document
 * holding just its region (annotation line through last line): the
 * edit parses those few lines, and the sub-document replaces the region
 * when the document is written. That is what a parse of the whole file
 * would give as long as the region stays a region: one entry, starting
 * at its first line or at its annotation, ending at its last line, with
 * the same line termination; and as long as no line around it changes
 * meaning: a "# tlspolicy:" comment left directly above an entry by the
 * edit (an annotation removed, or an entry removed, from below it)
 * would become that entry's annotation. In those cases, and when the
 * region parsed alone does not give back the entry, the document is
 * made flat again (written and parsed whole, once) and the edit is done
 * on all of it, as before.
 */
typedef int (*edit_fn)(tp_doc *doc, size_t i, const void *arg);

/*
 * The edits read the file's bytes: the in-place NULs come out first,
 * and go back when the edit fails (a successful one swapped in a fresh
 * document, patched by its parse).
 */
static int
edit_done(tp_doc *doc, int status)
{
	if (status != TP_OK)
		doc_patch(doc, 1);
	return status;
}

static int
flat_edit(tp_doc *doc, size_t i, edit_fn fn, const void *arg)
{
	doc_patch(doc, 0);
	return edit_done(doc, fn(doc, i, arg));
}

/* edits_changed - bookkeeping every successful edit does */
static void
edits_changed(tp_doc *doc)
{
	tp_doc_free(doc->wdoc);
	doc->wdoc = NULL;
}

/* doc_flatten - write the document and parse it whole, in place */
static int
doc_flatten(tp_doc *doc)
{
	tp_buf bytes = TP_BUF_INIT;
	tp_doc *fresh;
	int status;

	if (!doc_edited(doc))
		return TP_OK;
	if (tp__doc_emit(doc, buf_sink, &bytes) != 0) {
		tp_buf_dispose(&bytes);
		return TP_ENOMEM;
	}
	status = doc_new(&fresh, &bytes, doc->name, &doc->opts, parse_all);
	tp_buf_dispose(&bytes);
	if (status != TP_OK)
		return status;
	doc_swap(doc, fresh);
	edits_changed(doc);
	return TP_OK;
}

/* region_ok - sub is one entry's region, terminated as nl says */
static int
region_ok(const tp_doc *sub, int nl)
{
	const struct ent *e = sub->ents;

	return sub->nents == 1 && sub->nlines > 0 &&
	       (size_t)e->last + 1 == sub->nlines &&
	       e->first == (e->ann ? 1u : 0u) &&
	       sub->lines[sub->nlines - 1].nl == nl;
}

/* sub_new - parse bytes as a sub-document */
static int
sub_new(tp_doc *doc, tp_buf *bytes, const char *eol_above, tp_doc **out)
{
	int status = doc_new(out, bytes, doc->name, &doc->opts, parse_all);

	tp_buf_dispose(bytes);
	if (status == TP_OK)
		(*out)->eol_above = eol_above;
	return status;
}

/*
 * slot_work - a copy of slot s's region as a sub-document, to edit;
 * NEED_FLAT when the region parsed alone is not the entry.
 */
static int
slot_work(tp_doc *doc, size_t s, tp_doc **out)
{
	tp_buf bytes = TP_BUF_INIT;
	const struct sub *sb = sub_find(doc, s);
	const struct ent *e = doc->ents + s;
	const char *above = NULL;
	size_t rf;
	struct view v;
	int status, same;

	*out = NULL;
	/*
	 * The file's unterminated last line, ended now by the line break
	 * written before appended entries: the entry's edit must see it
	 * ended, as a parse of the whole file would.
	 */
	if (doc->tail_eol != NULL &&
	    (sb != NULL ? !sb->doc->lines[sb->doc->nlines - 1].nl :
	     s < doc->nbase && region_end(doc, s) == doc->nlines &&
	     !doc->lines[doc->nlines - 1].nl))
		return NEED_FLAT;
	above = eol_before(doc, s);
	if (sb != NULL) {
		if (tp__doc_emit(sb->doc, buf_sink, &bytes) != 0) {
			tp_buf_dispose(&bytes);
			return TP_ENOMEM;
		}
		return sub_new(doc, &bytes, above, out);
	}
	rf = region_first(doc, s);
	if (emit_data(doc, e, doc->lines[rf].off, line_end_off(doc, e->last),
		      buf_sink, &bytes) != 0) {
		tp_buf_dispose(&bytes);
		return TP_ENOMEM;
	}
	if ((status = sub_new(doc, &bytes, above, out)) != TP_OK)
		return status;
	entry_view(doc, s, &v);
	same = region_ok(*out, doc->lines[e->last].nl) &&
	       (*out)->ents->raw_len == e->raw_len &&
	       memcmp(ent_raw(*out, (*out)->ents), ent_raw(doc, e), e->raw_len) == 0 &&
	       (*out)->ents->val_len == e->val_len &&
	       memcmp(ent_val(*out, (*out)->ents), ent_val(doc, e), e->val_len) == 0;
	if (!same) {
		tp_doc_free(*out);
		*out = NULL;
		return NEED_FLAT;
	}
	return TP_OK;
}

/* sub_set - sub becomes slot s's sub-document (taking it) */
static int
sub_set(tp_doc *doc, size_t s, tp_doc *sub)
{
	struct sub *sb = sub_find(doc, s);
	size_t at;

	if (sb != NULL) {
		tp_doc_free(sb->doc);
		sb->doc = sub;
		return TP_OK;
	}
	if (grow_array((void **)&doc->subs, &doc->asubs, doc->nsubs + 1,
		       sizeof(*doc->subs)) != TP_OK)
		return TP_ENOMEM;
	for (at = doc->nsubs; at > 0 && doc->subs[at - 1].slot > s; at--)
		;
	memmove(doc->subs + at + 1, doc->subs + at,
		(doc->nsubs - at) * sizeof(*doc->subs));
	doc->subs[at].slot = s;
	doc->subs[at].doc = sub;
	doc->nsubs++;
	doc->ents[s].flags |= E_SUB;
	return TP_OK;
}

static void
sub_drop(tp_doc *doc, size_t s)
{
	struct sub *sb = sub_find(doc, s);
	size_t at;

	if (sb == NULL)
		return;
	at = (size_t)(sb - doc->subs);
	tp_doc_free(sb->doc);
	memmove(doc->subs + at, doc->subs + at + 1,
		(doc->nsubs - at - 1) * sizeof(*doc->subs));
	doc->nsubs--;
	doc->ents[s].flags &= (unsigned char)~E_SUB;
}

/* lines_changed - slot s's region went from before to after lines */
static int
lines_changed(tp_doc *doc, size_t s, size_t before, size_t after)
{
	if (before == after)
		return TP_OK;
	if (fen_make(doc, &doc->lfen, 0) != TP_OK)
		return TP_ENOMEM;
	fen_add(doc->lfen, doc->nents, s, (int32_t)after - (int32_t)before);
	return TP_OK;
}

/* entry_edit - fn on entry i, in its region (see above) or whole */
static int
entry_edit(tp_doc *doc, size_t i, edit_fn fn, const void *arg)
{
	tp_doc *work = NULL;
	size_t s, len;
	const char *k;
	int status, had_ann, nl;

	if (doc == NULL || i >= tp_doc_entry_count(doc))
		return TP_EUSAGE;
	s = slot_of(doc, i);
	if (doc->whole || (status = slot_work(doc, s, &work)) == NEED_FLAT)
		goto flat;
	if (status != TP_OK)
		return status;
	nl = work->lines[work->nlines - 1].nl;
	had_ann = work->ents->ann != 0;
	if ((status = flat_edit(work, 0, fn, arg)) != TP_OK) {
		tp_doc_free(work);
		return status;
	}
	if (!region_ok(work, nl) ||
	    (had_ann && !work->ents->ann && above_is_annotation(doc, s))) {
		tp_doc_free(work);
		goto flat;
	}
	k = ent_key(work, work->ents);
	len = ent_key_len(work->ents);
	if ((status = mark_dirty(doc, k, len)) != TP_OK ||
	    (status = lines_changed(doc, s, region_lines(doc, s),
				    work->nlines)) != TP_OK ||
	    (status = sub_set(doc, s, work)) != TP_OK) {
		tp_doc_free(work);
		return status;
	}
	edits_changed(doc);
	return TP_OK;
flat:
	if ((status = doc_flatten(doc)) != TP_OK)
		return status;
	k = slot_key(doc, i, &len);
	if ((status = mark_dirty(doc, k, len)) != TP_OK)
		return status;
	return flat_edit(doc, i, fn, arg);
}

/* The edits as edit_fn, their arguments in a struct. */

struct level_arg {
	const char *level;
};

static int
level_fn(tp_doc *doc, size_t i, const void *arg)
{
	return doc_set_level(doc, i, ((const struct level_arg *)arg)->level);
}

int
tp_doc_set_level(tp_doc *doc, size_t i, const char *level)
{
	struct level_arg a = { level };

	return entry_edit(doc, i, level_fn, &a);
}

struct attr_arg {
	const char *name, *value;
};

static int
attr_fn(tp_doc *doc, size_t i, const void *arg)
{
	const struct attr_arg *a = arg;

	return doc_set_attr(doc, i, a->name, a->value);
}

int
tp_doc_set_attr(tp_doc *doc, size_t i, const char *name, const char *value)
{
	struct attr_arg a = { name, value };

	return entry_edit(doc, i, attr_fn, &a);
}

struct list_arg {
	const char *const *words;
	size_t n;
	const char *kind;
};

static int
pins_fn(tp_doc *doc, size_t i, const void *arg)
{
	const struct list_arg *a = arg;

	return doc_set_pins(doc, i, a->words, a->n);
}

int
tp_doc_set_pins(tp_doc *doc, size_t i, const char *const *pins, size_t n)
{
	struct list_arg a = { pins, n, NULL };

	return entry_edit(doc, i, pins_fn, &a);
}

static int
annotation_fn(tp_doc *doc, size_t i, const void *arg)
{
	const struct list_arg *a = arg;

	return doc_set_annotation(doc, i, a->words, a->n, a->kind);
}

int
tp_doc_set_annotation(tp_doc *doc, size_t i, const char *const *hosts,
		      size_t n, const char *pin_kind)
{
	struct list_arg a = { hosts, n, pin_kind };

	return entry_edit(doc, i, annotation_fn, &a);
}

static int
keys_fn(tp_doc *doc, size_t i, const void *arg)
{
	const struct list_arg *a = arg;

	return doc_set_annotation_keys(doc, i, a->words, a->n);
}

int
tp_doc_set_annotation_keys(tp_doc *doc, size_t i, const char *const *keys,
			   size_t n)
{
	struct list_arg a = { keys, n, NULL };

	return entry_edit(doc, i, keys_fn, &a);
}

struct append_fn_arg {
	const char *key, *value;
	size_t *index;
};

static int
append_fn(tp_doc *doc, size_t i, const void *arg)
{
	const struct append_fn_arg *a = arg;

	(void)i;
	return doc_append(doc, a->key, a->value, a->index);
}

/* slot_add - a new slot at the end for sub, with its bookkeeping */
static int
slot_add(tp_doc *doc, tp_doc *sub)
{
	size_t s = doc->nents, found, len;
	const char *k = ent_key(sub, sub->ents);
	struct ent *e;

	len = ent_key_len(sub->ents);
	if (doc->nents == doc->aents) {
		size_t n = doc->aents + doc->aents / 4 + 16;
		void *p = realloc(doc->ents, n * sizeof(*doc->ents));

		if (p == NULL)
			return TP_ENOMEM;
		doc->ents = p;
		doc->aents = n;
	}
	if (fen_room(doc, s + 1) != TP_OK ||
	    fen_make(doc, &doc->lfen, 0) != TP_OK ||
	    mark_dirty(doc, k, len) != TP_OK)
		return TP_ENOMEM;
	/* Is the key there already? Then this one is a later duplicate. */
	if (find_slot(doc, k, len, &found) == TP_ENOMEM)
		return TP_ENOMEM;
	e = doc->ents + s;
	memset(e, 0, sizeof(*e));
	e->first = e->last = (uint32_t)doc->nlines;
	doc->nents++;
	if (sub_set(doc, s, sub) != TP_OK) {
		doc->nents--;
		return TP_ENOMEM;
	}
	fen_push(doc->lfen, s, (int32_t)sub->nlines);
	if (doc->afen != NULL)
		fen_push(doc->afen, s, 1);
	if (found != NONE) {
		e->flags |= E_DUP;
		doc->ndup++;
	} else if (kidx_put(doc, s) != TP_OK) {
		return TP_ENOMEM;
	}
	return TP_OK;
}

struct field_arg {
	const char *name, *value;
};

static int
field_fn(tp_doc *doc, size_t i, const void *arg)
{
	const struct field_arg *a = arg;

	return doc_set_annotation_field(doc, i, a->name, a->value);
}

int
tp_doc_set_annotation_field(tp_doc *doc, size_t i, const char *name,
			    const char *value)
{
	struct field_arg a = { name, value };

	return entry_edit(doc, i, field_fn, &a);
}

int
tp_doc_append(tp_doc *doc, const char *key, const char *value,
	      size_t *index)
{
	struct append_fn_arg a = { key, value, index };
	tp_buf bytes = TP_BUF_INIT;
	tp_doc *sub = NULL;
	const char *eol;
	size_t len;
	int status;

	if (doc == NULL || key == NULL || value == NULL ||
	    strchr(value, '\n') != NULL || doc->is_scan)
		return TP_EUSAGE;
	if (doc->whole || above_is_annotation(doc, doc->nents))
		goto flat;
	eol = append_eol(doc);
	if (tp__buf_puts(&bytes, key) != TP_OK ||
	    tp__buf_putc(&bytes, '\t') != TP_OK ||
	    tp__buf_puts(&bytes, value) != TP_OK ||
	    tp__buf_puts(&bytes, eol) != TP_OK) {
		tp_buf_dispose(&bytes);
		return TP_ENOMEM;
	}
	if ((status = sub_new(doc, &bytes, eol, &sub)) != TP_OK)
		return status;
	/* As doc_append checks: the new entry is the one asked for. */
	if (!region_ok(sub, 1) || sub->ents->ann != 0 ||
	    sub->ents->raw_len != strlen(key) ||
	    memcmp(ent_raw(sub, sub->ents), key, sub->ents->raw_len) != 0 ||
	    sub->ents->val_len != strlen(value) ||
	    memcmp(ent_val(sub, sub->ents), value, sub->ents->val_len) != 0) {
		tp_doc_free(sub);
		return TP_EUSAGE;
	}
	/* A file without a final newline gets one before the new line. */
	if (doc->tail_eol == NULL && doc->nlines > 0 &&
	    !doc->lines[doc->nlines - 1].nl)
		doc->tail_eol = eol;
	if ((status = slot_add(doc, sub)) != TP_OK) {
		tp_doc_free(sub);
		return status;
	}
	edits_changed(doc);
	if (index)
		*index = tp_doc_entry_count(doc) - 1;
	return TP_OK;
flat:
	if ((status = doc_flatten(doc)) != TP_OK)
		return status;
	doc_patch(doc, 0);
	status = edit_done(doc, append_fn(doc, 0, &a));
	/* A later duplicate changes no record; a first one had none. */
	if (status == TP_OK && !(doc->ents[doc->nents - 1].flags & E_DUP)) {
		const char *k = slot_key(doc, doc->nents - 1, &len);

		status = dirty_put(doc, k, len, NULL, 0);
	}
	return status;
}

static int
remove_fn(tp_doc *doc, size_t i, const void *arg)
{
	(void)arg;
	return doc_remove(doc, i);
}

int
tp_doc_remove(tp_doc *doc, size_t i)
{
	size_t s, t, len, tl;
	const char *k, *tk;
	struct ent *e;

	if (doc == NULL || i >= tp_doc_entry_count(doc))
		return TP_EUSAGE;
	s = slot_of(doc, i);
	if (doc->whole || above_is_annotation(doc, s)) {
		int status = doc_flatten(doc);

		if (status != TP_OK)
			return status;
		k = slot_key(doc, i, &len);
		if ((status = mark_dirty(doc, k, len)) != TP_OK)
			return status;
		return flat_edit(doc, i, remove_fn, NULL);
	}
	e = doc->ents + s;
	k = slot_key(doc, s, &len);
	if (mark_dirty(doc, k, len) != TP_OK ||
	    fen_make(doc, &doc->afen, 1) != TP_OK ||
	    lines_changed(doc, s, region_lines(doc, s), 0) != TP_OK)
		return TP_ENOMEM;
	if (e->flags & E_DUP) {
		doc->ndup--;
	} else {
		/* The first with its key: a later duplicate takes its place. */
		if (doc->kidx != NULL)
			kidx_drop(doc, s);
		for (t = s + 1; doc->ndup > 0 && t < doc->nents; t++) {
			if ((doc->ents[t].flags & (E_DEAD | E_DUP)) != E_DUP)
				continue;
			tk = slot_key(doc, t, &tl);
			if (tl == len && memcmp(tk, k, len) == 0) {
				doc->ents[t].flags &= (unsigned char)~E_DUP;
				doc->ndup--;
				/* Only a failure to grow: a scan finds it. */
				if (kidx_put(doc, t) != TP_OK) {
					free(doc->kidx);
					doc->kidx = NULL;
				}
				break;
			}
		}
	}
	sub_drop(doc, s);
	e->flags |= E_DEAD;
	fen_add(doc->afen, doc->nents, s, -1);
	doc->ndead++;
	edits_changed(doc);
	return TP_OK;
}
