/*
 * NAME
 *	set - create or update one entry of the policy table in place
 * DESCRIPTION
 *	Edits only the bytes of the entry (and its annotation comment:
 *	where the pins came from, their kind, and for certificate pins the
 *	public keys of the certificates, or no keys= when some pin's key is
 *	not known, as for a pin given by hand), checks the result the way Postfix's SMTP client would, refuses pins
 *	made with another digest than the one Postfix compares (the classic
 *	outage), then writes source and db under the table lock.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "stuck.h"

static void
set_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] set KEY [--level LEVEL] [--fingerprint FP]...\n"
		"           [--fingerprint-from HOST[:PORT]]... [--pin cert|pkey] [--wrapper]\n"
		"           [--attr NAME=VALUE]... [--keep-old | --add] [--dry-run] [--reload]\n"
		"           [--flush] [--timeout S] [--postfix-command PATH]\n"
		"\n"
		"Create or update the entry for KEY (a next-hop destination as Postfix looks\n"
		"it up: example.com, .example.com, [mx.example.com]:25, mx.example.com:587).\n"
		"Only that entry's bytes change; comments and layout elsewhere are kept.\n"
		"\n"
		"  --level LEVEL          TLS security level (none, may, encrypt, fingerprint,\n"
		"                         dane, dane-only, verify, secure)\n"
		"  --fingerprint FP       pin this fingerprint (hex, colons optional); it must\n"
		"                         be made with the configured digest; implies\n"
		"                         --level fingerprint; repeatable\n"
		"  --fingerprint-from H   probe host H (every address) over STARTTLS, as\n"
		"                         Postfix connects for KEY (SNI, protocols, ciphers,\n"
		"                         EHLO name from main.cf and the entry), and pin\n"
		"                         what it presents; remembered above the entry (with\n"
		"                         the public keys of pinned certificates, so rotate\n"
		"                         can tell whether the key changed); repeatable\n"
		"  --wrapper              with --fingerprint-from: the hosts speak TLS from\n"
		"                         the first byte (SMTPS, port 465, for a transport\n"
		"                         with smtp_tls_wrappermode = yes); remembered\n"
		"  --pin cert|pkey        with --fingerprint-from: pin the certificate\n"
		"                         (default) or its public key\n"
		"  --attr NAME=VALUE      set a policy attribute (servername, ciphers, ...);\n"
		"                         NAME= removes it; repeatable\n"
		"  --keep-old, --add      add the new pins to the old ones instead of\n"
		"                         replacing them (Postfix accepts any of them): pin\n"
		"                         a partner's announced next certificate before it\n"
		"                         goes live, and no rotation is needed then\n"
		"  --dry-run              print the change as a unified diff, write nothing\n"
		"  --reload               run 'postfix -c DIR reload' after writing\n"
		"  --flush                then ask Postfix to retry now the messages deferred\n"
		"                         for KEY with a TLS failure (postqueue -i each one;\n"
		"                         never the whole queue)\n"
		"  --timeout S            per-host probe deadline in seconds (default 30)\n"
		"  --postfix-command P    the postfix program for --reload\n"
		"                         (default: $command_directory/postfix of main.cf)\n");
}

static int
push(const char ***list, size_t *n, const char *s)
{
	const char **l = realloc(*list, (*n + 1) * sizeof(*l));

	if (l == NULL)
		return -1;
	l[(*n)++] = s;
	*list = l;
	return 0;
}

/* Normalise pins and refuse any whose length says another digest. */
int
cli_set_check_pins(struct set_args *a, const char *digest, char (*norm)[TP_FINGERPRINT_MAX])
{
	size_t want = tp_digest_size(digest);

	for (size_t i = 0; i < a->npins; i++) {
		tp_diag diag = TP_DIAG_INIT;
		size_t bytes;

		if (tp_pin_normalize(norm[i], a->pins[i], &diag) != 0)
			return cli_errorf("--fingerprint %s: %s", a->pins[i], diag.message);
		bytes = (strlen(norm[i]) + 1) / 3;
		if (bytes != want) {
			const char *guess = tp_pin_digest(norm[i]);

			return cli_errorf("--fingerprint %s: %zu bytes (%s), but Postfix compares %s fingerprints (%zu bytes): it would never match; pin with %s or set -d",
					  a->pins[i], bytes, guess ? guess : "no known digest",
					  digest, want, digest);
		}
	}
	return EX_SUCCESS;
}

/*
 * The annotation's keys= after the edit: the public keys of every pinned
 * certificate, or removed (*known = 0) when some pin's key is not known
 * (a pin given by hand, public-key pins, an old pin kept without a
 * recorded key): a stale or partial list would make rotate's "public
 * key changed" wrong. old_keys are the keys recorded before the edit.
 */
static int
keys_after(const struct set_args *a, const tp_policy *kept, const tp_strarray *old_keys,
	   char (*norm)[TP_FINGERPRINT_MAX], tp_strarray *out, int *known)
{
	int pkey = a->pin_kind != NULL && strcmp(a->pin_kind, "pkey") == 0;
	int need_old = 0;

	*known = a->nhosts > 0 && a->nmanual == 0 && !pkey && a->keys != NULL;
	if (!*known)
		return 0;
	for (size_t i = 0; kept && i < tp_policy_pin_count(kept); i++) {
		const char *pin = tp_policy_pin_at(kept, i);
		int probed = 0;

		for (size_t j = a->nmanual; j < a->npins; j++)
			probed |= strcmp(norm[j], pin) == 0;
		need_old |= !probed;
	}
	if (need_old && old_keys->count == 0) {
		*known = 0;
		return 0;
	}
	for (size_t i = 0; need_old && i < old_keys->count; i++)
		if (!cli_strarray_has(out, old_keys->strings[i])
		    && cli_strarray_push(out, old_keys->strings[i]) != 0)
			return -1;
	for (size_t i = 0; i < a->keys->count; i++)
		if (!cli_strarray_has(out, a->keys->strings[i])
		    && cli_strarray_push(out, a->keys->strings[i]) != 0)
			return -1;
	return 0;
}

/* Old pins first (with --keep-old), then new ones, each once. */
static int
merged_pins(const tp_policy *old, int keep_old, char (*norm)[TP_FINGERPRINT_MAX],
	    size_t nnew, const char ***out, size_t *nout)
{
	size_t nold = keep_old && old ? tp_policy_pin_count(old) : 0;

	*out = NULL;
	*nout = 0;
	for (size_t i = 0; i < nold + nnew; i++) {
		const char *pin = i < nold ? tp_policy_pin_at(old, i) : norm[i - nold];
		int seen = 0;

		for (size_t j = 0; j < *nout; j++)
			seen |= strcmp((*out)[j], pin) == 0;
		if (!seen && push(out, nout, pin) != 0)
			return -1;
	}
	return 0;
}

int
cli_set_apply(struct cli *cli, struct set_args *a, tp_doc *doc, const char *digest,
      char (*norm)[TP_FINGERPRINT_MAX], size_t *index_out)
{
	size_t idx;
	tp_entry e;
	tp_policy *old = NULL;
	tp_level old_level = TP_LEVEL_UNKNOWN, new_level;
	int rc = EX_FAIL, existed, pins_dropped = 0, known;
	const char **pins = NULL;
	size_t npins = 0;
	const char *level = a->level;
	tp_strarray old_keys = TP_STRARRAY_INIT, keys = TP_STRARRAY_INIT;

	(void)cli;
	(void)digest;
	existed = tp_doc_find(doc, a->key, &idx) == 0;
	if (existed) {
		if (tp_doc_entry_at(doc, idx, &e) != 0)
			return cli_errorf("%s: cannot read entry", a->key);
		tp_policy_parse(&old, e.value, e.value_len, NULL);
		if (old)
			old_level = tp_policy_level(old);
		/* Copied: the edits below invalidate e. */
		for (size_t i = 0; i < e.key_count; i++)
			if (cli_strarray_push(&old_keys, e.keys[i]) != 0) {
				rc = cli_errorf("out of memory");
				goto out;
			}
	}
	if (level == NULL && a->npins > 0)
		level = "fingerprint";
	if (level == NULL && !existed) {
		rc = cli_usage("set", "%s: no entry yet: give --level, --fingerprint or --fingerprint-from",
			       a->key);
		goto out;
	}
	if (level) {
		if (tp_level_parse(&new_level, level) != 0) {
			rc = cli_usage("set", "--level %s: unknown TLS security level", level);
			goto out;
		}
	} else
		new_level = old_level;
	if (a->npins > 0 && new_level != TP_LEVEL_FINGERPRINT) {
		rc = cli_usage("set", "--fingerprint needs level fingerprint, not %s",
			       tp_level_name(new_level));
		goto out;
	}
	if (!existed) {
		int arc = tp_doc_append(doc, a->key, tp_level_name(new_level), &idx);

		/* TP_EUSAGE: a key the file format cannot hold as one entry
		 * (empty, whitespace, "#" first, an open quote): the caller's. */
		if (arc == TP_EUSAGE) {
			rc = cli_usage("set", "\"%s\": not a key a policy table can hold",
				       a->key);
			goto out;
		}
		if (arc != 0) {
			rc = cli_errorf("%s: cannot add the entry", a->key);
			goto out;
		}
	} else if (level && new_level != old_level) {
		if (tp_doc_set_level(doc, idx, tp_level_name(new_level)) != 0) {
			rc = cli_errorf("%s: cannot change the level", a->key);
			goto out;
		}
		/* Fingerprint pins mean nothing at other levels (match= is a
		 * hostname list at verify/secure, invalid below): drop them. */
		if (old_level == TP_LEVEL_FINGERPRINT && a->npins == 0) {
			if (tp_doc_set_pins(doc, idx, NULL, 0) != 0) {
				rc = cli_errorf("%s: cannot remove the pins", a->key);
				goto out;
			}
			pins_dropped = 1;
		}
	}
	if (a->npins > 0) {
		if (merged_pins(old && old_level == TP_LEVEL_FINGERPRINT ? old : NULL,
				a->keep_old, norm, a->npins, &pins, &npins) != 0
		    || tp_doc_set_pins(doc, idx, pins, npins) != 0) {
			rc = cli_errorf("%s: cannot write the pins", a->key);
			goto out;
		}
	}
	for (size_t i = 0; i < a->nattrs; i++) {
		const char *eq = strchr(a->attrs[i], '=');
		char *name;
		int arc;

		name = strndup(a->attrs[i], (size_t)(eq - a->attrs[i]));
		if (name == NULL) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		arc = tp_doc_set_attr(doc, idx, name, eq[1] ? eq + 1 : NULL);
		free(name);
		if (arc != 0) {
			rc = cli_usage("set", "--attr %s: cannot be written into a policy entry",
				       a->attrs[i]);
			goto out;
		}
	}
	if (a->nhosts > 0
	    && tp_doc_set_annotation(doc, idx, a->hosts, a->nhosts,
				     a->pin_kind ? a->pin_kind : "cert") != 0) {
		rc = cli_errorf("%s: cannot record the hosts", a->key);
		goto out;
	}
	if (a->npins > 0 || pins_dropped) {
		const tp_policy *kept = a->keep_old && old && old_level == TP_LEVEL_FINGERPRINT
		    ? old : NULL;

		if (keys_after(a, pins_dropped ? NULL : kept, &old_keys, norm, &keys,
			       &known) != 0) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		if (tp_doc_set_annotation_keys(doc, idx, (const char *const *)keys.strings,
					       known ? keys.count : 0) != 0) {
			rc = cli_errorf("%s: cannot record the public keys", a->key);
			goto out;
		}
	}
	/* After keys=, so a new annotation reads from, pin, keys, the rest. */
	if (a->nhosts > 0 &&
	    tp_doc_set_annotation_field(doc, idx, "wrappermode", a->wrapper ? "yes" : NULL) != 0) {
		rc = cli_errorf("%s: cannot record wrapper mode", a->key);
		goto out;
	}
	*index_out = idx;
	rc = EX_SUCCESS;
out:
	free(pins);
	tp_policy_free(old);
	tp_strarray_dispose(&old_keys);
	tp_strarray_dispose(&keys);
	return rc;
}

/*
 * The entry's value as it will be (level fingerprint, --attr applied)
 * but without pins: what the probes of --fingerprint-from must connect
 * with, since its servername=, protocols=, exclude= decide what Postfix
 * will be shown. Read from the table without the lock: the probes take
 * time, and the value is checked again after the edit. *out is a copy
 * to free; -1: out of memory, 1: an --attr the format cannot hold.
 */
static int
prospective_value(struct cli *cli, const struct set_args *a, char **out)
{
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_doc_opts dopts = cli_doc_opts(cli);
	tp_buf path = TP_BUF_INIT;
	char *text = NULL;
	tp_table *table = NULL;
	tp_doc *scratch = NULL;
	tp_map_type type;
	tp_entry e;
	size_t idx;
	int rc = -1;

	*out = NULL;
	opts.doc = dopts;
	/* A table we cannot read yet is reported when it is opened. */
	if ((cli->map_spec != NULL || cli_config(cli) != NULL)
	    && cli_table_spec(cli, &type, &path) == EX_SUCCESS
	    && tp_table_open(&table, type, path.ptr, &opts, NULL) == 0
	    && tp_doc_find(tp_table_doc(table), a->key, &idx) == 0
	    && tp_doc_entry_at(tp_table_doc(table), idx, &e) == 0) {
		if (asprintf(&text, "k\t%.*s\n", (int)e.value_len, e.value) < 0)
			text = NULL;
	} else if (asprintf(&text, "k\tfingerprint\n") < 0)
		text = NULL;
	if (text == NULL ||
	    tp_doc_parse(&scratch, text, strlen(text), "-", &dopts) != 0 ||
	    tp_doc_set_level(scratch, 0, "fingerprint") != 0 ||
	    tp_doc_set_pins(scratch, 0, NULL, 0) != 0)
		goto out;
	for (size_t i = 0; i < a->nattrs; i++) {
		const char *eq = strchr(a->attrs[i], '=');
		char *name = strndup(a->attrs[i], (size_t)(eq - a->attrs[i]));
		int arc;

		if (name == NULL)
			goto out;
		arc = tp_doc_set_attr(scratch, 0, name, eq[1] ? eq + 1 : NULL);
		free(name);
		if (arc == TP_ENOMEM)
			goto out;
		if (arc != 0) {
			rc = 1;
			goto out;
		}
	}
	if (tp_doc_entry_at(scratch, 0, &e) != 0 ||
	    (*out = strndup(e.value, e.value_len)) == NULL)
		goto out;
	rc = 0;
out:
	tp_doc_free(scratch);
	tp_table_free(table);
	tp_buf_dispose(&path);
	free(text);
	return rc;
}

int
cmd_set(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "level", required_argument, NULL, 'l' },
		{ "fingerprint", required_argument, NULL, 'f' },
		{ "fingerprint-from", required_argument, NULL, 'F' },
		{ "pin", required_argument, NULL, 'p' },
		{ "attr", required_argument, NULL, 'a' },
		{ "keep-old", no_argument, NULL, 'k' },
		{ "add", no_argument, NULL, 'k' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "reload", no_argument, NULL, 'r' },
		{ "flush", no_argument, NULL, 'L' },
		{ "timeout", required_argument, NULL, 't' },
		{ "postfix-command", required_argument, NULL, 'P' },
		{ "wrapper", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct set_args a = { .timeout = 30 };
	char (*norm)[TP_FINGERPRINT_MAX] = NULL;
	tp_table *table = NULL;
	tp_buf before = TP_BUF_INIT;
	tp_strarray probed = TP_STRARRAY_INIT, specs = TP_STRARRAY_INIT;
	tp_strarray probed_keys = TP_STRARRAY_INIT;
	char *value = NULL;
	const char *digest;
	size_t idx = 0;
	int ch, written, rc = EX_FAIL;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		int bad = 0;

		switch (ch) {
		case 'l':
			a.level = optarg;
			break;
		case 'f':
			bad = push(&a.pins, &a.npins, optarg);
			break;
		case 'F':
			bad = push(&a.hosts, &a.nhosts, optarg);
			break;
		case 'p':
			if (strcmp(optarg, "cert") && strcmp(optarg, "pkey")) {
				rc = cli_usage("set", "--pin %s: say cert or pkey", optarg);
				goto out;
			}
			a.pin_kind = optarg;
			break;
		case 'a':
			if (strchr(optarg, '=') == NULL || optarg[0] == '=') {
				rc = cli_usage("set", "--attr %s: say NAME=VALUE", optarg);
				goto out;
			}
			if (strncasecmp(optarg, "match=", 6) == 0) {
				rc = cli_usage("set", "--attr match=...: use --fingerprint or --fingerprint-from");
				goto out;
			}
			bad = push(&a.attrs, &a.nattrs, optarg);
			break;
		case 'k':
			a.keep_old = 1;
			break;
		case 'n':
			a.dry_run = 1;
			break;
		case 'r':
			a.reload = 1;
			break;
		case 'L':
			a.flush = 1;
			break;
		case 't':
			if ((a.timeout = cli_parse_seconds(optarg)) < 0) {
				rc = cli_usage("set", "--timeout %s: say a number of seconds", optarg);
				goto out;
			}
			break;
		case 'P':
			a.postfix_command = optarg;
			break;
		case 'W':
			a.wrapper = 1;
			break;
		case 'h':
			set_usage(stdout);
			rc = EX_SUCCESS;
			goto out;
		default:
			rc = cli_bad_option("set", ch, argv);
			goto out;
		}
		if (bad) {
			rc = cli_errorf("out of memory");
			goto out;
		}
	}
	if (argc - optind != 1) {
		rc = cli_usage("set", argc == optind ? "which KEY?" : "one KEY at a time");
		goto out;
	}
	a.key = argv[optind];
	if (a.pin_kind && a.nhosts == 0) {
		rc = cli_usage("set", "--pin goes with --fingerprint-from");
		goto out;
	}
	if (a.wrapper && a.nhosts == 0) {
		rc = cli_usage("set", "--wrapper goes with --fingerprint-from");
		goto out;
	}
	if ((digest = cli_checked_digest(cli)) == NULL)
		goto out;
	a.nmanual = a.npins;
	if (a.nhosts > 0) {
		int prc = prospective_value(cli, &a, &value);

		if (prc != 0) {
			rc = prc < 0 ? cli_errorf("out of memory")
			    : cli_usage("set", "--attr: cannot be written into a policy entry");
			goto out;
		}
		if ((rc = cli_probe_pins(cli, a.key, value, a.wrapper,
					 (const char *const *)a.hosts, a.nhosts, a.pin_kind,
					 a.timeout, digest, &probed, &probed_keys,
					 &specs)) != EX_SUCCESS)
			goto out;
		a.keys = &probed_keys;
		rc = EX_FAIL;
		/* The annotation keeps HOST:PORT, as probed, for rotate. */
		free(a.hosts);
		a.hosts = NULL;
		a.nhosts = 0;
		for (size_t i = 0; i < specs.count; i++)
			if (push(&a.hosts, &a.nhosts, specs.strings[i]) != 0) {
				rc = cli_errorf("out of memory");
				goto out;
			}
		for (size_t i = 0; i < probed.count; i++)
			if (push(&a.pins, &a.npins, probed.strings[i]) != 0) {
				rc = cli_errorf("out of memory");
				goto out;
			}
	}
	if (a.npins && (norm = calloc(a.npins, sizeof(*norm))) == NULL) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	if (cli_set_check_pins(&a, digest, norm) != EX_SUCCESS)
		goto out;
	if (cli_table_open(cli, a.dry_run ? 0 : TP_TABLE_WRITE, &table) != EX_SUCCESS)
		goto out;
	/* The bytes before, for --dry-run's diff only: a copy of the file. */
	if (a.dry_run && tp_doc_serialize(tp_table_doc(table), &before) != 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	if ((rc = cli_set_apply(cli, &a, tp_table_doc(table), digest, norm, &idx)) != EX_SUCCESS)
		goto out;
	rc = EX_FAIL;
	if (cli_check_entry(tp_table_doc(table), idx, tp_table_source(table)) != EX_SUCCESS)
		goto out;
	if ((rc = cli_finish_edit(table, &before, a.dry_run, &written)) != EX_SUCCESS
	    || a.dry_run || (!written && !a.flush))
		goto out;
	if (written && !cli->quiet)
		cli_print_entry_summary(table, idx);
	rc = EX_SUCCESS;
	/* Release the table lock before reloading: Postfix may read it. */
	tp_table_free(table);
	table = NULL;
	if (written && a.reload)
		rc = cli_reload(cli, a.postfix_command);
	/* An unchanged entry may still have mail waiting from before. */
	if (rc == EX_SUCCESS && a.flush)
		rc = cli_stuck_release(cli, (char *const *)&a.key, 1, a.timeout, 1, NULL);
out:
	tp_table_free(table);
	tp_buf_dispose(&before);
	free(norm);
	free(a.pins);
	free(a.attrs);
	free(a.hosts);
	tp_strarray_dispose(&probed);
	tp_strarray_dispose(&probed_keys);
	tp_strarray_dispose(&specs);
	free(value);
	return rc;
}
