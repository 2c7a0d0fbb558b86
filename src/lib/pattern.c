/*
 * NAME
 *	pattern - regexp: and pcre: tables as Postfix reads them
 * SUMMARY
 *	Compiles a regexp_table(5) or pcre_table(5) source once and matches
 *	keys against it with the rules of Postfix's dict_regexp.c and
 *	dict_pcre.c (see pattern.h), so tlspolicy can tell which value an
 *	earlier pattern map gives a destination before our table is asked.
 * DESCRIPTION
 *	Parsing follows Postfix step by step, because every difference is
 *	a destination judged by the wrong policy: logical lines as
 *	readllines() builds them, trailing blanks trimmed, then per line:
 *	- a rule when the line does not start with a letter or digit:
 *	  negations ("!", any number, blanks between), a delimiter, the
 *	  pattern up to the unescaped closing delimiter, flags up to a blank
 *	  (or, for regexp, a "!" that starts the second pattern), the
 *	  result after blanks. The result is pre-scanned as mac_parse()
 *	  splits it: "$$" is "$", "$n", "${n}", "$(n)" are substitutions
 *	  and must be numbers from 1 to the pattern's capture count; no
 *	  $n in a negated rule.
 *	- "if" and "endif" (any case, not followed by a letter or digit),
 *	  an if with its pattern; extra text after either is ignored with a
 *	  warning; an endif without an if is skipped.
 *	Rules Postfix skips (with a warning) are skipped here with the same
 *	warning text, and the table is still usable.
 *
 *	Matching: rules in order; an if whose pattern fails jumps past its
 *	endif (and ends the lookup when it has none); a match rule answers
 *	with its result, $n replaced by the n-th captured text (empty when
 *	the group did not take part).
 * DIAGNOSTICS
 *	TP_ENOMEM only; problems of the table are warnings, as in Postfix.
 */
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "pattern.h"

enum rule_op { OP_MATCH, OP_IF, OP_ENDIF };

/* Largest $number we accept: Postfix compares it with the capture count. */
#define MAX_SUB_LIMIT 65535u

struct expr {
	int compiled;
	regex_t re;		/* regexp */
	pcre2_code *code;	/* pcre */
	pcre2_match_data *md;
	int match;		/* 1 positive, 0 negated */
};

struct rule {
	enum rule_op op;
	unsigned long line;
	struct expr first;
	struct expr second;	/* regexp only: /a/!/b/ */
	char *result;		/* match rule: raw, or literal when max_sub == 0 */
	size_t max_sub;
	size_t endif;		/* if rule: index of its endif, or SIZE_MAX */
};

struct tp__pattern_table {
	tp__pattern_kind kind;
	unsigned flags;
	char *name;
	struct rule *rules;
	size_t nrules, arules;
	regmatch_t *pmatch;	/* regexp: max_sub + 1 slots */
	size_t max_sub;
	tp_strarray warnings;
	int nomem;
};

#define ISSPACE(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' \
		    || (c) == '\v' || (c) == '\f')
#define ISDIGIT(c) ((c) >= '0' && (c) <= '9')
#define ISALNUM(c) (ISDIGIT(c) || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))

static const char *
kind_name(const tp__pattern_table *t)
{
	return t->kind == TP__PATTERN_PCRE ? "pcre" : "regexp";
}

static void warn(tp__pattern_table *t, unsigned long line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
warn(tp__pattern_table *t, unsigned long line, const char *fmt, ...)
{
	tp_buf b = TP_BUF_INIT;
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (tp__buf_printf(&b, "%s map %s, line %lu: %s", kind_name(t), t->name,
			   line, text) < 0
	    || tp__strarray_push(&t->warnings, b.ptr) < 0)
		t->nomem = 1;
	tp_buf_dispose(&b);
}

static void
expr_free(struct expr *e)
{
	if (!e->compiled)
		return;
	if (e->code) {
		pcre2_match_data_free(e->md);
		pcre2_code_free(e->code);
	} else {
		regfree(&e->re);
	}
	e->compiled = 0;
}

/* dict_*_get_pat: negations, delimiters, flags. 0: skip this rule. */
struct pat {
	char *text;
	int options;
	int match;
};

static int
get_pat(tp__pattern_table *t, unsigned long line, char **bufp, struct pat *pat)
{
	char *p = *bufp, delim;
	int pcre = t->kind == TP__PATTERN_PCRE;

	pat->match = 1;
	for (;; p++) {
		if (*p == '!')
			pat->match = !pat->match;
		else if (!ISSPACE(*p))
			break;
	}
	if (*p == 0) {
		warn(t, line, "no regexp: skipping this rule");
		return 0;
	}
	delim = *p++;
	pat->text = p;
	while (*p) {
		if (*p == '\\') {
			if (p[1] == 0)
				break;
			p++;
		} else if (*p == delim) {
			break;
		}
		p++;
	}
	if (*p == 0) {
		warn(t, line, "no closing regexp delimiter \"%c\": %s this rule", delim,
		     pcre ? "ignoring" : "skipping");
		return 0;
	}
	*p++ = 0;
	if (pcre) {
		pat->options = (int)(PCRE2_CASELESS | PCRE2_DOTALL);
		for (; *p && !ISSPACE(*p); p++) {
			switch (*p) {
			case 'i': pat->options ^= (int)PCRE2_CASELESS; break;
			case 'm': pat->options ^= (int)PCRE2_MULTILINE; break;
			case 's': pat->options ^= (int)PCRE2_DOTALL; break;
			case 'x': pat->options ^= (int)PCRE2_EXTENDED; break;
			case 'A': pat->options ^= (int)PCRE2_ANCHORED; break;
			case 'E': pat->options ^= (int)PCRE2_DOLLAR_ENDONLY; break;
			case 'U': pat->options ^= (int)PCRE2_UNGREEDY; break;
			case 'X':
				warn(t, line, "ignoring obsolete regexp option \"%c\"", *p);
				break;
			default:
				warn(t, line, "unknown regexp option \"%c\": skipping this rule", *p);
				return 0;
			}
		}
	} else {
		pat->options = REG_EXTENDED | REG_ICASE;
		for (; *p && !ISSPACE(*p) && *p != '!'; p++) {
			switch (*p) {
			case 'i': pat->options ^= REG_ICASE; break;
			case 'm': pat->options ^= REG_NEWLINE; break;
			case 'x': pat->options ^= REG_EXTENDED; break;
			default:
				warn(t, line, "unknown regexp option \"%c\": skipping this rule", *p);
				return 0;
			}
		}
	}
	*bufp = p;
	return 1;
}

static int
compile(tp__pattern_table *t, unsigned long line, struct pat *pat,
	struct expr *e, size_t *nsub)
{
	e->match = pat->match;
	if (t->kind == TP__PATTERN_PCRE) {
		int error;
		PCRE2_SIZE off;
		uint32_t count = 0;

		e->code = pcre2_compile((PCRE2_SPTR)pat->text, PCRE2_ZERO_TERMINATED,
					(uint32_t)pat->options, &error, &off, NULL);
		if (e->code == NULL) {
			PCRE2_UCHAR msg[256];

			if (pcre2_get_error_message(error, msg, sizeof(msg)) < 0)
				snprintf((char *)msg, sizeof(msg), "unexpected pcre2 error code %d", error);
			warn(t, line, "error in regex at offset %lu: %s", (unsigned long)off,
			     (const char *)msg);
			return 0;
		}
		if ((e->md = pcre2_match_data_create_from_pattern(e->code, NULL)) == NULL) {
			pcre2_code_free(e->code);
			e->code = NULL;
			t->nomem = 1;
			return 0;
		}
		(void)pcre2_pattern_info(e->code, PCRE2_INFO_CAPTURECOUNT, &count);
		if (nsub)
			*nsub = count;
	} else {
		int err = regcomp(&e->re, pat->text, pat->options);

		if (err != 0) {
			char msg[256];

			(void)regerror(err, &e->re, msg, sizeof(msg));
			warn(t, line, "%s", msg);
			return 0;
		}
		if (nsub)
			*nsub = e->re.re_nsub;
	}
	e->compiled = 1;
	return 1;
}

/*
 * mac_parse() as Postfix has it, for the $number of results: fn gets
 * each literal run (with "$$" made "$") and each expression name.
 * Returns -1 for a syntax error (truncated "${", empty name), else the
 * OR of fn's results.
 */
typedef int (*mac_fn)(int is_expr, const char *s, size_t len, void *ctx);

static int
mac_parse(const char *v, mac_fn fn, void *ctx)
{
	tp_buf lit = TP_BUF_INIT;
	int status = 0;

	while (*v && status >= 0) {
		if (*v != '$') {
			if (tp__buf_putc(&lit, *v++) < 0)
				status = -2;
		} else if (v[1] == '$') {
			if (tp__buf_putc(&lit, '$') < 0)
				status = -2;
			v += 2;
		} else {
			const char *name, *ep;
			size_t nlen;

			if (lit.size > 0) {
				status |= fn(0, lit.ptr, lit.size, ctx);
				tp__buf_truncate(&lit, 0);
			}
			v++;
			if (*v == '(' || *v == '{') {
				char open = *v, close = open == '(' ? ')' : '}';
				int level = 1;

				name = ++v;
				for (ep = v; level > 0; ep++) {
					if (*ep == 0) {
						status = -1;
						break;
					}
					if (*ep == open)
						level++;
					if (*ep == close)
						level--;
				}
				if (status < 0)
					break;
				nlen = (size_t)(ep - name) - 1;
				v = ep;
			} else {
				name = v;
				for (ep = v; ISALNUM(*ep) || *ep == '_'; ep++)
					;
				nlen = (size_t)(ep - v);
				v = ep;
			}
			if (nlen == 0) {
				status = -1;
				break;
			}
			status |= fn(1, name, nlen, ctx);
		}
	}
	if (status >= 0 && lit.size > 0)
		status |= fn(0, lit.ptr, lit.size, ctx);
	tp_buf_dispose(&lit);
	return status == -2 ? -2 : status < 0 ? -1 : status;
}

struct prescan {
	tp__pattern_table *t;
	unsigned long line;
	size_t max_sub;
	char *literal;
	int nomem;
};

/* The value of an all-digit name, capped; 0 when not all digits. */
static size_t
sub_index(const char *s, size_t len, int *digits)
{
	size_t n = 0;

	*digits = 1;
	for (size_t i = 0; i < len; i++) {
		if (!ISDIGIT(s[i])) {
			*digits = 0;
			return 0;
		}
		n = n * 10 + (size_t)(s[i] - '0');
		if (n > MAX_SUB_LIMIT)
			n = MAX_SUB_LIMIT + 1;
	}
	return n;
}

static int
prescan_fn(int is_expr, const char *s, size_t len, void *ctx)
{
	struct prescan *ps = ctx;

	if (is_expr) {
		int digits;
		size_t n = sub_index(s, len, &digits);

		free(ps->literal);
		ps->literal = NULL;
		if (!digits) {
			warn(ps->t, ps->line, "non-numeric replacement index \"%.*s\"",
			     (int)len, s);
			return -1;
		}
		if (n < 1) {
			warn(ps->t, ps->line, "%s replacement index \"%.*s\"",
			     ps->t->kind == TP__PATTERN_PCRE ? "out of range" : "out-of-range",
			     (int)len, s);
			return -1;
		}
		if (n > ps->max_sub)
			ps->max_sub = n;
	} else if (ps->max_sub == 0) {
		free(ps->literal);
		if ((ps->literal = strndup(s, len)) == NULL)
			ps->nomem = 1;
	}
	return 0;
}

static struct rule *
new_rule(tp__pattern_table *t, enum rule_op op, unsigned long line)
{
	struct rule *r;

	if (t->nrules == t->arules) {
		size_t n = t->arules ? t->arules * 2 : 16;
		struct rule *rules = realloc(t->rules, n * sizeof(*rules));

		if (rules == NULL) {
			t->nomem = 1;
			return NULL;
		}
		t->rules = rules;
		t->arules = n;
	}
	r = &t->rules[t->nrules++];
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->line = line;
	r->endif = SIZE_MAX;
	return r;
}

static void
parse_match(tp__pattern_table *t, unsigned long line, char *p)
{
	struct pat first, second;
	struct prescan ps = { t, line, 0, NULL, 0 };
	struct rule tmp, *r;
	size_t nsub = 0;
	int have_second = 0, rc;

	memset(&tmp, 0, sizeof(tmp));
	if (!get_pat(t, line, &p, &first))
		return;
	if (t->kind == TP__PATTERN_REGEXP && *p == '!') {
		if (!get_pat(t, line, &p, &second))
			return;
		have_second = 1;
	}
	while (*p && ISSPACE(*p))
		p++;
	if (!*p)
		warn(t, line, "no replacement text: using empty string");
	rc = mac_parse(p, prescan_fn, &ps);
	if (rc == -2 || ps.nomem) {
		t->nomem = 1;
		goto skip;
	}
	if (rc < 0) {
		warn(t, line, "bad replacement syntax: skipping this rule");
		goto skip;
	}
	if (t->kind == TP__PATTERN_REGEXP && ps.max_sub == 0)
		first.options |= REG_NOSUB;
	if (ps.max_sub > 0 && first.match == 0) {
		warn(t, line, "$number found in negative match replacement text: skipping this rule");
		goto skip;
	}
	if (ps.max_sub > 0 && (t->flags & TP__PATTERN_NO_REGSUB)) {
		warn(t, line, "regular expression substitution is not allowed: skipping this rule");
		goto skip;
	}
	if (!compile(t, line, &first, &tmp.first, &nsub))
		goto skip;
	if (ps.max_sub > nsub) {
		warn(t, line, "out of range replacement index \"%d\": skipping this rule",
		     (int)ps.max_sub);
		goto skip;
	}
	if (have_second) {
		second.options |= REG_NOSUB;
		if (!compile(t, line, &second, &tmp.second, NULL))
			goto skip;
	}
	tmp.result = ps.literal ? ps.literal : strdup(p);
	ps.literal = NULL;
	if (tmp.result == NULL || (r = new_rule(t, OP_MATCH, line)) == NULL) {
		t->nomem = 1;
		goto skip;
	}
	r->first = tmp.first;
	r->second = tmp.second;
	r->result = tmp.result;
	r->max_sub = ps.max_sub;
	if (ps.max_sub > t->max_sub)
		t->max_sub = ps.max_sub;
	return;
skip:
	expr_free(&tmp.first);
	expr_free(&tmp.second);
	free(tmp.result);
	free(ps.literal);
}

static void
parse_line(tp__pattern_table *t, unsigned long line, char *p, size_t **stack,
	   size_t *nesting, size_t *astack)
{
	if (!ISALNUM(*p)) {
		parse_match(t, line, p);
	} else if (strncasecmp(p, "IF", 2) == 0 && !ISALNUM(p[2])) {
		struct pat pat;
		struct expr e;
		struct rule *r;

		memset(&e, 0, sizeof(e));
		p += 2;
		while (*p && ISSPACE(*p))
			p++;
		if (!get_pat(t, line, &p, &pat))
			return;
		while (*p && ISSPACE(*p))
			p++;
		if (*p) {
			warn(t, line, "ignoring extra text after IF statement: \"%s\"", p);
			warn(t, line, "do not prepend whitespace to statements between IF and ENDIF");
		}
		if (!compile(t, line, &pat, &e, NULL))
			return;
		if ((r = new_rule(t, OP_IF, line)) == NULL) {
			expr_free(&e);
			return;
		}
		r->first = e;
		if (*nesting == *astack) {
			size_t n = *astack ? *astack * 2 : 8, *s = realloc(*stack, n * sizeof(*s));

			if (s == NULL) {
				t->nomem = 1;
				return;
			}
			*stack = s;
			*astack = n;
		}
		(*stack)[(*nesting)++] = t->nrules - 1;
	} else if (strncasecmp(p, "ENDIF", 5) == 0 && !ISALNUM(p[5])) {
		struct rule *r;

		p += 5;
		if (*nesting == 0) {
			warn(t, line, "ignoring ENDIF without matching IF");
			return;
		}
		while (*p && ISSPACE(*p))
			p++;
		if (*p)
			warn(t, line, "ignoring extra text after ENDIF");
		if ((r = new_rule(t, OP_ENDIF, line)) == NULL)
			return;
		t->rules[(*stack)[--(*nesting)]].endif = t->nrules - 1;
	} else {
		warn(t, line, "ignoring unrecognized request");
	}
}

/*
 * readllines(): the next logical line of text[*pos..len) into out (a C
 * string: a NUL byte in the input ends it, as Postfix's string
 * functions see it), its first physical line in *first. 0 at the end.
 * A logical line that starts with whitespace is dropped, as Postfix
 * does after its warning.
 */
static int
next_logical(const char *text, size_t len, size_t *pos, unsigned long *lineno,
	     unsigned long *first, tp_buf *out)
{
	for (;;) {
		size_t i = *pos;

		tp__buf_truncate(out, 0);
		if (i >= len)
			return 0;
		while (i < len) {
			size_t start = i, end, p;
			int started = out->size > 0;

			while (i < len && text[i] != '\n')
				i++;
			end = i;
			if (i < len)
				i++;
			(*lineno)++;
			for (p = start; p < end && ISSPACE(text[p]); p++)
				;
			if (!(p == end || text[p] == '#')) {
				if (!started)
					*first = *lineno;
				if (tp__buf_put(out, text + start, end - start) < 0)
					return -1;
			}
			if (out->size > 0 && !(i < len && (text[i] == '#' || ISSPACE(text[i]))))
				break;
		}
		*pos = i;
		if (out->size > 0 && !ISSPACE(out->ptr[0]))
			return 1;
		if (out->size == 0 && *pos >= len)
			return 0;
	}
}

int
tp__pattern_parse(tp__pattern_table **out, tp__pattern_kind kind,
		  unsigned flags, const char *name, const char *text, size_t len)
{
	tp__pattern_table *t = calloc(1, sizeof(*t));
	tp_buf line = TP_BUF_INIT;
	size_t pos = 0, *stack = NULL, nesting = 0, astack = 0;
	unsigned long lineno = 0, first = 0;
	int rc;

	*out = NULL;
	if (t == NULL)
		return TP_ENOMEM;
	t->kind = kind;
	t->flags = flags;
	if ((t->name = strdup(name)) == NULL) {
		free(t);
		return TP_ENOMEM;
	}
	while (!t->nomem && (rc = next_logical(text, len, &pos, &lineno, &first, &line)) != 0) {
		char *p;
		size_t n;

		if (rc < 0) {
			t->nomem = 1;
			break;
		}
		p = line.ptr;
		n = strlen(p);
		while (n > 0 && ISSPACE(p[n - 1]))
			p[--n] = 0;
		if (n == 0)
			continue;
		parse_line(t, first, p, &stack, &nesting, &astack);
	}
	while (!t->nomem && nesting-- > 0)
		warn(t, t->rules[stack[nesting]].line, "IF has no matching ENDIF");
	free(stack);
	tp_buf_dispose(&line);
	if (!t->nomem && t->max_sub > 0
	    && (t->pmatch = calloc(t->max_sub + 1, sizeof(*t->pmatch))) == NULL)
		t->nomem = 1;
	if (t->nomem) {
		tp__pattern_free(t);
		return TP_ENOMEM;
	}
	*out = t;
	return TP_OK;
}

/* Does e match key (with match negation)? pmatch/nsub for captures. */
static int
exec(const struct expr *e, const char *key, size_t nsub, regmatch_t *pmatch)
{
	int rc;

	if (e->code) {
		rc = pcre2_match(e->code, (PCRE2_SPTR)key, strlen(key), 0, 0, e->md, NULL);
		if (rc > 0)
			return e->match;
		if (rc == PCRE2_ERROR_NOMATCH)
			return !e->match;
		return 0;	/* a matching error: Postfix warns and moves on */
	}
	rc = regexec(&e->re, key, nsub, pmatch, 0);
	if (rc == REG_NOMATCH)
		return !e->match;
	return rc == 0 ? e->match : 0;
}

struct expand {
	const struct rule *rule;
	const tp__pattern_table *t;
	const char *key;
	tp_buf *value;
};

static int
expand_fn(int is_expr, const char *s, size_t len, void *ctx)
{
	struct expand *x = ctx;
	int digits;
	size_t n, so, eo;

	if (!is_expr)
		return tp__buf_put(x->value, s, len) < 0 ? -2 : 0;
	n = sub_index(s, len, &digits);
	if (x->rule->first.code) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(x->rule->first.md);

		if (n >= pcre2_get_ovector_count(x->rule->first.md)
		    || ov[2 * n] == PCRE2_UNSET)
			return 0;
		so = ov[2 * n];
		eo = ov[2 * n + 1];
	} else {
		const regmatch_t *m = &x->t->pmatch[n];

		if (m->rm_so < 0)
			return 0;
		so = (size_t)m->rm_so;
		eo = (size_t)m->rm_eo;
	}
	if (eo <= so)
		return 0;
	return tp__buf_put(x->value, x->key + so, eo - so) < 0 ? -2 : 0;
}

int
tp__pattern_match(tp__pattern_table *t, const char *key, tp_buf *value,
		  unsigned long *line)
{
	for (size_t i = 0; i < t->nrules; i++) {
		const struct rule *r = &t->rules[i];
		struct expand x;

		switch (r->op) {
		case OP_MATCH:
			if (!exec(&r->first, key, r->max_sub ? r->max_sub + 1 : 0, t->pmatch))
				continue;
			if (r->second.compiled && !exec(&r->second, key, 0, NULL))
				continue;
			tp__buf_truncate(value, 0);
			*line = r->line;
			if (r->max_sub == 0)
				return tp__buf_put(value, r->result, strlen(r->result)) < 0
					   ? TP_ENOMEM : 1;
			x.rule = r;
			x.t = t;
			x.key = key;
			x.value = value;
			if (tp__buf_put(value, "", 0) < 0 || mac_parse(r->result, expand_fn, &x) < 0)
				return TP_ENOMEM;
			return 1;
		case OP_IF:
			if (exec(&r->first, key, 0, NULL))
				continue;
			if (r->endif == SIZE_MAX)
				return 0;
			i = r->endif;
			continue;
		case OP_ENDIF:
			continue;
		}
	}
	return 0;
}

size_t
tp__pattern_warning_count(const tp__pattern_table *t)
{
	return t->warnings.count;
}

const char *
tp__pattern_warning_at(const tp__pattern_table *t, size_t i)
{
	return i < t->warnings.count ? t->warnings.strings[i] : NULL;
}

void
tp__pattern_free(tp__pattern_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrules; i++) {
		expr_free(&t->rules[i].first);
		expr_free(&t->rules[i].second);
		free(t->rules[i].result);
	}
	free(t->rules);
	free(t->pmatch);
	free(t->name);
	tp_strarray_dispose(&t->warnings);
	free(t);
}
