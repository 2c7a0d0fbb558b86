/*
 * NAME
 *	cli - shared state and helpers of the tlspolicy commands
 * DESCRIPTION
 *	Each command is "int cmd_NAME(struct cli *cli, int argc, char **argv)"
 *	with argv[0] the command name; it returns the process exit status.
 *	Global options (-c, -m, -d, -v, -q) are parsed before it runs.
 *
 *	cli_config() loads main.cf on first use (NULL when there is none;
 *	the reason is kept for cli_table_spec's error). cli_config_unusable()
 *	is true, with the reason in why, when main.cf exists but cannot be
 *	used: unreadable, or a macro loop that stops Postfix itself; main.c
 *	then refuses to run a command (check reports CRITICAL), since
 *	nothing read from it would be what Postfix does. cli_digest() is -d,
 *	else main.cf's effective digest, else sha256 (Postfix's default
 *	since compatibility level 3.6) when there is no main.cf.
 *
 *	cli_error() prints "tlspolicy: " and the diagnostic, one line, on
 *	stderr; cli_errorf() the same from a format. Both return EX_FAIL so
 *	commands can "return cli_error(...)". cli_usage() prints a usage
 *	error and returns EX_USAGE_ERR. cli_warnf() prints "tlspolicy:
 *	warning: " and the text. All four also log the line to syslog
 *	(facility mail) when stderr is not a terminal or with --syslog (see
 *	msg.c); cli_notef() prints an informational line on stderr only.
 *	cli_logf() records an event at mail.notice in that same case, and
 *	prints nothing: what rotate pinned unattended, and why, belongs in
 *	the mail log even with -q.
 *
 *	cli_msg_setup() decides that, once the global options are known.
 *	cli_progress_start(), _update() and _end() show "WHAT DONE/TOTAL
 *	UNIT..." on stderr while a long run lasts, only on a terminal and
 *	without -q, and erase it at the end.
 */
#ifndef TP_CLI_H
#define TP_CLI_H

#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <tlspolicy.h>

#define TP_CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum {
	EX_SUCCESS = 0,
	EX_FAIL = 1,		/* failure, or changes pending */
	EX_USAGE_ERR = 64	/* sysexits EX_USAGE */
};

struct cli {
	const char *config_dir;	/* -c DIR, else NULL */
	const char *map_spec;	/* -m MAP, else NULL */
	const char *digest_opt;	/* -d DIGEST, else NULL */
	int verbose;
	int quiet;
	int syslog;		/* --syslog */
	double lock_timeout;	/* --lock-timeout, seconds */
	tp_config *config;
	int config_loaded;
	int redirect_noted;	/* cli_redirect() said so once */
	tp_diag config_diag;
	/* Root writing another user's table runs as that user (table.c). */
	int dropped;
	gid_t saved_egid;
	gid_t *saved_groups;
	int saved_ngroups;
};

tp_config *cli_config(struct cli *cli);
int cli_config_unusable(struct cli *cli, char *why, size_t size);
/*
 * cli_table_open() opens the policy table named by -m, else the first
 * file-backed map of main.cf's smtp_tls_policy_maps, with the key folding
 * main.cf implies (smtputf8_enable). flags: TP_TABLE_WRITE to lock it for
 * an update. On failure it prints the error and returns EX_FAIL.
 * cli_doc_opts() gives the parse options main.cf implies.
 * cli_table_spec() only names the table (type and source path), for
 * commands that read the db alone. cli_print_warnings() prints the
 * source's postmap warnings on stderr, "tlspolicy: warning: " and
 * postmap's text (unless -q).
 */
int cli_table_open(struct cli *cli, unsigned int flags, tp_table **out);
/*
 * With TP_TABLE_WRITE, root opens a table whose source another user
 * owns as that user, as postmap does: effective uid and gid become the
 * owner's (that group alone), so the lock file, temp files and db are
 * made as the owner, and whoever owns the table's directory cannot make
 * root create, replace or remove files elsewhere. cli_regain_root()
 * undoes it (for postfix reload; a no-op when nothing was dropped).
 */
int cli_regain_root(struct cli *cli);
/*
 * Can this (non-root) user write the table whose source is source: the
 * directory (lock file, temp files, renames) and an existing lock file?
 */
int cli_table_writable(const char *source);
int cli_table_spec(struct cli *cli, tp_map_type *type, tp_buf *path);
/*
 * cli_redirect(): with Postfix 3.11's non_bdb_migration_level on, the
 * type Postfix reads for a table written as *type (hash: default_
 * database_type, btree: default_cache_db_type) replaces *type, with a
 * note on stderr (once, unless -q); an error when that is a type
 * Postfix cannot use.
 */
int cli_redirect(struct cli *cli, tp_map_type *type, const char *path);
void cli_print_warnings(struct cli *cli, tp_table *table);
tp_doc_opts cli_doc_opts(struct cli *cli);
void cli_cleanup(struct cli *cli);
const char *cli_digest(struct cli *cli);
int cli_error(const tp_diag *diag);
int cli_errorf(const char *fmt, ...) TP_CLI_PRINTF(1, 2);
int cli_usage(const char *command, const char *fmt, ...) TP_CLI_PRINTF(2, 3);
void cli_warnf(const char *fmt, ...) TP_CLI_PRINTF(1, 2);
void cli_notef(const char *fmt, ...) TP_CLI_PRINTF(1, 2);
void cli_logf(const char *fmt, ...) TP_CLI_PRINTF(1, 2);
void cli_msg_setup(int force_syslog, int quiet);
void cli_msg_error(const char *text);
void cli_msg_verror(const char *fmt, va_list ap) TP_CLI_PRINTF(1, 0);
void cli_progress_start(const char *what, const char *unit);
void cli_progress_update(size_t done, size_t total);
void cli_progress_end(void);
/* Parse a positive number of seconds ("30", "2.5"); -1 when malformed. */
double cli_parse_seconds(const char *s);

/*
 * Command options are parsed with getopt_long and an optstring starting
 * ":" (options may follow KEY, as in "set KEY --level may"), so ch is
 * ':' for a missing argument and '?' for an unknown
 * option; cli_bad_option() reports either as a usage error (exit 64).
 */
int cli_bad_option(const char *command, int ch, char **argv);
/* cli_digest(), checked with OpenSSL; prints the error and returns NULL. */
const char *cli_checked_digest(struct cli *cli);
/* Do two digest names denote the same digest (sha256, SHA256, SHA2-256)? */
int cli_digest_equal(const char *a, const char *b);
const char *cli_db_state_name(tp_db_state state);
/* t as "2026-11-28T21:31:00Z" (UTC) in buf, "?" when it cannot be shown. */
const char *cli_iso_time(char *buf, size_t size, time_t t);
/* "2026-11-28T21:31:00Z" back to a time; 0 when it is not one. */
time_t cli_parse_iso(const char *s);
/*
 * The time rotate and check work with: time(NULL), or $TLSPOLICY_NOW
 * (an ISO time as above, or seconds since the epoch). A test hook, so
 * tests can see a hold-down period pass without waiting; documented as
 * such in tlspolicy(1). A malformed value is ignored with a warning.
 */
time_t cli_now(void);
/*
 * cli_dns_servers() is $TLSPOLICY_DNS_SERVERS, a comma-separated
 * "ADDR[:PORT]" list ("127.0.0.1:5353,[::1]:5353") used instead of
 * /etc/resolv.conf, or NULL (unset or empty: the system's servers). Give
 * it as tp_resolver_opts.servers (and tp_probe_opts.dns_servers); a
 * malformed list is then a TP_EUSAGE error naming it. The tests set it
 * to their loopback DNS server: they never use real DNS.
 */
const char *cli_dns_servers(void);
/*
 * The end of an edit of table's document: with dry_run, print the change
 * to the source as a unified diff against before (its bytes when the edit
 * began); otherwise write source and db. *written says whether it wrote.
 * EX_SUCCESS, or EX_FAIL with the error printed.
 */
int cli_finish_edit(tp_table *table, const tp_buf *before, int dry_run,
		    int *written);
/*
 * Print a unified diff (3 lines of context) of a and b; nothing if equal.
 * Its cost is about the bytes of a and b plus at most 16M steps (lines
 * are compared as numbers; a longer middle is shown as one replace
 * hunk). EX_FAIL (printed) when out of memory, else 0.
 */
int cli_print_diff(FILE *fp, const char *label, const char *a, size_t alen,
		    const char *b, size_t blen);
/*
 * Run "postfix -c DIR reload" by fork and exec, no shell, with an
 * environment of PATH (the system's directories) and TZ only, as root
 * again (cli_regain_root). command is the postfix program (NULL:
 * $command_directory/postfix from main.cf, /usr/sbin by default; a name
 * without '/' is looked up in that PATH). Prints what failed and returns
 * EX_FAIL, or EX_SUCCESS.
 */
int cli_reload(struct cli *cli, const char *command);
/*
 * cli_run() runs argv (argv[0] a path; with path_search a name is looked
 * up in the PATH of the system's directories) without a shell, in a
 * clean environment: that PATH and TZ, nothing else of ours (see
 * run.c). With out, the child's standard
 * output goes to it (a non-zero return stops the feeding; the run then
 * fails with out_failed), else to ours; with capture_err its standard
 * error is kept in err (the start of it), else it goes to ours;
 * stdin_null gives it /dev/null. timeout > 0 (seconds; only with out or
 * capture_err): killed when its output is not closed by then
 * (timed_out). 0 when it ran and exited 0; -1 otherwise: ran == 0 with
 * the reason in err when it could not be started; else exited and
 * code (exit status, or signal number when !exited) say how it ended.
 */
struct cli_run_opts {
	int path_search;
	int stdin_null;
	int capture_err;
	double timeout;
	int (*out)(void *ctx, const char *p, size_t n);
	void *ctx;
};

struct cli_run_result {
	int ran, exited, code, timed_out, out_failed;
	char err[1024];
	size_t errlen;
};

int cli_run(const char *const argv[], const struct cli_run_opts *o,
	    struct cli_run_result *r);

/*
 * The path of Postfix's program name (postfix, postconf, postqueue...):
 * in main.cf's command_directory, else /usr/sbin (Postfix's default, as
 * postconf -d says). -1 with a message in why when command_directory is
 * not an absolute path or the path does not fit in path.
 */
int cli_postfix_program(struct cli *cli, const char *name, char *path,
			size_t pathsize, char *why, size_t whysize);

/*
 * cli_check_entry() prints "SOURCE:LINE: KEY: Postfix would reject ..."
 * and returns EX_FAIL when entry idx is not a value Postfix accepts.
 * cli_print_entry_summary() prints one line saying what the entry is now.
 */
int cli_check_entry(const tp_doc *doc, size_t idx, const char *source);
void cli_print_entry_summary(tp_table *table, size_t idx);
/*
 * "db updated" (a copy with the changed records) or "db rebuilt", or
 * what stands instead for a table without a database.
 */
const char *cli_written_note(const tp_table *table);
/*
 * One set of an entry, as "set KEY ..." does it (import applies each of
 * its lines so): cli_set_check_pins() normalises a->pins into norm
 * (a->npins of them) and refuses any whose length says another digest
 * than digest; cli_set_apply() creates or updates the entry a->key in
 * doc (level, pins, attributes, annotation) and gives its index. Both
 * print what is wrong and return EX_FAIL or EX_USAGE_ERR.
 */
struct set_args {
	const char *key;
	const char *level;
	const char **pins;
	size_t npins;
	const char **attrs;
	size_t nattrs;
	const char **hosts;
	size_t nhosts;
	size_t nmanual;		/* pins[0..nmanual-1] from --fingerprint */
	const tp_strarray *keys; /* public keys of the probed leaves */
	const char *pin_kind;
	double timeout;
	int keep_old;
	int dry_run;
	int reload;
	int flush;
	int wrapper;		/* SMTPS: recorded as wrappermode=yes */
	const char *postfix_command;
};

int cli_set_check_pins(struct set_args *a, const char *digest,
		       char (*norm)[TP_FINGERPRINT_MAX]);
int cli_set_apply(struct cli *cli, struct set_args *a, tp_doc *doc,
		  const char *digest, char (*norm)[TP_FINGERPRINT_MAX],
		  size_t *index_out);
/*
 * Probe every address of every host the way Postfix's SMTP client
 * connects for next hop key with the entry value (after the edit; its
 * pins do not matter): SNI, protocols, ciphers, EHLO name, address
 * families as the library's client settings say, in wrapper mode when
 * asked. Collect the leaf fingerprints (of kind pin_kind, "cert" when
 * NULL) they present, each once, in digest, into pins, the key ids
 * (cli_key_id) of those leaves, each once, into keys (for the
 * annotation's keys=), and the hosts as HOST:PORT (see cli_host_spec)
 * into specs. Any address that cannot be probed: print why for each and
 * return EX_FAIL (EX_USAGE_ERR for a malformed host), all arrays left
 * empty.
 */
int cli_probe_pins(struct cli *cli, const char *key, const char *value,
		   int wrappermode, const char *const *hosts, size_t nhosts,
		   const char *pin_kind, double timeout, const char *digest,
		   tp_strarray *pins, tp_strarray *keys, tp_strarray *specs);
/* "host:port", or "[v6]:port" for an IPv6 address: the annotation's form. */
void cli_host_spec(char *buf, size_t size, const char *host, unsigned int port);
void cli_trace_to_stderr(const char *line, void *payload);
/*
 * What every probe of the CLI shares: DNS servers from
 * TLSPOLICY_DNS_SERVERS, and the trace with -v. The EHLO name, SNI and
 * the rest come from the client settings (main.cf), as in Postfix.
 */
void cli_probe_defaults(struct cli *cli, tp_probe_opts *opts);
void cli_delivery_defaults(struct cli *cli, tp_delivery_opts *opts);
/*
 * A public key's id as keys= records it: the sha256 digest of the leaf's
 * SubjectPublicKeyInfo, whatever digest the pins use, so a change of
 * smtp_tls_fingerprint_digest keeps renewals recognisable. probe_digest is
 * the digest the leaf's fingerprints were made with: when it is sha256,
 * the id is its pkey_fingerprint, and the certificate is not parsed
 * again (parsing is most of a fingerprint's cost). -1 when the
 * certificate cannot be read.
 */
#define TP_KEY_ID_BYTES 32
int cli_key_id(char out[TP_FINGERPRINT_MAX], const tp_probe_cert *leaf,
	       const char *probe_digest);
/* Append a copy of s (-1: out of memory); is s in a? */
int cli_strarray_push(tp_strarray *a, const char *s);
int cli_strarray_has(const tp_strarray *a, const char *s);


/*
 * Every map of main.cf's smtp_tls_policy_maps around the table worked
 * on (src/cli/maps.c). cli_maps_open() opens the list (maps NULL when
 * main.cf has none) and finds the table TYPE:PATH in it (table
 * SIZE_MAX when it is not listed). cli_maps_shadow() says whether a map
 * before map index answers for key (found, answer), and the first map
 * before it that cannot be evaluated here (unknown, SIZE_MAX: none);
 * -1 with message when an earlier map cannot be read (Postfix's lookups
 * fail there too). cli_shadow_text() words it: "shadowed by
 * regexp:/etc/postfix/pre line 1", or "socketmap:... cannot be
 * evaluated here and may answer first"; "" when neither.
 */
struct cli_maps {
	tp_maps *maps;
	size_t table;
};

struct cli_shadow {
	int found;
	tp_map_answer answer;
	size_t unknown;
	int error;
	char message[TP_DIAG_MESSAGE_MAX];
};

int cli_maps_open(struct cli *cli, const char *type, const char *path,
		  struct cli_maps *out);
void cli_maps_close(struct cli_maps *m);
int cli_maps_shadow(struct cli_maps *m, size_t index, const char *key,
		    struct cli_shadow *out);
const char *cli_shadow_text(struct cli_maps *m, const struct cli_shadow *s,
			    char *buf, size_t size);
/*
 * Does a map of main.cf's smtp_tls_policy_maps fail every lookup (a bare
 * path, a missing file)? Then Postfix defers the mail; why says so.
 */
int cli_maps_broken(struct cli *cli, char *why, size_t size);

int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_get(struct cli *cli, int argc, char **argv);
int cmd_set(struct cli *cli, int argc, char **argv);
int cmd_remove(struct cli *cli, int argc, char **argv);
int cmd_rebuild(struct cli *cli, int argc, char **argv);
int cmd_doctor(struct cli *cli, int argc, char **argv);
int cmd_migrate(struct cli *cli, int argc, char **argv);
int cmd_probe(struct cli *cli, int argc, char **argv);
int cmd_rotate(struct cli *cli, int argc, char **argv);
int cmd_check(struct cli *cli, int argc, char **argv);
int cmd_import(struct cli *cli, int argc, char **argv);
int cmd_export(struct cli *cli, int argc, char **argv);

#endif
