/*
 * Fuzz target for main.cf: any bytes parse (continuations, comments,
 * name = value); expansion of every parameter tlspolicy asks for, and of
 * names taken from the input itself, terminates ($name, ${name?..:..},
 * the relational form, self-reference) and yields a C string of at most
 * TP__CONFIG_EXPAND_OUTPUT bytes (the budget of one expansion: a value
 * longer than that aborts, which libFuzzer reports); the policy map and
 * the digest are answered without crashing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "tlspolicy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void
ask(const tp_config *config, const char *name)
{
	const char *v = tp_config_get(config, name);
	size_t len;

	if (v == NULL)
		return;
	len = strlen(v);
	if (len > TP__CONFIG_EXPAND_OUTPUT) {
		fprintf(stderr, "%s expands to %zu bytes, over the budget of %u\n", name,
			len, TP__CONFIG_EXPAND_OUTPUT);
		abort();
	}
	sink += len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {
		"config_directory", "compatibility_level", "smtputf8_enable",
		"smtp_tls_fingerprint_digest", "smtp_tls_policy_maps",
		"myhostname", "", "$", "{",
	};
	const char *text = (const char *)data;
	tp_diag diag = TP_DIAG_INIT;
	tp_config *config;
	tp_map_type type;
	const char *path;

	if (tp__config_parse(&config, "/etc/postfix", text, size, &diag) != 0)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ask(config, names[i]);
	/* Names the input defines: every line's first word. */
	for (size_t i = 0; i < size;) {
		size_t n = 0;
		char name[64];

		while (i + n < size && n < sizeof(name) - 1 && text[i + n] != '='
		       && text[i + n] != ' ' && text[i + n] != '\n' && text[i + n] != '\0')
			n++;
		memcpy(name, text + i, n);
		name[n] = '\0';
		ask(config, name);
		while (i < size && text[i] != '\n')
			i++;
		i++;
	}
	if (tp_config_policy_map(config, &type, &path, &diag) == 0)
		sink += strlen(path) + (size_t)type;
	sink += strlen(tp_config_digest(config));
	sink += (size_t)tp_config_smtputf8(config);
	sink += strlen(tp_config_dir(config));
	tp_config_free(config);
	return 0;
}
