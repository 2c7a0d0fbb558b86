# A main.cf whose macros nest past Postfix's limit (a loop: a = $b,
# b = $a) stops Postfix: postconf says "unreasonable macro call nesting"
# and "fatal: macro processing error". tlspolicy must not read such a
# parameter as empty and go on (a check saying OK while Postfix is down).
# postconf is the oracle for which main.cf files stop Postfix: each case
# below is run through both, and tlspolicy refuses exactly those postconf
# refuses (Postfix also leaves a loop among parameters nothing uses).
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postconf >/dev/null || fail "postconf not found: install postfix (the oracle)"

T=$TLSPOLICY
D=$TP_TMP/conf
mkdir -p "$D"
printf 'x.example encrypt\n' >"$D/tls_policy"

# main_cf LINE...: main.cf with these lines and the policy table.
main_cf() {
	{
		printf 'compatibility_level = 3.6\n'
		printf '%s\n' "$@"
		grep -q '^smtp_tls_policy_maps' <(printf '%s\n' "$@") ||
			printf 'smtp_tls_policy_maps = hash:%s/tls_policy\n' "$D"
	} >"$D/main.cf"
	tp_cool_down "$D/main.cf"
}

stops_postfix() {
	postconf -c "$D" -n >/dev/null 2>"$TP_TMP/postconf.err" && return 1
	grep -q 'fatal: .*macro processing error' "$TP_TMP/postconf.err"
}

n=0 stopped=0
while IFS='|' read -r a b; do
	[ -n "$a" ] || continue
	main_cf "$a" "$b"
	n=$((n + 1))
	if stops_postfix; then
		stopped=$((stopped + 1))
		tp_expect_status 1 "$T" -c "$D" list
		grep -q 'unreasonable macro call nesting' "$TP_TMP/err" ||
			fail "[$a / $b] stops Postfix, but list says: $(cat "$TP_TMP/err")"
		[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "[$a / $b] not one line: $(cat "$TP_TMP/err")"
	else
		tp_expect_status 0 "$T" -c "$D" list
	fi
done <<'CASES'
foo_a = $foo_b|foo_b = $foo_a
foo_a = $foo_a|smtp_helo_name = mx.example
smtp_helo_name = x$foo_a|foo_a = $foo_a
smtp_helo_name = $myhostname|myhostname = $smtp_helo_name
smtp_tls_security_level = $foo_a|foo_a = $(foo_b)
smtp_tls_security_level = $foo_a|foo_b = $foo_a
smtp_tls_security_level = $foo_a|foo_a = ${foo_b?{$foo_a}}
smtp_tls_security_level = $foo_a|foo_a = ${foo_b:{$foo_a}}
relayhost = $foo_a|foo_a = $foo_a
relayhost = $$foo_a|foo_a = $foo_a
smtp_tls_policy_maps = hash:${config_directory}/tls_policy $smtp_tls_policy_maps|x = 1
smtp_helo_name = ${{$compatibility_level} <level {3.6} ? {$smtp_helo_name} : {x}}|x = 1
smtp_helo_name = ${{$compatibility_level} <level {3.6} ? {x} : {$smtp_helo_name}}|x = 1
foo_a = 1|foo_a = $foo_a
smtp_helo_name = $foo_a|foo_a = $foo_a
CASES
# The cases must exercise both answers.
[ "$stopped" -ge 4 ] && [ "$stopped" -le $((n - 4)) ] ||
	fail "postconf stopped on $stopped of $n cases: the oracle or the cases changed"
tp_note "$n main.cf files: tlspolicy refuses the $stopped postconf stops on, and only those"

tp_note "every command refuses; check is CRITICAL; --help still works"
main_cf 'smtp_tls_fingerprint_digest = $foo_a' 'foo_a = $foo_b' 'foo_b = $foo_a'
stops_postfix || fail "oracle: postconf accepts the loop"
tp_expect_status 2 "$T" -c "$D" check
grep -q '^TLSPOLICY CRITICAL - .*unreasonable macro call nesting.*smtp_tls_fingerprint_digest' "$TP_TMP/out" ||
	fail "check: $(cat "$TP_TMP/out")"
tp_expect_status 2 "$T" -c "$D" check --json
jq -e '.status == "CRITICAL" and .exit == 2' "$TP_TMP/out" >/dev/null || fail "check --json: $(cat "$TP_TMP/out")"
# -m names the table, but the digest is main.cf's: nothing may be written.
cp "$D/tls_policy" "$TP_TMP/before"
tp_expect_status 1 "$T" -c "$D" -m "hash:$D/tls_policy" set y.example --fingerprint AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99
cmp -s "$D/tls_policy" "$TP_TMP/before" || fail "set wrote the table"
[ ! -e "$D/tls_policy.db" ] || fail "set wrote a db"
tp_expect_status 1 "$T" -c "$D" -m "hash:$D/tls_policy" rebuild
[ ! -e "$D/tls_policy.db" ] || fail "rebuild wrote a db"
tp_expect_status 0 "$T" -c "$D" set --help
grep -q '^usage: tlspolicy' "$TP_TMP/out" || fail "set --help: $(cat "$TP_TMP/out")"
tp_note "ok"
