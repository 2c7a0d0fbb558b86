/*
 * postfix-servers - which servers Postfix's SMTP client tries for a policy
 * key, with which TLS settings, and what they present
 *
 * usage: postfix-servers [-c DIR] [-t SECONDS] KEY [VALUE]
 *
 * KEY is a next hop as Postfix looks it up in smtp_tls_policy_maps
 * (example.com, example.com:587, [mx.example.com]:25, [192.0.2.1]);
 * VALUE the policy to judge (default: the one in the table main.cf
 * names, else none). Prints the settings Postfix would use, then the
 * servers in Postfix's order, each with whether Postfix tries it
 * (smtp_mx_address_limit), its outcome against the pins, and the
 * verdict a monitor would give:
 *
 *	key example.com: servers from MX
 *	settings: level fingerprint, SNI none, protocols >=TLSv1, ...
 *	server mx1.example.com[192.0.2.1]:25 pref 10 tried yes: match
 *	verdict: OK: 1 server presents a pinned certificate or key; ...
 *
 * DNS goes to the servers of $TLSPOLICY_DNS_SERVERS when set (as for
 * tlspolicy(1)), else to those of /etc/resolv.conf. Exit status: 0 OK,
 * 1 WARNING, 2 CRITICAL, 3 UNKNOWN, 64 usage. A small example of the
 * libtlspolicy delivery model; build it with
 *
 *	cc -o postfix-servers postfix-servers.c \
 *	    $(pkg-config --cflags --libs tlspolicy)
 */
#define _POSIX_C_SOURCE 200809L	/* getopt() under -std=c11 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tlspolicy.h>

static const char *
tried_name(tp_try t)
{
	return t == TP_TRY_YES ? "yes" : t == TP_TRY_MAYBE ? "maybe" : "no";
}

/* The value Postfix finds for key in the table main.cf names, or NULL. */
static char *
table_value(const tp_config *config, const char *key)
{
	tp_doc_opts fold = TP_DOC_OPTS_INIT;
	tp_buf folded = TP_BUF_INIT, value = TP_BUF_INIT;
	tp_map_type type;
	const char *path;
	char *out = NULL;

	fold.utf8 = tp_config_smtputf8(config);
	if (tp_config_policy_map(config, &type, &path, NULL) == 0 &&
	    tp_key_fold(&folded, key, &fold) == 0) {
		size_t n = strlen(path) + strlen(tp_map_type_suffix(type)) + 1;
		char *dbpath = malloc(n);

		if (dbpath != NULL) {
			snprintf(dbpath, n, "%s%s", path, tp_map_type_suffix(type));
			if (tp_map_lookup(type, dbpath, folded.ptr, &value, NULL) == 0)
				out = strdup(value.ptr);
			free(dbpath);
		}
	}
	tp_buf_dispose(&folded);
	tp_buf_dispose(&value);
	return out;
}

static void
print_settings(const tp_client_info *in)
{
	printf("settings: level %s%s, SNI %s, protocols %s, cipher list %s, security level %d, "
	       "EHLO %s, %s%s%s, address limit %u, %s%s\n",
	       tp_level_name(in->level), in->valid ? "" : " (Postfix rejects the entry)",
	       *in->servername ? in->servername : "none", in->protocols,
	       in->cipherlist ? in->cipherlist : "-", in->security_level, in->helo_name,
	       (in->families & TP_FAMILY_IPV4) ? "IPv4" : "",
	       in->families == (TP_FAMILY_IPV4 | TP_FAMILY_IPV6) ? "+" : "",
	       (in->families & TP_FAMILY_IPV6) ? "IPv6" : "", in->mx_address_limit,
	       in->dns == TP_DNS_DISABLED ? "no DNS" : "DNS",
	       in->wrappermode ? ", wrapper mode" : "");
}

int
main(int argc, char **argv)
{
	tp_delivery_opts opts = TP_DELIVERY_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_config *config = NULL;
	tp_delivery *d = NULL;
	tp_verdict *v = NULL;
	const tp_delivery_key *k;
	const char *dir = NULL, *dns = getenv("TLSPOLICY_DNS_SERVERS");
	char msg[TP_DIAG_FILE_MAX + TP_DIAG_MESSAGE_MAX + 32], *value = NULL;
	int c, status = 3;

	while ((c = getopt(argc, argv, "c:t:")) != -1) {
		switch (c) {
		case 'c':
			dir = optarg;
			break;
		case 't':
			opts.timeout = strtod(optarg, NULL);
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		goto usage;
	if (tp_config_load(&config, dir, &diag) != 0 && diag.status != TP_ENOTFOUND)
		goto fail;
	if (optind + 1 < argc)
		value = strdup(argv[optind + 1]);
	else if (config != NULL)
		value = table_value(config, argv[optind]);
	opts.dns_servers = dns && *dns ? dns : NULL;
	if (tp_delivery_new(&d, config, &opts, &diag) != 0 ||
	    tp_delivery_add(NULL, d, argv[optind], value, NULL, &diag) != 0 ||
	    tp_delivery_run(d, &diag) != 0 ||
	    tp_delivery_verdict(&v, d, 0, NULL, &diag) != 0)
		goto fail;

	k = tp_delivery_key_at(d, 0);
	printf("key %s: servers from %s\n", k->key, k->servers_from ? k->servers_from : "nowhere");
	print_settings(tp_client_settings_info(k->settings));
	if (k->error != NULL)
		printf("error: %s\n", k->error);
	for (size_t i = 0; i < k->server_count; i++) {
		const tp_server *s = &k->servers[i];

		printf("server %s[%s]:%u pref %u tried %s: %s", s->host,
		       s->address ? s->address : "?", s->port, s->preference,
		       tried_name(s->tried), tp_outcome_name(s->outcome));
		if (s->probe != NULL && s->probe->servername != NULL)
			printf(", SNI %s", s->probe->servername);
		if (s->error != NULL)
			printf(" (%s)", s->error);
		putchar('\n');
	}
	printf("verdict: %s", tp_state_name(v->state));
	for (size_t i = 0; i < v->reason_count; i++)
		printf("%s %s", i ? ";" : ":", v->reasons[i].text);
	putchar('\n');
	status = (int)v->state;
	goto out;
fail:
	fprintf(stderr, "postfix-servers: %s\n", tp_diag_format(&diag, msg, sizeof(msg)));
	goto out;
usage:
	fprintf(stderr, "usage: postfix-servers [-c DIR] [-t SECONDS] KEY [VALUE]\n");
	status = 64;
out:
	tp_verdict_free(v);
	tp_delivery_free(d);
	tp_config_free(config);
	free(value);
	return status;
}
