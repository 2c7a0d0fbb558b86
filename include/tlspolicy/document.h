/*
 * NAME
 *	tlspolicy/document.h - lossless model of a policy source file
 * SUMMARY
 *	A tp_doc holds a policy table source (e.g. /etc/postfix/tls_policy)
 *	as records that know their physical lines, so that serialising an
 *	unedited document gives back the input byte for byte, and an edit
 *	changes only the bytes of the entry edited. It also yields the
 *	logical records exactly as postmap(1) reads them.
 * DESCRIPTION
 *	tp_doc_parse() accepts any bytes (NUL, invalid UTF-8, CRLF, no final
 *	newline) shorter than 4 GB; it fails only with TP_ENOMEM, or
 *	TP_ELIMIT for an input of 4 GB or more. Lines postmap would skip are
 *	kept as bytes and reported as warnings with postmap's wording.
 *	name is used in warnings (a path, or "-"); it is copied.
 *	tp_doc_load() reads a file and parses it: TP_ENOTFOUND when the
 *	file does not exist, TP_ELIMIT when it is 4 GB or more, TP_EIO on
 *	other errors.
 *
 *	tp_doc_entry_count()/tp_doc_entry_at() walk the logical records in
 *	file order, duplicates included (duplicate != 0: an earlier entry
 *	has the same folded key, postmap keeps the earlier one). Pointers in
 *	a tp_entry stay valid until the document is edited or freed.
 *	tp_doc_find() folds key the way the document folds keys and gives
 *	the index of the first (winning) entry with it, or TP_ENOTFOUND.
 *
 *	The annotation is the comment line directly above an entry:
 *	    # tlspolicy: from=mx1.example.com:25,[192.0.2.1]:25 pin=cert keys=K1,K2
 *	It records where the entry's pins came from (from=), their kind
 *	(pin=) and, for certificate pins, the public-key fingerprints of
 *	the pinned certificates, each once, in the pins' digest (keys=), so
 *	a later rotation can tell a renewal with the same key from a new
 *	key. Every field is optional; words it does not know are ignored
 *	when reading and kept by the edits below. keys= describes the pins
 *	as last written by a tool that knew them: one who changes match= by
 *	other means should remove it (tp_doc_set_annotation_keys(.., 0)).
 *
 *	Edits take an entry index, keep everything outside that entry's
 *	bytes (and its annotation's, for tp_doc_set_annotation and
 *	tp_doc_remove) unchanged, and renumber nothing else: entry indexes
 *	stay valid except after tp_doc_remove() (later ones shift down).
 *	They return TP_EUSAGE for a bad index or an argument that would not
 *	survive the file format (a newline in a value, whitespace in a key),
 *	TP_ENOMEM otherwise.
 *	- tp_doc_set_level(): replaces the level word.
 *	- tp_doc_set_pins(): replaces the match= pins (of any number of
 *	  match= attributes, "|"-joined or not) with pins[0..n-1], reusing
 *	  the existing layout: same separator style, continuation lines with
 *	  the same indent. n == 0 removes every match attribute.
 *	- tp_doc_set_attr(): sets attribute name (replaced where it stands,
 *	  else appended); value NULL removes it. Not for "match".
 *	- tp_doc_set_annotation(): writes or replaces from= (hosts[0..n-1];
 *	  n == 0 removes it) and pin= (pin_kind; NULL removes it) in the
 *	  annotation comment above the entry, writing the comment when there
 *	  is none; n == 0 and pin_kind NULL removes the whole comment. Other
 *	  fields (keys=, and words of newer versions) are kept.
 *	- tp_doc_set_annotation_keys(): writes or replaces keys= with
 *	  keys[0..n-1], or removes it (n == 0), keeping the other fields
 *	  (a comment left with no field at all is removed; one is written
 *	  when there is none). A field setter of its own rather than a
 *	  wider tp_doc_set_annotation(): the keys change when the pins do
 *	  (rotate, a hand-set pin), the hosts and kind do not, and each
 *	  caller says only what it knows instead of reading back and
 *	  passing again the fields it does not mean to change.
 *	- tp_doc_set_annotation_field(): writes or replaces (value NULL:
 *	  removes) one single-valued field of the annotation other than
 *	  from=, pin= and keys= (name: lower-case letters, digits, '-'),
 *	  e.g. "wrappermode=yes", keeping the rest, as above.
 *	  In all three, a word is refused (TP_EUSAGE) when empty, starting
 *	  with '#', or holding whitespace or a comma.
 *
 *	tp_doc_annotation_field() copies the value of field name from entry
 *	i's annotation into value (the first "name=VALUE" word):
 *	TP_ENOTFOUND when there is none, TP_EUSAGE for a bad index.
 *	- tp_doc_append(): adds "key<TAB>value" as a new entry at the end
 *	  (a newline is added first when the file does not end with one).
 *	- tp_doc_remove(): removes the entry with all its physical lines and
 *	  its annotation comment.
 */
#ifndef TLSPOLICY_DOCUMENT_H
#define TLSPOLICY_DOCUMENT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_doc tp_doc;

typedef struct tp_doc_opts {
	unsigned int version;
	int utf8;	/* smtputf8_enable: UTF-8 case folding; non-UTF-8 lines skipped */
	int fold_case;	/* fold keys to lower case, as postmap does without -f */
} tp_doc_opts;

#define TP_DOC_OPTS_VERSION 1
#define TP_DOC_OPTS_INIT { TP_DOC_OPTS_VERSION, 1, 1 }

typedef struct tp_entry {
	const char *key;	/* folded, as stored in the db (no NUL) */
	size_t key_len;
	const char *value;	/* as stored in the db (no NUL) */
	size_t value_len;
	const char *raw_key;	/* as written in the file */
	unsigned long line;	/* first physical line, from 1 */
	unsigned long last_line;
	int duplicate;		/* an earlier entry has the same key */
	const char *const *from; /* annotation hosts, NULL when none */
	size_t from_count;
	const char *pin_kind;	/* annotation "cert"/"pkey", NULL when none */
	/*
	 * Added last: the fields above keep their offsets, but
	 * tp_doc_entry_at() fills the whole struct, so a program built
	 * against the shorter tp_entry must be rebuilt.
	 */
	const char *const *keys; /* annotation keys=, NULL when none */
	size_t key_count;
} tp_entry;

typedef struct tp_doc_warning {
	unsigned long line;
	const char *message;	/* postmap's text, without "postmap: warning: " */
} tp_doc_warning;

TP_EXTERN(int) tp_doc_parse(tp_doc **out, const char *data, size_t len,
			    const char *name, const tp_doc_opts *opts);
TP_EXTERN(int) tp_doc_load(tp_doc **out, const char *path,
			   const tp_doc_opts *opts, tp_diag *diag);
TP_EXTERN(void) tp_doc_free(tp_doc *doc);
TP_EXTERN(int) tp_doc_serialize(const tp_doc *doc, tp_buf *out);

TP_EXTERN(size_t) tp_doc_warning_count(const tp_doc *doc);
TP_EXTERN(const tp_doc_warning *) tp_doc_warning_at(const tp_doc *doc,
						    size_t i);

TP_EXTERN(size_t) tp_doc_entry_count(const tp_doc *doc);
TP_EXTERN(int) tp_doc_entry_at(const tp_doc *doc, size_t i, tp_entry *out);
TP_EXTERN(int) tp_doc_find(const tp_doc *doc, const char *key,
			   size_t *index);

TP_EXTERN(int) tp_doc_set_level(tp_doc *doc, size_t i, const char *level);
TP_EXTERN(int) tp_doc_set_pins(tp_doc *doc, size_t i,
			       const char *const *pins, size_t n);
TP_EXTERN(int) tp_doc_set_attr(tp_doc *doc, size_t i, const char *name,
			       const char *value);
TP_EXTERN(int) tp_doc_set_annotation(tp_doc *doc, size_t i,
				     const char *const *hosts, size_t n,
				     const char *pin_kind);
TP_EXTERN(int) tp_doc_set_annotation_keys(tp_doc *doc, size_t i,
					  const char *const *keys, size_t n);
TP_EXTERN(int) tp_doc_annotation_field(const tp_doc *doc, size_t i,
				       const char *name, tp_buf *value);
TP_EXTERN(int) tp_doc_set_annotation_field(tp_doc *doc, size_t i,
					   const char *name, const char *value);
TP_EXTERN(int) tp_doc_append(tp_doc *doc, const char *key, const char *value,
			     size_t *index);
TP_EXTERN(int) tp_doc_remove(tp_doc *doc, size_t i);

/*
 * Fold a lookup key the way tp_doc_parse() folds keys under opts (what
 * postmap -q does to its argument): TP_EINVALID when opts->utf8 is set
 * and key is not valid UTF-8.
 */
TP_EXTERN(int) tp_key_fold(tp_buf *out, const char *key,
			   const tp_doc_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
