# rotate against testsmtpd, with the servers Postfix would use (a loopback
# DNS server gives the MX hosts of domain:port keys; a .domain pattern uses
# the hosts recorded above it): a replaced certificate is re-pinned; without
# --yes and no terminal the plan is shown and nothing is written (exit 1);
# at a terminal a candidate without evidence is flagged and pinned only on
# "yes"; --dry-run shows the diff; an unreachable host leaves its entry
# alone while the others rotate (exit 1); --keep-old; --pin pkey survives a
# renewal with the same key; for cert pins the keys recorded above the entry
# (keys=) say whether the public key changed (no for a same-key renewal, yes
# for a new key, unknown without them) and are rewritten; --reload only when
# something changed, a failed reload is exit 1; an entry changed by a
# concurrent set while rotate probes is left alone. postmap -q is the oracle
# for what Postfix reads. The certificates are self-signed, so most cases
# say --trust tofu; what the trust policy decides is tests/cli/trust.sh,
# except a same-key renewal, which the default admits (r.test below).
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"

T=$TLSPOLICY
D=$TP_TMP/conf
tp_sandbox_config "$D" md5
pq() { postmap -c "$D" -q "$1" "hash:$D/tls_policy" 2>/dev/null || echo "<absent>"; }
snapshot() { cp "$D/tls_policy" "$TP_TMP/src.snap"; cp "$D/tls_policy.db" "$TP_TMP/db.snap"; }
unchanged() {
    cmp -s "$D/tls_policy" "$TP_TMP/src.snap" || fail "$1: source written: $(diff "$TP_TMP/src.snap" "$D/tls_policy")"
    cmp -s "$D/tls_policy.db" "$TP_TMP/db.snap" || fail "$1: db written"
}

tp_make_cert "$TP_TMP/a1" mx-a.partner.test
tp_make_cert "$TP_TMP/a2" mx-a.partner.test --days 90
tp_make_cert "$TP_TMP/b1" mx-b.partner.test --ec
cp "$TP_TMP/a1.pem" "$TP_TMP/a.live"
cp "$TP_TMP/b1.pem" "$TP_TMP/b.live"
tp_start_server a --cert "$TP_TMP/a.live"
PA=$TP_PORT
tp_start_server b --cert "$TP_TMP/b.live"
PB=$TP_PORT
A1=$(tp_cert_fingerprint "$TP_TMP/a1.crt" md5)
A2=$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5)
B1=$(tp_cert_fingerprint "$TP_TMP/b1.crt" md5)
dead=$(tp_dead_port)
printf '%s\n' 'mx.test A 127.0.0.1' 'b.test MX 10 mx.test' 'dead.test MX 10 mx.test' \
    'bkey.test MX 10 mx.test' 'r.test MX 10 mx.test' 'slow.test MX 10 mx.test' >"$TP_TMP/zone"
tp_start_dns dns "$TP_TMP/zone"
export TLSPOLICY_DNS_SERVERS
TLSPOLICY_DNS_SERVERS=$(tp_dns_servers dns)

printf '# partners\nother.test\tencrypt\n' >"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" set "[127.0.0.1]:$PA" --fingerprint-from "127.0.0.1:$PA"
tp_expect_status 0 "$T" -c "$D" set "b.test:$PB" --fingerprint-from "mx.test:$PB"
# No annotation: the key's own server; and a dead server.
printf '127.0.0.1:%s\tfingerprint match=%s\n' "$PA" "$A1" >>"$D/tls_policy"
printf 'dead.test:%s\tfingerprint match=%s\n' "$dead" "$A1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild

tp_note "nothing changed yet: all pins current for the reachable entries"
tp_expect_status 0 "$T" -c "$D" rotate "[127.0.0.1]:$PA" "b.test:$PB" "127.0.0.1:$PA"
grep -qx "all pins current" "$TP_TMP/out" || fail "want 'all pins current', got: $(cat "$TP_TMP/out")"

tp_note "server a switches to a new certificate"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
snapshot

tp_note "no --yes and no terminal: the plan, exit 1, nothing written"
tp_expect_status 1 "$T" -c "$D" rotate --trust tofu
for want in "[127.0.0.1]:$PA" "127.0.0.1:$PA" "$A1" "$A2" "subject: CN=mx-a.partner.test" \
        "issuer:  CN=mx-a.partner.test" "public key changed:"; do
    grep -qF -- "$want" "$TP_TMP/out" || fail "plan lacks '$want': $(cat "$TP_TMP/out")"
done
grep -q "nothing written" "$TP_TMP/err" || fail "no 'nothing written': $(cat "$TP_TMP/err")"
grep -q "dead.test:$dead: .*127.0.0.1.*:$dead: connect" "$TP_TMP/err" || fail "dead host not named: $(cat "$TP_TMP/err")"
grep -q "^b.test" "$TP_TMP/out" && fail "b.test is current, but in the plan: $(cat "$TP_TMP/out")"
grep -q "servers from MX" "$TP_TMP/out" && fail "the plan names MX for address keys: $(cat "$TP_TMP/out")"
unchanged "rotate without --yes"

tp_note "--dry-run: plan and unified diff, nothing written"
tp_expect_status 1 "$T" -c "$D" rotate --trust tofu --dry-run
grep -qxF -- "-[127.0.0.1]:$PA	fingerprint match=$A1" "$TP_TMP/out" || fail "dry-run diff lacks the old line: $(cat "$TP_TMP/out")"
grep -qxF -- "+[127.0.0.1]:$PA	fingerprint match=$A2" "$TP_TMP/out" || fail "dry-run diff lacks the new line: $(cat "$TP_TMP/out")"
grep -qxF -- "+127.0.0.1:$PA	fingerprint match=$A2" "$TP_TMP/out" || fail "dry-run diff lacks the key-host entry: $(cat "$TP_TMP/out")"
unchanged "rotate --dry-run"

tp_note "at a terminal: an answer other than 'yes' writes nothing; 'yes' writes"
command -v script >/dev/null || fail "script(1) not found (bsdutils): needed for a terminal"
cp "$D/tls_policy" "$TP_TMP/pre-tty"
cp "$D/tls_policy.db" "$TP_TMP/pre-tty.db"
rc=0
printf 'no\n' | script -qec "$T -c $D rotate" /dev/null >"$TP_TMP/tty.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "rotate answered 'no' at a terminal: exit $rc, want 1: $(cat "$TP_TMP/tty.out")"
grep -q "Type 'yes' to confirm" "$TP_TMP/tty.out" || fail "no question asked at a terminal: $(cat "$TP_TMP/tty.out")"
unchanged "rotate answered no"
rc=0
printf 'no\n' | script -qec "$T -c $D -q rotate" /dev/null >"$TP_TMP/tty.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "-q rotate answered 'no' at a terminal: exit $rc, want 1: $(cat "$TP_TMP/tty.out")"
grep -q "Type 'yes' to confirm" "$TP_TMP/tty.out" || fail "-q: no question asked at a terminal: $(cat "$TP_TMP/tty.out")"
# -q asks all the same, so it must show what the yes is for.
for want in "[127.0.0.1]:$PA" "$A2" "subject: CN=mx-a.partner.test" "NO EVIDENCE for some candidate"; do
    grep -qF -- "$want" "$TP_TMP/tty.out" || fail "-q at a terminal: the question without the plan ('$want'): $(cat "$TP_TMP/tty.out")"
done
unchanged "-q rotate answered no"
# --json never asks, even at a terminal and with changes it may write:
# stdout is the JSON alone, and a "yes" typed there writes nothing.
rc=0
printf 'yes\n' | script -qec "$T -c $D rotate --json --trust tofu 2>$TP_TMP/json.err" /dev/null >"$TP_TMP/tty.out" || rc=$?
[ "$rc" = 1 ] || fail "rotate --json at a terminal: exit $rc, want 1: $(cat "$TP_TMP/tty.out")"
grep -q "Type 'yes'" "$TP_TMP/tty.out" && fail "rotate --json asked at a terminal: $(cat "$TP_TMP/tty.out")"
# (the terminal echoes the typed line before the JSON)
tr -d '\r' <"$TP_TMP/tty.out" | sed -n '/^{/,$p' | jq -e '.written == false' >/dev/null ||
    fail "rotate --json at a terminal: not JSON saying nothing written: $(cat "$TP_TMP/tty.out" "$TP_TMP/json.err")"
unchanged "rotate --json at a terminal"
rc=0
printf 'yes\n' | script -qec "$T -c $D rotate" /dev/null >"$TP_TMP/tty.out" 2>&1 || rc=$?
# A new self-signed key has no evidence: pinned only on the answer, and said so.
grep -q "NO EVIDENCE for some candidate: pinned only if you confirm" "$TP_TMP/tty.out" ||
    fail "a candidate without evidence was not flagged at the terminal: $(cat "$TP_TMP/tty.out")"
# Exit 1 all the same: dead.test is unreachable; what matters is the write.
[ "$(postmap -c "$D" -q "[127.0.0.1]:$PA" "hash:$D/tls_policy")" = "fingerprint match=$A2" ] ||
    fail "rotate answered yes at a terminal did not write the new pin (exit $rc): $(cat "$TP_TMP/tty.out")"
cp "$TP_TMP/pre-tty" "$D/tls_policy"
cp "$TP_TMP/pre-tty.db" "$D/tls_policy.db"

tp_note "--yes with a failing reload: written, reload failure reported, exit 1"
tp_expect_status 1 "$T" -c "$D" rotate --trust tofu --yes --reload --postfix-command /bin/false
grep -q "reload failed" "$TP_TMP/err" || fail "reload failure not reported: $(cat "$TP_TMP/err")"
[ "$(pq "[127.0.0.1]:$PA")" = "fingerprint match=$A2" ] || fail "[127.0.0.1]:$PA: got '$(pq "[127.0.0.1]:$PA")', want the new pin"
[ "$(pq "127.0.0.1:$PA")" = "fingerprint match=$A2" ] || fail "127.0.0.1:$PA: got '$(pq "127.0.0.1:$PA")'"
[ "$(pq "b.test:$PB")" = "fingerprint match=$B1" ] || fail "b.test changed: '$(pq "b.test:$PB")'"
[ "$(pq "dead.test:$dead")" = "fingerprint match=$A1" ] || fail "unreachable entry touched: '$(pq "dead.test:$dead")'"
[ "$(pq other.test)" = encrypt ] || fail "other entry touched"
# keys= are sha256 key ids, whatever the pins' digest (md5 here).
grep -qxF "# tlspolicy: from=127.0.0.1:$PA pin=cert keys=$(tp_pkey_fingerprint "$TP_TMP/a2.crt" sha256)" "$D/tls_policy" \
    || fail "annotation lost, or keys= not the new key: $(cat "$D/tls_policy")"
grep -A1 -xF "# tlspolicy: keys=$(tp_pkey_fingerprint "$TP_TMP/a2.crt" sha256)" "$D/tls_policy" | grep -q "^127.0.0.1:$PA	" \
    || fail "entry pinned without annotation: keys= not recorded above it: $(cat "$D/tls_policy")"
head -1 "$D/tls_policy" | grep -qx "# partners" || fail "comment lost"

tp_note "unreachable host only: exit 1, the rest current"
tp_expect_status 1 "$T" -c "$D" rotate --trust tofu --yes
grep -q "dead.test:$dead: not rotated" "$TP_TMP/err" || fail "want 'dead.test:$dead: not rotated': $(cat "$TP_TMP/err")"
sed -i '/dead.test/d; /127.0.0.1:'"$dead"'/d' "$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild

tp_note "--reload runs postfix -c DIR reload, only when something changed"
cat >"$TP_TMP/fakepostfix" <<EOF
#!/bin/sh
echo "\$*" >>"$TP_TMP/reloads"
EOF
chmod +x "$TP_TMP/fakepostfix"
tp_expect_status 0 "$T" -c "$D" rotate --trust tofu --yes --reload --postfix-command "$TP_TMP/fakepostfix"
[ ! -e "$TP_TMP/reloads" ] || fail "reload run with nothing changed: $(cat "$TP_TMP/reloads")"
tp_install_cert "$TP_TMP/a1.pem" "$TP_TMP/a.live"
tp_expect_status 0 "$T" -c "$D" rotate --trust tofu --yes --reload --postfix-command "$TP_TMP/fakepostfix"
[ "$(cat "$TP_TMP/reloads")" = "-c $D reload" ] || fail "reload args: got '$(cat "$TP_TMP/reloads" 2>/dev/null)', want '-c $D reload'"

tp_note "--keep-old: old pins stay beside the new"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
tp_expect_status 0 "$T" -c "$D" rotate --trust tofu --yes --keep-old "[127.0.0.1]:$PA"
[ "$(pq "[127.0.0.1]:$PA")" = "fingerprint match=$A1|$A2" ] || fail "--keep-old: got '$(pq "[127.0.0.1]:$PA")'"
[ "$(pq "127.0.0.1:$PA")" = "fingerprint match=$A1" ] || fail "unnamed entry rotated: '$(pq "127.0.0.1:$PA")'"
tp_expect_status 0 "$T" -c "$D" rotate --trust tofu --yes "[127.0.0.1]:$PA"
grep -qx "all pins current" "$TP_TMP/out" || fail "old+new pins: a current entry rotated: $(cat "$TP_TMP/out")"

tp_note "--pin pkey: a renewal with the same key is not stale; cert pins are"
openssl req -new -x509 -key "$TP_TMP/b1.key" -subj /CN=mx-b.renewed -days 30 -out "$TP_TMP/b2.crt" 2>/dev/null
cat "$TP_TMP/b2.crt" "$TP_TMP/b1.key" >"$TP_TMP/b2.pem"
tp_expect_status 0 "$T" -c "$D" set "bkey.test:$PB" --fingerprint-from "127.0.0.1:$PB" --pin pkey
# A .domain pattern names no server: rotate probes the hosts recorded with it.
tp_expect_status 0 "$T" -c "$D" set .bcert.test --fingerprint-from "127.0.0.1:$PB" --fingerprint-from "127.0.0.1:$PA"
tp_install_cert "$TP_TMP/b2.pem" "$TP_TMP/b.live"
tp_expect_status 1 "$T" -c "$D" rotate --trust tofu "bkey.test:$PB" .bcert.test
grep -q "^bkey.test" "$TP_TMP/out" && fail "pkey pin stale after a same-key renewal: $(cat "$TP_TMP/out")"
grep -q "^.bcert.test (.*servers from recorded hosts" "$TP_TMP/out" || fail "cert pin not stale after renewal: $(cat "$TP_TMP/out")"
grep -q "CN=mx-b.renewed" "$TP_TMP/out" || fail "new subject not shown: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rotate --trust tofu --yes
[ "$(pq .bcert.test)" = "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/b2.crt" md5)|$A2" ] \
    || fail ".bcert.test: got '$(pq .bcert.test)'"

tp_note "cert pins, one host: a renewal with the same key says so, a new key too"
tp_make_cert "$TP_TMP/r1" mx-r.partner.test
tp_make_cert "$TP_TMP/r2" mx-r.partner.test --days 400 --key "$TP_TMP/r1.key"
tp_make_cert "$TP_TMP/r3" mx-r.partner.test
R1K=$(tp_pkey_fingerprint "$TP_TMP/r1.crt" sha256)
R2=$(tp_cert_fingerprint "$TP_TMP/r2.crt" md5)
R3=$(tp_cert_fingerprint "$TP_TMP/r3.crt" md5)
R3K=$(tp_pkey_fingerprint "$TP_TMP/r3.crt" sha256)
[ "$(tp_pkey_fingerprint "$TP_TMP/r2.crt" sha256)" = "$R1K" ] && [ "$R3K" != "$R1K" ] \
    && [ "$R2" != "$(tp_cert_fingerprint "$TP_TMP/r1.crt" md5)" ] || fail "test broken: r1/r2/r3 keys"
cp "$TP_TMP/r1.pem" "$TP_TMP/r.live"
tp_start_server r --cert "$TP_TMP/r.live"
PR=$TP_PORT
tp_expect_status 0 "$T" -c "$D" set "r.test:$PR" --fingerprint-from "127.0.0.1:$PR"
grep -qxF "# tlspolicy: from=127.0.0.1:$PR pin=cert keys=$R1K" "$D/tls_policy" || fail "set: keys= not recorded: $(cat "$D/tls_policy")"
tp_install_cert "$TP_TMP/r2.pem" "$TP_TMP/r.live"
tp_expect_status 1 "$T" -c "$D" rotate "r.test:$PR"
grep -qx "      public key changed: no" "$TP_TMP/out" || fail "same-key renewal: want 'public key changed: no': $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rotate --yes "r.test:$PR"
[ "$(pq "r.test:$PR")" = "fingerprint match=$R2" ] || fail "r.test: got '$(pq r.test)'"
grep -qxF "# tlspolicy: from=127.0.0.1:$PR pin=cert keys=$R1K" "$D/tls_policy" || fail "same key: keys= changed: $(cat "$D/tls_policy")"
tp_install_cert "$TP_TMP/r3.pem" "$TP_TMP/r.live"
tp_expect_status 1 "$T" -c "$D" rotate --trust tofu "r.test:$PR"
grep -qx "      public key changed: yes" "$TP_TMP/out" || fail "new key: want 'public key changed: yes': $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rotate --trust tofu --yes "r.test:$PR"
grep -qxF "# tlspolicy: from=127.0.0.1:$PR pin=cert keys=$R3K" "$D/tls_policy" || fail "new key: keys= not the new key: $(cat "$D/tls_policy")"
tp_note "... --keep-old keeps the recorded keys of the kept pins"
tp_install_cert "$TP_TMP/r2.pem" "$TP_TMP/r.live"
tp_expect_status 0 "$T" -c "$D" rotate --trust tofu --yes --keep-old "r.test:$PR"
[ "$(pq "r.test:$PR")" = "fingerprint match=$R3|$R2" ] || fail "r.test --keep-old: got '$(pq r.test)'"
grep -qxF "# tlspolicy: from=127.0.0.1:$PR pin=cert keys=$R3K,$R1K" "$D/tls_policy" || fail "--keep-old keys: $(cat "$D/tls_policy")"
tp_note "... a pin set by hand drops keys=, and without them the answer is unknown"
tp_expect_status 0 "$T" -c "$D" set "r.test:$PR" --fingerprint "$R3"
grep -qxF "# tlspolicy: from=127.0.0.1:$PR pin=cert" "$D/tls_policy" || fail "hand-set pin kept keys=: $(cat "$D/tls_policy")"
tp_install_cert "$TP_TMP/r1.pem" "$TP_TMP/r.live"
tp_expect_status 1 "$T" -c "$D" rotate --trust tofu "r.test:$PR"
grep -qx "      public key changed: unknown (cert pins do not record the key)" "$TP_TMP/out" \
    || fail "no keys=: want 'unknown': $(cat "$TP_TMP/out")"
tp_stop_server r

tp_note "an entry changed by a concurrent set while rotate probes is left alone"
tp_make_cert "$TP_TMP/s1" slow.partner.test
tp_make_cert "$TP_TMP/s2" slow.partner.test
cp "$TP_TMP/s1.pem" "$TP_TMP/s.live"
tp_start_server slow --cert "$TP_TMP/s.live" --mode slow --delay 0.5
PS=$TP_PORT
tp_expect_status 0 "$T" -c "$D" set "slow.test:$PS" --fingerprint-from "127.0.0.1:$PS"
tp_install_cert "$TP_TMP/s2.pem" "$TP_TMP/s.live"
set +e
"$T" -c "$D" rotate --trust tofu --yes "slow.test:$PS" >"$TP_TMP/rot.out" 2>"$TP_TMP/rot.err" </dev/null &
rpid=$!
set -e
sleep 0.7
tp_expect_status 0 "$T" -c "$D" set "slow.test:$PS" --fingerprint "$B1"
rc=0; wait "$rpid" || rc=$?
[ "$rc" = 1 ] || fail "rotate during a concurrent set: exit $rc, want 1: $(cat "$TP_TMP/rot.err")"
grep -q "slow.test:$PS: changed while probing" "$TP_TMP/rot.err" || fail "want 'changed while probing': $(cat "$TP_TMP/rot.out" "$TP_TMP/rot.err")"
[ "$(pq "slow.test:$PS")" = "fingerprint match=$B1" ] || fail "concurrent set lost: got '$(pq slow.test)'"

tp_note "usage errors"
tp_expect_status 64 "$T" -c "$D" rotate --jobs 0
tp_expect_status 64 "$T" -c "$D" rotate --bogus
tp_expect_status 1 "$T" -c "$D" rotate nosuch.test
grep -q "nosuch.test: no such entry" "$TP_TMP/err" || fail "missing key: $(cat "$TP_TMP/err")"
tp_expect_status 1 "$T" -c "$D" rotate other.test
echo ok
