# check against testsmtpd and a loopback DNS server: Nagios states and exit
# codes per entry and overall (CRITICAL > WARNING > UNKNOWN > OK), judged as
# Postfix's SMTP client would deliver: the MX hosts of domain:port keys,
# failover to the next server, TLS failures, the pins the .db holds;
# performance data, --json details, and 200 entries with one silent host
# probed at once, not one after another.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v jq >/dev/null || fail "jq not found: install jq"

T=$TLSPOLICY
D=$TP_TMP/conf
tp_sandbox_config "$D" md5
line_for() { grep -F "$1:" "$TP_TMP/out" | grep -E "^[A-Z]+ " | grep -F " $1: " || echo "<no line for $1>"; }

tp_make_cert "$TP_TMP/a1" mx-a.partner.test
tp_make_cert "$TP_TMP/a2" mx-a.partner.test
tp_make_cert "$TP_TMP/soon" soon.partner.test --days 5
cp "$TP_TMP/a1.pem" "$TP_TMP/a.live"
tp_start_server a --cert "$TP_TMP/a.live"
PA=$TP_PORT
tp_start_server soon --cert "$TP_TMP/soon.pem"
PS=$TP_PORT
tp_start_server plain --cert "$TP_TMP/a1.pem" --mode no-starttls
PN=$TP_PORT
A1=$(tp_cert_fingerprint "$TP_TMP/a1.crt" md5)
dead=$(tp_dead_port)

# Domain keys reach their servers as Postfix does: through MX records.
cat >"$TP_TMP/zone" <<EOF
a.test MX 10 mx.a.test
mx.a.test A 127.0.0.1
soon.test MX 10 mx.soon.test
mx.soon.test A 127.0.0.1
dead.test MX 10 mx.dead.test
mx.dead.test A 127.0.0.1
sha1.test MX 10 mx.a.test
typo.test MX 10 mx.a.test
two.test MX 10 mx1.two.test
two.test MX 20 mx2.two.test
mx1.two.test A 127.0.0.2
mx2.two.test A 127.0.0.3
EOF
tp_start_dns dns "$TP_TMP/zone"
export TLSPOLICY_DNS_SERVERS
TLSPOLICY_DNS_SERVERS=$(tp_dns_servers dns)

: >"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" set "a.test:$PA" --fingerprint-from "127.0.0.1:$PA"
tp_expect_status 0 "$T" -c "$D" set "[127.0.0.1]:$PA" --fingerprint "$A1"

tp_note "all pinned and current: OK, exit 0, performance data"
tp_expect_status 0 "$T" -c "$D" check
head -1 "$TP_TMP/out" | grep -q "^TLSPOLICY OK - 0 critical, 0 warning, 0 unknown, 2 ok | critical=0 warning=0 unknown=0 ok=2 first_expiry_days=36[45]\.[0-9];30;$" \
    || fail "summary: $(head -1 "$TP_TMP/out")"
line_for "a.test:$PA" | grep -q "^OK a.test:$PA: 1 server presents a pinned certificate or key" || fail "a.test: $(line_for "a.test:$PA")"
[ "$(wc -l <"$TP_TMP/out")" = 3 ] || fail "want a summary and one line per entry: $(cat "$TP_TMP/out")"

tp_note "expiring within --warn-days: WARNING, exit 1; not with --warn-days 3; --critical-days"
tp_expect_status 0 "$T" -c "$D" set "soon.test:$PS" --fingerprint-from "127.0.0.1:$PS"
tp_expect_status 1 "$T" -c "$D" check
line_for "soon.test:$PS" | grep -q "^WARNING soon.test:$PS: .*expires in [45] days" || fail "soon.test: $(line_for "soon.test:$PS")"
head -1 "$TP_TMP/out" | grep -q "first_expiry_days=[45]\.[0-9];30;$" || fail "perf data: $(head -1 "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" check --warn-days 3 "soon.test:$PS"
tp_expect_status 2 "$T" -c "$D" check --critical-days 7 "soon.test:$PS"
line_for "soon.test:$PS" | grep -q "^CRITICAL soon.test:$PS: .*expires in [45] days" || fail "--critical-days: $(cat "$TP_TMP/out")"
head -1 "$TP_TMP/out" | grep -q "first_expiry_days=[45]\.[0-9];30;7$" || fail "perf data with --critical-days: $(head -1 "$TP_TMP/out")"

tp_note "unreachable: UNKNOWN; with a WARNING the overall is WARNING (1)"
printf 'dead.test:%s\tfingerprint match=%s\n' "$dead" "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 3 "$T" -c "$D" check "dead.test:$dead" "a.test:$PA"
line_for "dead.test:$dead" | grep -q "^UNKNOWN dead.test:$dead: .*:$dead: connect" || fail "dead.test: $(cat "$TP_TMP/out")"
head -1 "$TP_TMP/out" | grep -q "^TLSPOLICY UNKNOWN - 0 critical, 0 warning, 1 unknown, 1 ok | " || fail "summary: $(head -1 "$TP_TMP/out")"
tp_expect_status 1 "$T" -c "$D" check
head -1 "$TP_TMP/out" | grep -q "^TLSPOLICY WARNING - 0 critical, 1 warning, 1 unknown, 2 ok | " || fail "summary: $(head -1 "$TP_TMP/out")"

tp_note "the first MX fails, the second matches: Postfix delivers after a detour: WARNING"
# mx1 (127.0.0.2) presents a2, mx2 (127.0.0.3) a1, both on port P2.
tp_start_server x2 --cert "$TP_TMP/a2.pem" --listen "127.0.0.2:0"
P2=$TP_PORT
tp_start_server x3 --cert "$TP_TMP/a1.pem" --listen "127.0.0.3:$P2"
printf 'two.test:%s\tfingerprint match=%s\n' "$P2" "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 1 "$T" -c "$D" check "two.test:$P2"
line_for "two.test:$P2" | grep -q "^WARNING two.test:$P2: .*mx1.two.test\[127.0.0.2\]:$P2 presents md5 cert $(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)" ||
    fail "two.test: $(cat "$TP_TMP/out")"
grep -q "Server certificate not verified" "$TP_TMP/out" || fail "two.test: the mismatch is not named: $(cat "$TP_TMP/out")"
grep -q "1 of 2 servers Postfix tries present a pinned certificate" "$TP_TMP/out" || fail "two.test: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" set "two.test:$P2" --fingerprint "$A1" --fingerprint "$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)"
tp_expect_status 0 "$T" -c "$D" check --json "two.test:$P2"
[ "$(jq -r '.entries[0].servers|map(.host)|join(",")' "$TP_TMP/out")" = "mx1.two.test,mx2.two.test" ] ||
    fail "servers not in MX order: $(jq -c '.entries[0].servers' "$TP_TMP/out")"

tp_note "a server without STARTTLS: Postfix defers at this level: CRITICAL, not UNKNOWN"
printf '[127.0.0.1]:%s\tfingerprint match=%s\n' "$PN" "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 2 "$T" -c "$D" check "[127.0.0.1]:$PN"
line_for "[127.0.0.1]:$PN" | grep -q "^CRITICAL \[127.0.0.1\]:$PN: 127.0.0.1:$PN: no TLS with Postfix's settings (.*no STARTTLS in EHLO reply)" ||
    fail "no STARTTLS: $(cat "$TP_TMP/out")"

tp_note "certificate replaced: CRITICAL, exit 2, over everything"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
tp_expect_status 2 "$T" -c "$D" check "a.test:$PA" "[127.0.0.1]:$PA" "soon.test:$PS" "dead.test:$dead"
head -1 "$TP_TMP/out" | grep -q "^TLSPOLICY CRITICAL - 2 critical, 1 warning, 1 unknown, 0 ok | " || fail "summary: $(head -1 "$TP_TMP/out")"
line_for "a.test:$PA" | grep -q "^CRITICAL a.test:$PA: mx.a.test\[127.0.0.1\]:$PA presents md5 cert $(tp_cert_fingerprint "$TP_TMP/a2.crt" md5) (CN=mx-a.partner.test.*not pinned" \
    || fail "a.test: $(line_for "a.test:$PA")"
# In rotate's words: a new self-signed key is refused, and what to do is said.
line_for "a.test:$PA" | grep -qF "; rotate refuses $(tp_cert_fingerprint "$TP_TMP/a2.crt" md5): no evidence to trust it unattended (a new public key; not CA-valid (self-signed certificate); the MX answer is not DNSSEC-validated: no TLSA lookup; seen at 1 of 1 server): confirm the fingerprint with the partner, then tlspolicy rotate a.test:$PA --accept $(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)" \
    || fail "a.test: rotate's refusal not said: $(line_for "a.test:$PA")"
tp_expect_status 2 "$T" -c "$D" check --trust tofu "a.test:$PA"
line_for "a.test:$PA" | grep -qF "OK: rotate would pin $(tp_cert_fingerprint "$TP_TMP/a2.crt" md5): trusted on first use" \
    || fail "a.test with --trust tofu: $(line_for "a.test:$PA")"
tp_expect_status 2 "$T" -c "$D" check --json "a.test:$PA" "[127.0.0.1]:$PA" "soon.test:$PS" "dead.test:$dead"
j=$TP_TMP/out
[ "$(jq -r .status "$j")" = CRITICAL ] || fail "json status: $(jq .status "$j")"
[ "$(jq -r .exit "$j")" = 2 ] || fail "json exit: $(jq .exit "$j")"
[ "$(jq -r '.entries|length' "$j")" = 4 ] || fail "json entries: $(jq '.entries|length' "$j")"
a="select(.key==\"a.test:$PA\")"
[ "$(jq -r ".entries[]|$a|.servers[0].pinned" "$j")" = false ] || fail "json pinned: $(cat "$j")"
[ "$(jq -r ".entries[]|$a|.servers[0].outcome" "$j")" = mismatch ] || fail "json outcome: $(cat "$j")"
[ "$(jq -r ".entries[]|$a|.servers[0].fingerprint" "$j")" = "$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)" ] \
    || fail "json fingerprint: $(jq '.entries[0]' "$j")"
[ "$(jq -r ".entries[]|$a|.servers_from" "$j")" = MX ] || fail "json servers_from: $(jq ".entries[]|$a" "$j")"
[ "$(jq -r ".entries[]|$a|.hosts[0]" "$j")" = "127.0.0.1:$PA" ] || fail "json hosts"
[ "$(jq -r ".entries[]|$a|.servername" "$j")" = "" ] || fail "json: Postfix sends no SNI by default: $(jq ".entries[]|$a|.servername" "$j")"
[ "$(jq -r ".entries[]|$a|.servers[0].servername" "$j")" = null ] || fail "json: SNI sent"
[ "$(jq -r ".entries[]|select(.key==\"soon.test:$PS\")|.status" "$j")" = WARNING ] || fail "json soon.test"
[ "$(jq -r ".entries[]|select(.key==\"dead.test:$dead\")|.servers[0].outcome" "$j")" = unreachable ] || fail "json dead.test"
# No Postfix runs in the sandbox: the queue is not read, and JSON says why.
[ "$(jq -r .queue_read "$j")" = false ] || fail "json queue_read: $(jq .queue_read "$j")"
jq -r .queue_error "$j" | grep -q "Postfix is not running" || fail "json queue_error: $(jq .queue_error "$j")"
[ "$(jq -r ".entries[]|$a|.deferred" "$j")" = null ] || fail "json deferred without a queue: $(jq ".entries[]|$a|.deferred" "$j")"
tp_expect_status 0 "$T" -c "$D" rotate --yes --trust tofu "a.test:$PA" "[127.0.0.1]:$PA"
tp_expect_status 0 "$T" -c "$D" check "a.test:$PA" "[127.0.0.1]:$PA"

tp_note "pin made with another digest: WARNING beside a good pin, CRITICAL alone"
SHA1=$(tp_cert_fingerprint "$TP_TMP/a2.crt" sha1)
printf 'sha1.test:%s\tfingerprint match=%s|%s\n' "$PA" "$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)" "$SHA1" >>"$D/tls_policy"
printf 'sha1only.test\tfingerprint match=%s\n' "$SHA1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 1 "$T" -c "$D" check "sha1.test:$PA"
line_for "sha1.test:$PA" | grep -q "pin $SHA1 is sha1, but Postfix compares md5" || fail "sha1.test: $(cat "$TP_TMP/out")"
tp_expect_status 2 "$T" -c "$D" check sha1only.test
line_for sha1only.test | grep -q "^CRITICAL sha1only.test: pin $SHA1 is sha1, but Postfix compares md5 fingerprints: it never matches; no pin can match" ||
    fail "sha1only.test: $(cat "$TP_TMP/out")"

tp_note "db out of step with the source: WARNING; the .db's pins are judged, as Postfix reads them"
sed -i "s/^\(\[127.0.0.1\]:$PA.*\)$/\1 ciphers=high/" "$D/tls_policy"
tp_expect_status 1 "$T" -c "$D" check "[127.0.0.1]:$PA"
grep -q "holds another value than the source" "$TP_TMP/out" || fail "db out of step not seen: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 0 "$T" -c "$D" check "[127.0.0.1]:$PA"
# The source pins the new certificate, the stale .db the old one: Postfix defers.
cp "$D/tls_policy" "$TP_TMP/policy.bak"
sed -i "s/^\(\[127.0.0.1\]:$PA\).*$/\1 fingerprint match=$A1/" "$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
cp "$TP_TMP/policy.bak" "$D/tls_policy"
tp_expect_status 2 "$T" -c "$D" check "[127.0.0.1]:$PA"
line_for "[127.0.0.1]:$PA" | grep -q "not pinned" || fail "stale .db's pin not judged: $(cat "$TP_TMP/out")"
grep -q "holds another value than the source" "$TP_TMP/out" || fail "stale .db not named: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rebuild

tp_note "an entry Postfix would reject: CRITICAL"
printf 'typo.test:%s\tfingerprnt match=%s\n' "$PA" "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 2 "$T" -c "$D" check "typo.test:$PA"
line_for "typo.test:$PA" | grep -q "^CRITICAL typo.test:$PA: Postfix would reject this entry" || fail "typo.test: $(cat "$TP_TMP/out")"

tp_note "a key whose port is not plain digits is no next hop: UNKNOWN, nothing probed"
printf 'plus.invalid:+25\tfingerprint match=%s\n' "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
# Should anything be looked up after all, it goes to a dead local port.
TLSPOLICY_DNS_SERVERS=127.0.0.1:$(tp_dead_port) tp_expect_status 3 "$T" -c "$D" check 'plus.invalid:+25'
grep -F "UNKNOWN plus.invalid:+25: " "$TP_TMP/out" | grep -q "not a next-hop form" ||
    fail "plus.invalid:+25: $(cat "$TP_TMP/out")"

tp_note "a Latin-1 banner: valid JSON, that entry UNKNOWN, the others judged"
tp_start_server latin1 --cert "$TP_TMP/a1.pem" --mode banner421 --hostname "$(printf 'caf\351.example')"
printf '[127.0.0.1]:%s\tfingerprint match=%s\n' "$TP_PORT" "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 3 "$T" -c "$D" check --json "[127.0.0.1]:$TP_PORT" "[127.0.0.1]:$PA"
jq -e . "$TP_TMP/out" >/dev/null || fail "check --json with a Latin-1 banner: not JSON: $(cat "$TP_TMP/out")"
[ "$(jq -r ".entries[]|select(.key==\"[127.0.0.1]:$TP_PORT\")|.reasons[0].text" "$TP_TMP/out")" = \
  "127.0.0.1[127.0.0.1]:$TP_PORT: banner: 421 4.3.2 caf?.example Service not available, closing channel" ] ||
    fail "Latin-1 reason: $(jq -c '.entries[].reasons' "$TP_TMP/out")"
[ "$(jq -r ".entries[]|select(.key==\"[127.0.0.1]:$PA\")|.status" "$TP_TMP/out")" = OK ] ||
    fail "the other entry was not judged: $(cat "$TP_TMP/out")"

tp_note "an earlier map of smtp_tls_policy_maps answers first: its answer is judged, the pins are unused"
# [127.0.0.1]:PA presents a2 and the hash table pins it (rotated above).
A2MD5=$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)
cp "$D/main.cf" "$TP_TMP/main.cf.bak"
sed -i 's|^smtp_tls_policy_maps = .*|smtp_tls_policy_maps = regexp:${config_directory}/pre, hash:${config_directory}/tls_policy|' "$D/main.cf"
printf '# answers first\n/^\\[127\\.0\\.0\\.1\\]:%s$/\tfingerprint match=%s\n' "$PA" "$A1" >"$D/pre"
tp_expect_status 2 "$T" -c "$D" check "[127.0.0.1]:$PA"
line_for "[127.0.0.1]:$PA" | grep -q "^CRITICAL \[127.0.0.1\]:$PA: .*not pinned" || fail "the regexp's pin is not judged: $(cat "$TP_TMP/out")"
line_for "[127.0.0.1]:$PA" | grep -qF "shadowed by regexp:$D/pre line 2 (\"fingerprint match=$A1\"), which Postfix asks first: pins of hash:$D/tls_policy unused" ||
    fail "shadowing not said: $(cat "$TP_TMP/out")"
tp_expect_status 2 "$T" -c "$D" check --json "[127.0.0.1]:$PA"
[ "$(jq -r '.entries[0] | [.judged_from, .judged_where, .judged_value] | join("|")' "$TP_TMP/out")" = "map|regexp:$D/pre line 2|fingerprint match=$A1" ] ||
    fail "check --json judged: $(jq -c '.entries[0] | [.judged_from, .judged_where, .judged_value]' "$TP_TMP/out")"
# Answering with a level that needs no pins: mail flows, the pins are dead.
printf '/^\\[127\\.0\\.0\\.1\\]:%s$/\tencrypt\n' "$PA" >"$D/pre"
tp_expect_status 1 "$T" -c "$D" check "[127.0.0.1]:$PA"
line_for "[127.0.0.1]:$PA" | grep -q "^WARNING .*shadowed by regexp:$D/pre line 1 (\"encrypt\")" || fail "encrypt first: $(cat "$TP_TMP/out")"
# A map no one can evaluate here: the verdict is the table's, in doubt.
sed -i 's|^smtp_tls_policy_maps = .*|smtp_tls_policy_maps = socketmap:inet:127.0.0.1:9:policy, hash:${config_directory}/tls_policy|' "$D/main.cf"
tp_expect_status 1 "$T" -c "$D" check "[127.0.0.1]:$PA"
line_for "[127.0.0.1]:$PA" | grep -q "^WARNING .*socketmap:inet:127.0.0.1:9:policy cannot be evaluated here and may answer first" ||
    fail "socketmap first: $(cat "$TP_TMP/out")"
# A table after ours answers for nothing ours has.
sed -i 's|^smtp_tls_policy_maps = .*|smtp_tls_policy_maps = hash:${config_directory}/tls_policy, regexp:${config_directory}/pre|' "$D/main.cf"
tp_expect_status 0 "$T" -c "$D" check "[127.0.0.1]:$PA"
cp "$TP_TMP/main.cf.bak" "$D/main.cf"

tp_note "usage and missing entries"
tp_expect_status 64 "$T" -c "$D" check --warn-days x
tp_expect_status 64 "$T" -c "$D" check --critical-days -1
tp_expect_status 64 "$T" -c "$D" check --trust nonsense
tp_expect_status 3 "$T" -c "$D" check nosuch.test
head -1 "$TP_TMP/out" | grep -q "^TLSPOLICY UNKNOWN - " || fail "missing key: $(cat "$TP_TMP/out")"

tp_note "200 entries, one silent host, --jobs 32 --timeout 3: probed at once, not one after another"
for i in 1 2 3 4; do
    tp_start_server "s$i" --cert "$TP_TMP/a2.pem" --mode slow --delay 0.1
done
tp_start_server silent --cert "$TP_TMP/a2.pem" --mode silent
PSIL=$TP_PORT
A2=$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)
{
    for i in $(seq 1 199); do
        printf 'd%s.test:%s\tfingerprint match=%s\n' "$i" "$(tp_server_port "s$(( i % 4 + 1 ))")" "$A2"
    done
    printf 'silent.test:%s\tfingerprint match=%s\n' "$PSIL" "$A2"
} >"$D/tls_policy"
{
    echo 'mx.bulk.test A 127.0.0.1'
    for i in $(seq 1 199); do echo "d$i.test MX 10 mx.bulk.test"; done
    echo 'silent.test MX 10 mx.bulk.test'
} >"$TP_TMP/zone.new"
mv "$TP_TMP/zone.new" "$TP_TMP/zone"
tp_reload_dns dns
tp_expect_status 0 "$T" -c "$D" rebuild
start=$(date +%s%3N)
tp_expect_status 3 "$T" -c "$D" check --jobs 32 --timeout 3 --json
ms=$(( $(date +%s%3N) - start ))
[ "$(jq -r '.entries|length' "$j")" = 200 ] || fail "want 200 entries, got $(jq '.entries|length' "$j")"
[ "$(jq -r '[.entries[]|select(.status=="OK")]|length' "$j")" = 199 ] || fail "want 199 OK: $(jq -c '[.entries[]|select(.status!="OK")|.reasons]' "$j")"
[ "$(jq -r ".entries[]|select(.key==\"silent.test:$PSIL\")|.status" "$j")" = UNKNOWN ] || fail "silent host not UNKNOWN"
sum_ms=$(jq '[.entries[].servers[].elapsed]|add*1000|floor' "$j")
tp_note "wall ${ms} ms, sum of probe times ${sum_ms} ms"
# About 50 entries share each server, with the same settings: one probe
# (one session in the server's log) serves them all.
sessions() { grep -c 'peer=.* mode=' "$(tp_server_log "$1")" || true; }
for i in 1 2 3 4; do
    # A session is logged when it closes, just after check has its answer.
    tp_wait_until 10 eval '[ "$(sessions s'"$i"')" -ge 1 ]' || fail "server s$i logged no session"
done
sleep 0.3
for i in 1 2 3 4; do
    n=$(sessions "s$i")
    [ "$n" = 1 ] || fail "server s$i was probed $n times for its ~50 entries, want once: $(cat "$(tp_server_log "s$i")")"
done
# No bound on the wall time itself: the machine is shared. Probes run one
# after another would make the sum about the wall time, not many times it.
[ "$sum_ms" -gt $(( 4 * ms )) ] || fail "wall $ms ms is not far below the sum of the probes ($sum_ms ms): not concurrent?"

tp_note "2000 entries, each its own MX lookup: no lookup is lost to a burst of queries"
# Sent all at once, 2000 UDP queries overflow the DNS server's socket
# buffer: the kernel drops what does not fit, and each lost query costs
# a retry or, at a short --timeout, the lookup ("MX lookup timed out").
# The resolver keeps a bounded number in flight instead.
P1=$(tp_server_port s1)
{
    for i in $(seq 1 2000); do
        printf 'm%s.test:%s\tfingerprint match=%s\n' "$i" "$P1" "$A2"
    done
} >"$D/tls_policy"
{
    echo 'mx.bulk.test A 127.0.0.1'
    for i in $(seq 1 2000); do echo "m$i.test MX 10 mx.bulk.test"; done
} >"$TP_TMP/zone.new"
mv "$TP_TMP/zone.new" "$TP_TMP/zone"
tp_reload_dns dns
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 0 "$T" -c "$D" check --timeout 3 --json
[ "$(jq -r '[.entries[]|select(.status=="OK")]|length' "$j")" = 2000 ] ||
    fail "want 2000 OK: $(jq -c '[.entries[]|select(.status!="OK")|.reasons]|.[0:3]' "$j")"
echo ok
