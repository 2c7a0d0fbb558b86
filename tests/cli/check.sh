# check against testsmtpd: Nagios states and exit codes per entry and
# overall (CRITICAL > WARNING > UNKNOWN > OK), --json details, and 200
# entries with one silent host finishing in about --timeout, not the sum.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v jq >/dev/null || fail "jq not found: install jq"

T=$TLSPOLICY
D=$TP_TMP/conf
tp_sandbox_config "$D" md5
line_for() { grep -E "^[A-Z]+ $1:" "$TP_TMP/out" || echo "<no line for $1>"; }

tp_make_cert "$TP_TMP/a1" mx-a.partner.test
tp_make_cert "$TP_TMP/a2" mx-a.partner.test
tp_make_cert "$TP_TMP/soon" soon.partner.test --days 5
cp "$TP_TMP/a1.pem" "$TP_TMP/a.live"
tp_start_server a --cert "$TP_TMP/a.live"
PA=$TP_PORT
tp_start_server soon --cert "$TP_TMP/soon.pem"
PS=$TP_PORT
A1=$(tp_cert_fingerprint "$TP_TMP/a1.crt" md5)
dead=$(tp_dead_port)

: >"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" set a.test --fingerprint-from "127.0.0.1:$PA"
tp_expect_status 0 "$T" -c "$D" set "[127.0.0.1]:$PA" --fingerprint "$A1"

tp_note "all pinned and current: OK, exit 0"
tp_expect_status 0 "$T" -c "$D" check
head -1 "$TP_TMP/out" | grep -qx "TLSPOLICY OK - 0 critical, 0 warning, 0 unknown, 2 ok" \
    || fail "summary: $(head -1 "$TP_TMP/out")"
line_for a.test | grep -q "^OK a.test: 1 address presents a pinned certificate" || fail "a.test: $(line_for a.test)"
[ "$(wc -l <"$TP_TMP/out")" = 3 ] || fail "want a summary and one line per entry: $(cat "$TP_TMP/out")"

tp_note "expiring within --warn-days: WARNING, exit 1; not with --warn-days 3"
tp_expect_status 0 "$T" -c "$D" set soon.test --fingerprint-from "127.0.0.1:$PS"
tp_expect_status 1 "$T" -c "$D" check
line_for soon.test | grep -q "^WARNING soon.test: .*expires in [45] days" || fail "soon.test: $(line_for soon.test)"
tp_expect_status 0 "$T" -c "$D" check --warn-days 3 soon.test

tp_note "unreachable: UNKNOWN; with a WARNING the overall is WARNING (1)"
printf '# tlspolicy: from=127.0.0.1:%s pin=cert\ndead.test\tfingerprint match=%s\n' "$dead" "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 3 "$T" -c "$D" check dead.test a.test
line_for dead.test | grep -q "^UNKNOWN dead.test: .*:$dead: connect" || fail "dead.test: $(line_for dead.test)"
head -1 "$TP_TMP/out" | grep -qx "TLSPOLICY UNKNOWN - 0 critical, 0 warning, 1 unknown, 1 ok" || fail "summary: $(head -1 "$TP_TMP/out")"
tp_expect_status 1 "$T" -c "$D" check
head -1 "$TP_TMP/out" | grep -qx "TLSPOLICY WARNING - 0 critical, 1 warning, 1 unknown, 2 ok" || fail "summary: $(head -1 "$TP_TMP/out")"

tp_note "certificate replaced: CRITICAL, exit 2, over everything"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
tp_expect_status 2 "$T" -c "$D" check
head -1 "$TP_TMP/out" | grep -qx "TLSPOLICY CRITICAL - 2 critical, 1 warning, 1 unknown, 0 ok" || fail "summary: $(head -1 "$TP_TMP/out")"
line_for a.test | grep -q "^CRITICAL a.test: 127.0.0.1:$PA presents md5 cert $(tp_cert_fingerprint "$TP_TMP/a2.crt" md5) (CN=mx-a.partner.test.*not pinned" \
    || fail "a.test: $(line_for a.test)"
tp_expect_status 2 "$T" -c "$D" check --json
j=$TP_TMP/out
[ "$(jq -r .status "$j")" = CRITICAL ] || fail "json status: $(jq .status "$j")"
[ "$(jq -r .exit "$j")" = 2 ] || fail "json exit: $(jq .exit "$j")"
[ "$(jq -r '.entries|length' "$j")" = 4 ] || fail "json entries: $(jq '.entries|length' "$j")"
[ "$(jq -r '.entries[]|select(.key=="a.test")|.addresses[0].pinned' "$j")" = false ] || fail "json pinned: $(cat "$j")"
[ "$(jq -r '.entries[]|select(.key=="a.test")|.addresses[0].fingerprint' "$j")" = "$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)" ] \
    || fail "json fingerprint: $(jq '.entries[0]' "$j")"
[ "$(jq -r '.entries[]|select(.key=="a.test")|.hosts[0]' "$j")" = "127.0.0.1:$PA" ] || fail "json hosts"
[ "$(jq -r '.entries[]|select(.key=="soon.test")|.status' "$j")" = WARNING ] || fail "json soon.test"
[ "$(jq -r '.entries[]|select(.key=="dead.test")|.addresses[0].ok' "$j")" = false ] || fail "json dead.test"
tp_expect_status 0 "$T" -c "$D" rotate --yes a.test "[127.0.0.1]:$PA"
tp_expect_status 0 "$T" -c "$D" check a.test "[127.0.0.1]:$PA"

tp_note "pin made with another digest: WARNING (it never matches)"
SHA1=$(tp_cert_fingerprint "$TP_TMP/a2.crt" sha1)
tp_expect_status 0 "$T" -c "$D" set a.test --fingerprint "$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)"
printf 'sha1.test\tfingerprint match=%s|%s\n' "$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)" "$SHA1" >>"$D/tls_policy"
sed -i "s/^sha1.test/# tlspolicy: from=127.0.0.1:$PA\n&/" "$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 1 "$T" -c "$D" check sha1.test
line_for sha1.test | grep -q "pin $SHA1 is sha1, but Postfix compares md5" || fail "sha1.test: $(line_for sha1.test)"

tp_note "db out of step with the source: WARNING"
sed -i "s/^\(\[127.0.0.1\]:$PA.*\)$/\1 ciphers=high/" "$D/tls_policy"
tp_expect_status 1 "$T" -c "$D" check "[127.0.0.1]:$PA"
grep -q "holds another value than the source" "$TP_TMP/out" || fail "db out of step not seen: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 0 "$T" -c "$D" check "[127.0.0.1]:$PA"

tp_note "an entry Postfix would reject: CRITICAL"
printf 'typo.test\tfingerprnt match=%s\n' "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 2 "$T" -c "$D" check typo.test
line_for typo.test | grep -q "^CRITICAL typo.test: Postfix would reject this entry" || fail "typo.test: $(line_for typo.test)"

tp_note "a key whose port is not plain digits names no host: UNKNOWN, nothing probed"
printf 'plus.invalid:+25\tfingerprint match=%s\n' "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
# Should anything be looked up after all, it goes to a dead local port.
TLSPOLICY_DNS_SERVERS=127.0.0.1:$(tp_dead_port) tp_expect_status 3 "$T" -c "$D" check 'plus.invalid:+25'
grep -F "UNKNOWN plus.invalid:+25: " "$TP_TMP/out" | grep -q "not a next-hop form" ||
    fail "plus.invalid:+25: $(cat "$TP_TMP/out")"

tp_note "usage and missing entries"
tp_expect_status 64 "$T" -c "$D" check --warn-days x
tp_expect_status 3 "$T" -c "$D" check nosuch.test
head -1 "$TP_TMP/out" | grep -q "^TLSPOLICY UNKNOWN - " || fail "missing key: $(cat "$TP_TMP/out")"

tp_note "200 entries, one silent host, --jobs 32 --timeout 3: about the timeout, not the sum"
for i in 1 2 3 4; do
    tp_start_server "s$i" --cert "$TP_TMP/a2.pem" --mode slow --delay 0.1
done
tp_start_server silent --cert "$TP_TMP/a2.pem" --mode silent
PSIL=$TP_PORT
A2=$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)
{
    for i in $(seq 1 199); do
        printf '# tlspolicy: from=127.0.0.1:%s pin=cert\nd%s.test\tfingerprint match=%s\n' \
            "$(tp_server_port "s$(( i % 4 + 1 ))")" "$i" "$A2"
    done
    printf '# tlspolicy: from=127.0.0.1:%s pin=cert\nsilent.test\tfingerprint match=%s\n' "$PSIL" "$A2"
} >"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
start=$(date +%s%3N)
tp_expect_status 3 "$T" -c "$D" check --jobs 32 --timeout 3 --json
ms=$(( $(date +%s%3N) - start ))
[ "$(jq -r '.entries|length' "$j")" = 200 ] || fail "want 200 entries, got $(jq '.entries|length' "$j")"
[ "$(jq -r '[.entries[]|select(.status=="OK")]|length' "$j")" = 199 ] || fail "want 199 OK: $(jq -c '[.entries[]|select(.status!="OK")|.reasons]' "$j")"
[ "$(jq -r '.entries[]|select(.key=="silent.test")|.status' "$j")" = UNKNOWN ] || fail "silent host not UNKNOWN"
sum_ms=$(jq '[.entries[].addresses[].elapsed]|add*1000|floor' "$j")
tp_note "wall ${ms} ms, sum of probe times ${sum_ms} ms"
[ "$ms" -lt 12000 ] || fail "200 entries took $ms ms, want < 4 x --timeout (12000 ms)"
[ "$sum_ms" -gt $(( 4 * ms )) ] || fail "wall $ms ms is not far below the sum of the probes ($sum_ms ms): not concurrent?"
echo ok
