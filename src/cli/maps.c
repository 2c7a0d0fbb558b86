/*
 * NAME
 *	maps - the table among all of smtp_tls_policy_maps (list, doctor)
 * SUMMARY
 *	Postfix asks every map of smtp_tls_policy_maps in order and the
 *	first answer wins: an entry of our table is dead when an earlier
 *	map answers for its key, and in doubt when an earlier map cannot be
 *	evaluated here (socketmap, SQL, LDAP, ...). These helpers open the
 *	list once and say, for a key, which earlier map takes it.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int
cli_maps_open(struct cli *cli, const char *type, const char *path,
	      struct cli_maps *out)
{
	tp_config *config = cli_config(cli);
	tp_diag d = TP_DIAG_INIT;

	out->maps = NULL;
	out->table = SIZE_MAX;
	if (config == NULL || tp_maps_open(&out->maps, config, &d) != 0)
		return EX_SUCCESS;	/* no list: nothing can shadow the table */
	for (size_t i = 0; i < tp_maps_count(out->maps); i++) {
		const tp_map_info *info = tp_maps_at(out->maps, i);

		if (info->path && strcmp(info->type, type) == 0
		    && strcmp(info->path, path) == 0) {
			out->table = i;
			break;
		}
	}
	return EX_SUCCESS;
}

void
cli_maps_close(struct cli_maps *m)
{
	tp_maps_free(m->maps);
	m->maps = NULL;
}

int
cli_maps_shadow(struct cli_maps *m, size_t index, const char *key,
		struct cli_shadow *out)
{
	size_t start = 0;

	memset(out, 0, sizeof(*out));
	out->unknown = SIZE_MAX;
	if (m->maps == NULL || index == SIZE_MAX)
		return 0;
	/* Past a map we cannot evaluate, a later one may still answer. */
	while (start < index) {
		tp_map_answer a;
		tp_diag d = TP_DIAG_INIT;

		if (tp_maps_find_range(m->maps, start, index, key, &a, &d) != 0) {
			out->error = 1;
			snprintf(out->message, sizeof(out->message), "%s", d.message);
			return -1;
		}
		if (a.status == TP_MAPS_UNKNOWN) {
			if (out->unknown == SIZE_MAX)
				out->unknown = a.index;
			start = a.index + 1;
			continue;
		}
		if (a.status != TP_MAPS_NOTFOUND) {
			out->found = 1;
			out->answer = a;
		}
		break;
	}
	return 0;
}

const char *
cli_shadow_text(struct cli_maps *m, const struct cli_shadow *s, char *buf,
		size_t size)
{
	const tp_map_info *info;
	int n = 0;

	buf[0] = 0;
	if (s->found) {
		info = tp_maps_at(m->maps, s->answer.index);
		if (s->answer.line)
			n = snprintf(buf, size, "shadowed by %s line %lu", info->spec,
				     s->answer.line);
		else
			n = snprintf(buf, size, "shadowed by %s", info->spec);
		if (s->answer.status == TP_MAPS_ERROR && n >= 0 && (size_t)n < size)
			n += snprintf(buf + n, size - (size_t)n, " (a lookup error for Postfix)");
		if (s->unknown != SIZE_MAX && n >= 0 && (size_t)n < size)
			snprintf(buf + n, size - (size_t)n, ", unless %s answers first",
				 tp_maps_at(m->maps, s->unknown)->spec);
	} else if (s->unknown != SIZE_MAX) {
		snprintf(buf, size, "%s cannot be evaluated here and may answer first",
			 tp_maps_at(m->maps, s->unknown)->spec);
	}
	return buf;
}

int
cli_maps_broken(struct cli *cli, char *why, size_t size)
{
	tp_config *config = cli_config(cli);
	tp_maps *maps = NULL;
	tp_diag d = TP_DIAG_INIT;
	int broken = 0;

	if (config == NULL || tp_maps_open(&maps, config, &d) != 0)
		return 0;
	for (size_t i = 0; !broken && i < tp_maps_count(maps); i++) {
		tp_map_answer a;

		if (!tp_maps_at(maps, i)->readable)
			continue;
		d = (tp_diag)TP_DIAG_INIT;
		if (tp_maps_find_range(maps, i, i + 1, "check.invalid", &a, &d) < 0 &&
		    d.status != TP_ENOMEM) {
			snprintf(why, size, "%s: Postfix's TLS policy lookups fail, and the mail is deferred",
				 d.message);
			broken = 1;
		}
	}
	tp_maps_free(maps);
	return broken;
}
