/*
 * list-pins - print the fingerprint pins of a Postfix TLS policy table
 *
 * usage: list-pins [FILE]
 *
 * Reads the table's source file (FILE, or the first file-backed map of
 * smtp_tls_policy_maps in $MAIL_CONFIG/main.cf, else /etc/postfix), and
 * prints one line per pin:
 *
 *	KEY<TAB>DIGEST<TAB>FINGERPRINT
 *
 * where DIGEST is what the pin's length implies ("?" when none does).
 * Entries Postfix would reject are reported on stderr and make the exit
 * status 1. A small example of the libtlspolicy API: build it with
 *
 *	cc -o list-pins list-pins.c $(pkg-config --cflags --libs tlspolicy)
 */
#include <stdio.h>
#include <stdlib.h>

#include <tlspolicy.h>

static int
report(const char *what, const tp_diag *diag)
{
	char msg[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32];

	fprintf(stderr, "list-pins: %s: %s\n", what,
		tp_diag_format(diag, msg, sizeof(msg)));
	return 1;
}

int
main(int argc, char **argv)
{
	tp_diag diag = TP_DIAG_INIT;
	tp_doc_opts opts = TP_DOC_OPTS_INIT;
	tp_config *config = NULL;
	tp_doc *doc = NULL;
	const char *path;
	int status = 0;

	if (argc > 2) {
		fprintf(stderr, "usage: list-pins [FILE]\n");
		return 64;
	}
	if (tp_config_load(&config, NULL, &diag) == 0) {
		/* Fold keys as Postfix will, UTF-8 or not. */
		opts.utf8 = tp_config_smtputf8(config);
	} else if (argc < 2) {
		return report("main.cf", &diag);
	}
	if (argc == 2) {
		path = argv[1];
	} else {
		tp_map_type type;

		if (tp_config_policy_map(config, &type, &path, &diag) < 0) {
			tp_config_free(config);
			return report("main.cf", &diag);
		}
	}
	if (tp_doc_load(&doc, path, &opts, &diag) < 0) {
		tp_config_free(config);
		return report(path, &diag);
	}

	for (size_t i = 0; i < tp_doc_entry_count(doc); i++) {
		tp_entry e;
		tp_policy *policy = NULL;

		if (tp_doc_entry_at(doc, i, &e) < 0 || e.duplicate)
			continue;	/* Postfix uses the first of duplicates */
		tp_diag_clear(&diag);
		if (tp_policy_parse(&policy, e.value, e.value_len, &diag) < 0) {
			fprintf(stderr, "list-pins: %s:%lu: %.*s: %s\n", path,
				e.line, (int)e.key_len, e.key, diag.message);
			status = 1;
		}
		for (size_t p = 0; policy && p < tp_policy_pin_count(policy); p++) {
			const char *pin = tp_policy_pin_at(policy, p);
			const char *digest = tp_pin_digest(pin);

			printf("%.*s\t%s\t%s\n", (int)e.key_len, e.key,
			       digest ? digest : "?", pin);
		}
		tp_policy_free(policy);
	}
	tp_doc_free(doc);
	tp_config_free(config);
	return status;
}
