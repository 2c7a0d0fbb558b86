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
 *	The document owns one copy of the input bytes. Parsing splits them
 *	into physical lines (blank, comment, start of a logical line,
 *	continuation), groups lines into logical records the way Postfix
 *	3.7's readllines() does (comment and blank lines inside a continued
 *	record are part of its span but not of its text), and runs postmap's
 *	per-record rules: whitespace-first record, non-UTF-8 check, key
 *	scan with quotes and backslashes, value trimming, "key whitespace
 *	value", alias-file hint, case folding, first duplicate wins. Every
 *	string handed out lives in one arena, so a 300k-entry table costs
 *	a handful of allocations.
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
 *	Warnings carry postmap's text after Postfix's printable() filter,
 *	which turns control bytes into '?' (and non-ASCII too, unless UTF-8
 *	is enabled).
 * DIAGNOSTICS
 *	tp_doc_parse() fails only with TP_ENOMEM; edits with TP_EUSAGE or
 *	TP_ENOMEM; tp_doc_load() adds TP_ENOTFOUND and TP_EIO with the
 *	file name and errno text in the tp_diag.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tlspolicy/document.h"

#include "buf.h"
#include "casefold.h"
#include "diag.h"

#define NONE SIZE_MAX

enum line_kind { L_BLANK, L_COMMENT, L_START, L_CONT };

struct line {
	size_t off;		/* first byte */
	size_t len;		/* content bytes, without the '\n' */
	unsigned char nl;	/* 1: terminated by '\n' */
	unsigned char kind;
};

struct ent {
	size_t first, last;	/* line indexes of the logical record */
	size_t ann;		/* annotation line index, or NONE */
	size_t key, key_len;	/* arena offsets */
	size_t raw, raw_len;
	size_t val, val_len;
	size_t kind;		/* pin kind arena offset, or NONE */
	size_t from_first, from_count;	/* into host_offs / hosts */
	int duplicate;
};

struct warn {
	unsigned long line;
	size_t msg;		/* arena offset */
};

struct tp_doc {
	tp_buf data;
	char *name;
	tp_doc_opts opts;
	struct line *lines;
	size_t nlines, alines;
	struct ent *ents;
	size_t nents, aents;
	struct warn *warns;
	size_t nwarns, awarns;
	tp_doc_warning *pub_warns;
	size_t *host_offs;
	size_t nhosts, ahosts;
	const char **hosts;
	tp_buf arena;
	size_t *hash;		/* open addressing: entry index + 1, 0 = empty */
	size_t hash_size;
	tp_buf scratch;		/* logical text of the record being parsed */
	tp__folder folder;
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

/* arena_put - store a NUL-terminated copy, return its offset */

static int
arena_put(tp_doc *doc, const char *s, size_t len, size_t *off)
{
	*off = doc->arena.size;
	if (tp__buf_put(&doc->arena, s, len) != TP_OK ||
	    tp__buf_putc(&doc->arena, '\0') != TP_OK)
		return TP_ENOMEM;
	return TP_OK;
}

static int
add_warning(tp_doc *doc, unsigned long line, const char *fmt, ...)
	TP_PRINTF(3, 4);

static int
add_warning(tp_doc *doc, unsigned long line, const char *fmt, ...)
{
	tp_buf msg = TP_BUF_INIT;
	va_list ap;
	int len;
	size_t off;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0 || tp__buf_grow(&msg, (size_t)len) != TP_OK)
		return TP_ENOMEM;
	va_start(ap, fmt);
	(void)vsnprintf(msg.ptr, (size_t)len + 1, fmt, ap);
	va_end(ap);
	msg.size = (size_t)len;
	tp__printable(msg.ptr, doc->opts.utf8);
	if (arena_put(doc, msg.ptr, strlen(msg.ptr), &off) != TP_OK ||
	    grow_array((void **)&doc->warns, &doc->awarns, doc->nwarns + 1,
		       sizeof(*doc->warns)) != TP_OK) {
		tp_buf_dispose(&msg);
		return TP_ENOMEM;
	}
	tp_buf_dispose(&msg);
	doc->warns[doc->nwarns].line = line;
	doc->warns[doc->nwarns].msg = off;
	doc->nwarns++;
	return TP_OK;
}

/* split_lines - the physical line table */

static int
split_lines(tp_doc *doc)
{
	const char *p = doc->data.ptr, *end = p + doc->data.size, *nl;
	struct line *ln;
	size_t i;

	while (p < end) {
		if (grow_array((void **)&doc->lines, &doc->alines,
			       doc->nlines + 1, sizeof(*doc->lines)) != TP_OK)
			return TP_ENOMEM;
		ln = doc->lines + doc->nlines++;
		nl = memchr(p, '\n', (size_t)(end - p));
		ln->off = (size_t)(p - doc->data.ptr);
		ln->len = (size_t)((nl ? nl : end) - p);
		ln->nl = nl != NULL;
		for (i = 0; i < ln->len && is_space((unsigned char)p[i]); i++)
			;
		if (i == ln->len)
			ln->kind = L_BLANK;
		else if (p[i] == '#')
			ln->kind = L_COMMENT;
		else if (i > 0)
			ln->kind = L_CONT;
		else
			ln->kind = L_START;
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
 * key_scan - postmap's key scan over the C string text: the offset where
 * the key ends, or NONE for an unbalanced quote.
 */
static size_t
key_scan(const char *text)
{
	const char *cp;
	int in_quotes = 0;

	for (cp = text; *cp; cp++) {
		if (*cp == '\\') {
			if (*++cp == '\0')
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

/* value_range - postmap's value: [*vs, *ve) of text after a key of klen */

static void
value_range(const char *text, size_t klen, size_t *vs, size_t *ve)
{
	size_t s = klen, e;

	if (text[s] != '\0')
		s++;
	while (is_space((unsigned char)text[s]))
		s++;
	e = s + strlen(text + s);
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

/* hash_find_or_add - index of the first entry with this key, or NONE */

static int
hash_find_or_add(tp_doc *doc, size_t idx, size_t *found)
{
	const struct ent *e = doc->ents + idx, *o;
	size_t h, i, j, *nh, nsize;

	if ((doc->nents + 1) * 2 > doc->hash_size) {
		nsize = doc->hash_size ? doc->hash_size * 2 : 64;
		if (nsize > SIZE_MAX / sizeof(*nh))
			return TP_ENOMEM;
		if ((nh = calloc(nsize, sizeof(*nh))) == NULL)
			return TP_ENOMEM;
		for (i = 0; i < doc->hash_size; i++) {
			if (doc->hash[i] == 0)
				continue;
			o = doc->ents + doc->hash[i] - 1;
			j = hash_bytes(doc->arena.ptr + o->key, o->key_len) &
			    (nsize - 1);
			while (nh[j])
				j = (j + 1) & (nsize - 1);
			nh[j] = doc->hash[i];
		}
		free(doc->hash);
		doc->hash = nh;
		doc->hash_size = nsize;
	}
	h = hash_bytes(doc->arena.ptr + e->key, e->key_len) &
	    (doc->hash_size - 1);
	for (; doc->hash[h]; h = (h + 1) & (doc->hash_size - 1)) {
		o = doc->ents + doc->hash[h] - 1;
		if (o->key_len == e->key_len &&
		    memcmp(doc->arena.ptr + o->key, doc->arena.ptr + e->key,
			   e->key_len) == 0) {
			*found = doc->hash[h] - 1;
			return TP_OK;
		}
	}
	doc->hash[h] = idx + 1;
	*found = NONE;
	return TP_OK;
}

/*
 * parse_annotation - "# tlspolicy: from=h1,h2 pin=cert" on line a, into
 * entry e. Returns 0 when the line is not an annotation.
 */
static int
parse_annotation(tp_doc *doc, size_t a, struct ent *e, int *status)
{
	static const char tag[] = "tlspolicy:";
	const char *p = line_ptr(doc, a), *end = p + doc->lines[a].len;
	const char *tok, *c, *comma;
	size_t off;

	*status = TP_OK;
	while (p < end && is_space((unsigned char)*p))
		p++;
	p++;			/* the '#' */
	while (p < end && is_space((unsigned char)*p))
		p++;
	if ((size_t)(end - p) < sizeof(tag) - 1 ||
	    memcmp(p, tag, sizeof(tag) - 1) != 0)
		return 0;
	p += sizeof(tag) - 1;
	e->ann = a;
	e->from_first = doc->nhosts;
	while (p < end) {
		while (p < end && is_space((unsigned char)*p))
			p++;
		for (tok = p; p < end && !is_space((unsigned char)*p); p++)
			;
		if (p - tok > 5 && memcmp(tok, "from=", 5) == 0) {
			for (c = tok + 5; c < p; c = comma + 1) {
				comma = memchr(c, ',', (size_t)(p - c));
				if (comma == NULL)
					comma = p;
				if (comma == c)
					continue;
				if (arena_put(doc, c, (size_t)(comma - c),
					      &off) != TP_OK ||
				    grow_array((void **)&doc->host_offs,
					       &doc->ahosts, doc->nhosts + 1,
					       sizeof(*doc->host_offs)) !=
					    TP_OK) {
					*status = TP_ENOMEM;
					return 1;
				}
				doc->host_offs[doc->nhosts++] = off;
				e->from_count++;
			}
		} else if (p - tok > 4 && memcmp(tok, "pin=", 4) == 0) {
			if (arena_put(doc, tok + 4, (size_t)(p - tok - 4),
				      &e->kind) != TP_OK) {
				*status = TP_ENOMEM;
				return 1;
			}
		}
	}
	return 1;
}

/* print_len - bytes of text[0..len-1] printf's "%s" would show */

static int
cstr_int(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* do_record - postmap's treatment of the logical record first..last */

static int
do_record(tp_doc *doc, size_t first, size_t last)
{
	tp_buf *t = &doc->scratch;
	const char *name = doc->name;
	unsigned long lineno = (unsigned long)first + 1;
	size_t klen, vs, ve, dup, off;
	struct ent *e;
	int status;

	if (record_text(doc, first, last, t) != TP_OK)
		return TP_ENOMEM;
	if (t->size > 0 && is_space((unsigned char)t->ptr[0]))
		return add_warning(doc, lineno,
				   "%s: logical line must not start with "
				   "whitespace: \"%.*s%s\"",
				   name, cstr_int(t->ptr, 30), t->ptr,
				   t->size > 30 ? "..." : "");
	if (doc->opts.utf8 && !tp__allascii(t->ptr, t->size) &&
	    !tp__utf8_valid(t->ptr, t->size))
		return add_warning(doc, lineno,
				   "%s, line %lu: non-UTF-8 input \"%s\" -- "
				   "ignoring this line", name, lineno, t->ptr);
	if ((klen = key_scan(t->ptr)) == NONE)
		return add_warning(doc, lineno,
				   "%s, line %lu: unbalanced '\"' in '%s' -- "
				   "ignoring this line", name, lineno, t->ptr);
	value_range(t->ptr, klen, &vs, &ve);
	if (klen == 0 || ve == vs)
		return add_warning(doc, lineno,
				   "%s, line %lu: expected format: key "
				   "whitespace value", name, lineno);
	if (t->ptr[klen - 1] == ':' &&
	    add_warning(doc, lineno,
			"%s, line %lu: record is in \"key: value\" format; "
			"is this an alias file?", name, lineno) != TP_OK)
		return TP_ENOMEM;

	if (grow_array((void **)&doc->ents, &doc->aents, doc->nents + 1,
		       sizeof(*doc->ents)) != TP_OK)
		return TP_ENOMEM;
	e = doc->ents + doc->nents;
	memset(e, 0, sizeof(*e));
	e->first = first;
	e->last = last;
	e->ann = NONE;
	e->kind = NONE;
	if (arena_put(doc, t->ptr, klen, &e->raw) != TP_OK ||
	    arena_put(doc, t->ptr + vs, ve - vs, &e->val) != TP_OK)
		return TP_ENOMEM;
	e->raw_len = klen;
	e->val_len = ve - vs;
	e->key = doc->arena.size;
	status = tp__fold_key(&doc->folder, &doc->arena, t->ptr, klen,
			      doc->opts.utf8, doc->opts.fold_case);
	/* The line passed the UTF-8 check, so only ENOMEM is left here. */
	if (status != TP_OK)
		return status == TP_EINVALID ? TP_OK : status;
	e->key_len = doc->arena.size - e->key;
	if (tp__buf_putc(&doc->arena, '\0') != TP_OK)
		return TP_ENOMEM;
	if (first > 0 && doc->lines[first - 1].kind == L_COMMENT &&
	    parse_annotation(doc, first - 1, e, &status) && status != TP_OK)
		return status;
	if (hash_find_or_add(doc, doc->nents, &dup) != TP_OK)
		return TP_ENOMEM;
	doc->nents++;
	if (dup != NONE) {
		e->duplicate = 1;
		off = e->key;
		return add_warning(doc, lineno, "%s.db: duplicate entry: \"%s\"",
				   name, doc->arena.ptr + off);
	}
	return TP_OK;
}

static int
parse_all(tp_doc *doc)
{
	size_t i, first = NONE, last = 0;

	if (split_lines(doc) != TP_OK)
		return TP_ENOMEM;
	for (i = 0; i < doc->nlines; i++) {
		switch (doc->lines[i].kind) {
		case L_START:
			if (first != NONE && do_record(doc, first, last) != TP_OK)
				return TP_ENOMEM;
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
	if (first != NONE && do_record(doc, first, last) != TP_OK)
		return TP_ENOMEM;

	/* The arena is final: resolve the pointers handed out. */
	if (doc->nhosts) {
		doc->hosts = malloc(doc->nhosts * sizeof(*doc->hosts));
		if (doc->hosts == NULL)
			return TP_ENOMEM;
		for (i = 0; i < doc->nhosts; i++)
			doc->hosts[i] = doc->arena.ptr + doc->host_offs[i];
	}
	if (doc->nwarns) {
		doc->pub_warns = malloc(doc->nwarns * sizeof(*doc->pub_warns));
		if (doc->pub_warns == NULL)
			return TP_ENOMEM;
		for (i = 0; i < doc->nwarns; i++) {
			doc->pub_warns[i].line = doc->warns[i].line;
			doc->pub_warns[i].message =
			    doc->arena.ptr + doc->warns[i].msg;
		}
	}
	tp_buf_dispose(&doc->scratch);
	return TP_OK;
}

void
tp_doc_free(tp_doc *doc)
{
	if (doc == NULL)
		return;
	tp_buf_dispose(&doc->data);
	free(doc->name);
	free(doc->lines);
	free(doc->ents);
	free(doc->warns);
	free(doc->pub_warns);
	free(doc->host_offs);
	free(doc->hosts);
	tp_buf_dispose(&doc->arena);
	free(doc->hash);
	tp_buf_dispose(&doc->scratch);
	tp__folder_close(&doc->folder);
	free(doc);
}

/* doc_new - parse data (taking the buffer) into a new document */

static int
doc_new(tp_doc **out, tp_buf *data, const char *name, const tp_doc_opts *opts)
{
	static const tp_doc_opts defaults = TP_DOC_OPTS_INIT;
	tp_doc *doc;

	*out = NULL;
	if ((doc = calloc(1, sizeof(*doc))) == NULL)
		return TP_ENOMEM;
	doc->opts = opts ? *opts : defaults;
	doc->data = *data;
	*data = (tp_buf)TP_BUF_INIT;
	if (tp__buf_put(&doc->data, "", 0) != TP_OK ||
	    (doc->name = strdup(name ? name : "-")) == NULL ||
	    parse_all(doc) != TP_OK) {
		tp_doc_free(doc);
		return TP_ENOMEM;
	}
	*out = doc;
	return TP_OK;
}

int
tp_doc_parse(tp_doc **out, const char *data, size_t len, const char *name,
	     const tp_doc_opts *opts)
{
	tp_buf copy = TP_BUF_INIT;

	if (out == NULL)
		return TP_EUSAGE;
	*out = NULL;
	if (data == NULL && len > 0)
		return TP_EUSAGE;
	if (tp__buf_put(&copy, data, len) != TP_OK)
		return TP_ENOMEM;
	return doc_new(out, &copy, name, opts);
}

int
tp_doc_load(tp_doc **out, const char *path, const tp_doc_opts *opts,
	    tp_diag *diag)
{
	tp_buf data = TP_BUF_INIT;
	ssize_t n;
	int fd, status, err;

	if (out == NULL || path == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "tp_doc_load: no path");
	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err = errno;
		return tp__diag_errno(diag, err == ENOENT ? TP_ENOTFOUND :
				      TP_EIO, err, "open %s", path);
	}
	for (;;) {
		if (tp__buf_grow(&data, 65536) != TP_OK) {
			close(fd);
			tp_buf_dispose(&data);
			return tp__diag_set(diag, TP_ENOMEM, path, 0,
					    "out of memory");
		}
		n = read(fd, data.ptr + data.size, data.asize - data.size - 1);
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
		data.size += (size_t)n;
		data.ptr[data.size] = '\0';
	}
	close(fd);
	if ((status = doc_new(out, &data, path, opts)) != TP_OK) {
		tp_buf_dispose(&data);
		return tp__diag_set(diag, status, path, 0, "out of memory");
	}
	return TP_OK;
}

int
tp_doc_serialize(const tp_doc *doc, tp_buf *out)
{
	if (doc == NULL || out == NULL)
		return TP_EUSAGE;
	tp__buf_truncate(out, 0);
	return tp__buf_put(out, doc->data.ptr, doc->data.size);
}

size_t
tp_doc_warning_count(const tp_doc *doc)
{
	return doc ? doc->nwarns : 0;
}

const tp_doc_warning *
tp_doc_warning_at(const tp_doc *doc, size_t i)
{
	return doc && i < doc->nwarns ? doc->pub_warns + i : NULL;
}

size_t
tp_doc_entry_count(const tp_doc *doc)
{
	return doc ? doc->nents : 0;
}

int
tp_doc_entry_at(const tp_doc *doc, size_t i, tp_entry *out)
{
	const struct ent *e;
	const char *a;

	if (doc == NULL || out == NULL || i >= doc->nents)
		return TP_EUSAGE;
	e = doc->ents + i;
	a = doc->arena.ptr;
	memset(out, 0, sizeof(*out));
	out->key = a + e->key;
	out->key_len = e->key_len;
	out->value = a + e->val;
	out->value_len = e->val_len;
	out->raw_key = a + e->raw;
	out->line = (unsigned long)e->first + 1;
	out->last_line = (unsigned long)e->last + 1;
	out->duplicate = e->duplicate;
	if (e->from_count) {
		out->from = doc->hosts + e->from_first;
		out->from_count = e->from_count;
	}
	out->pin_kind = e->kind == NONE ? NULL : a + e->kind;
	return TP_OK;
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
	size_t i;
	int status;

	if (doc == NULL || key == NULL)
		return TP_EUSAGE;
	if ((status = tp_key_fold(&k, key, &doc->opts)) != TP_OK)
		return status == TP_EINVALID ? TP_ENOTFOUND : status;
	status = TP_ENOTFOUND;
	for (i = 0; i < doc->nents; i++) {
		const struct ent *e = doc->ents + i;

		if (!e->duplicate && e->key_len == k.size &&
		    memcmp(doc->arena.ptr + e->key, k.ptr, k.size) == 0) {
			if (index)
				*index = i;
			status = TP_OK;
			break;
		}
	}
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
	status = doc_new(&fresh, &bytes, doc->name, &doc->opts);
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
	       memcmp(before->arena.ptr + a->raw, after->arena.ptr + b->raw,
		      a->raw_len) == 0 &&
	       a->duplicate == b->duplicate;
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
	klen = key_scan(text.ptr);
	status = TP_EUSAGE;
	if (klen == NONE)
		goto out;
	value_range(text.ptr, klen, &vs, &ve);
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

int
tp_doc_set_level(tp_doc *doc, size_t i, const char *level)
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

int
tp_doc_set_attr(tp_doc *doc, size_t i, const char *name, const char *value)
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

int
tp_doc_set_pins(tp_doc *doc, size_t i, const char *const *pins, size_t n)
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

struct ann_arg {
	size_t n;
	const char *kind;
};

static int
same_annotation(const tp_doc *before, const tp_doc *after, size_t i,
		const void *arg)
{
	const struct ann_arg *a = arg;
	const struct ent *e = after->ents + i;

	if (!same_entry(before, after, i, NULL) || e->from_count != a->n)
		return 0;
	if (a->kind == NULL)
		return e->kind == NONE;
	return e->kind != NONE &&
	       strcmp(after->arena.ptr + e->kind, a->kind) == 0;
}

int
tp_doc_set_annotation(tp_doc *doc, size_t i, const char *const *hosts,
		      size_t n, const char *pin_kind)
{
	struct edit ed = { NULL, 0, 0, TP_BUF_INIT };
	struct ann_arg arg = { n, pin_kind };
	const struct ent *e;
	const struct line *a;
	tp_buf b = TP_BUF_INIT;
	size_t j;
	int status = TP_OK;

	if (doc == NULL || i >= doc->nents || (n > 0 && hosts == NULL) ||
	    (pin_kind != NULL && bad_word(pin_kind, 0)))
		return TP_EUSAGE;
	for (j = 0; j < n; j++)
		if (bad_word(hosts[j], 0) || bad_utf8(doc, hosts[j]))
			return TP_EUSAGE;
	e = doc->ents + i;
	a = e->ann == NONE ? NULL : doc->lines + e->ann;
	if (n == 0 && pin_kind == NULL) {
		if (a != NULL)
			status = edit_add(&ed, a->off, a->off + a->len + a->nl,
					  "", 0);
		goto commit;
	}
	if (tp__buf_puts(&b, "# tlspolicy:") != TP_OK)
		status = TP_ENOMEM;
	for (j = 0; j < n && status == TP_OK; j++)
		if (tp__buf_puts(&b, j ? "," : " from=") != TP_OK ||
		    tp__buf_puts(&b, hosts[j]) != TP_OK)
			status = TP_ENOMEM;
	if (status == TP_OK && pin_kind != NULL &&
	    (tp__buf_puts(&b, " pin=") != TP_OK ||
	     tp__buf_puts(&b, pin_kind) != TP_OK))
		status = TP_ENOMEM;
	if (status == TP_OK && a != NULL)
		status = edit_add(&ed, a->off, content_end(doc, e->ann), b.ptr,
				  b.size);
	else if (status == TP_OK &&
		 tp__buf_puts(&b, doc_eol(doc, e->first)) != TP_OK)
		status = TP_ENOMEM;
	else if (status == TP_OK)
		status = edit_add(&ed, doc->lines[e->first].off,
				  doc->lines[e->first].off, b.ptr, b.size);
commit:
	if (status == TP_OK)
		status = edit_commit(doc, &ed, i, same_annotation, &arg);
	tp_buf_dispose(&b);
	edit_free(&ed);
	return status;
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
	       memcmp(after->arena.ptr + e->raw, a->key, e->raw_len) == 0 &&
	       e->val_len == strlen(a->value) &&
	       memcmp(after->arena.ptr + e->val, a->value, e->val_len) == 0;
}

int
tp_doc_append(tp_doc *doc, const char *key, const char *value,
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

int
tp_doc_remove(tp_doc *doc, size_t i)
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
	start = doc->lines[e->ann != NONE ? e->ann : e->first].off;
	status = edit_add(&ed, start, last->off + last->len + last->nl, "", 0);
	if (status == TP_OK)
		status = edit_commit(doc, &ed, i, removed, NULL);
	edit_free(&ed);
	return status;
}
