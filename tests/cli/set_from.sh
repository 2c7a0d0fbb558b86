# set --fingerprint-from against testsmtpd: the pins are what openssl says
# the served certificate (or its public key) hashes to in the configured
# digest, every address of every host is probed, the hosts are recorded in
# HOST:PORT form for rotate with the public keys of pinned certificates
# (keys=: kept with --keep-old, dropped for a pin set by hand or pkey pins),
# an existing entry changes in place, the probes connect as Postfix will for
# the entry (no SNI by default; the entry's servername= or main.cf's
# smtp_tls_servername; protocols=; smtp_helo_name; wrapper mode), and one
# unreachable host means nothing is written. postmap -q is the oracle for
# what Postfix reads.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
command -v openssl >/dev/null || fail "openssl not found"

T=$TLSPOLICY
D=$TP_TMP/conf
tp_sandbox_config "$D" md5

pq() { postmap -c "$D" -q "$1" "hash:$D/tls_policy" 2>/dev/null || echo "<absent>"; }

tp_make_cert "$TP_TMP/rsa" mx1.partner.test
tp_make_cert "$TP_TMP/ec" mx2.partner.test --ec
tp_start_server rsa --cert "$TP_TMP/rsa.pem"
P1=$TP_PORT
tp_start_server ec --cert "$TP_TMP/ec.pem"
P2=$TP_PORT
RSA_MD5=$(tp_cert_fingerprint "$TP_TMP/rsa.crt" md5)
EC_MD5=$(tp_cert_fingerprint "$TP_TMP/ec.crt" md5)
EC_KEY_ID=$(tp_pkey_fingerprint "$TP_TMP/ec.crt" sha256)
RSA_KEY_ID=$(tp_pkey_fingerprint "$TP_TMP/rsa.crt" sha256)

tp_note "a table with comments around the entry to update"
cat >"$D/tls_policy" <<EOF
# partners
example.org	encrypt

[127.0.0.1]:$P1	fingerprint match=11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00
# trailing comment
EOF
postmap "$D/tls_policy"
cp "$D/tls_policy" "$TP_TMP/before"

tp_note "RSA: an existing entry updated in place, host recorded as HOST:PORT"
tp_expect_status 0 "$T" -c "$D" set "[127.0.0.1]:$P1" --fingerprint-from "[127.0.0.1]:$P1"
cat >"$TP_TMP/want" <<EOF
# partners
example.org	encrypt

# tlspolicy: from=127.0.0.1:$P1 pin=cert keys=$RSA_KEY_ID
[127.0.0.1]:$P1	fingerprint match=$RSA_MD5
# trailing comment
EOF
diff -u "$TP_TMP/want" "$D/tls_policy" || fail "source after set --fingerprint-from differs (above)"
[ "$(pq "[127.0.0.1]:$P1")" = "fingerprint match=$RSA_MD5" ] \
    || fail "postmap -q: got '$(pq "[127.0.0.1]:$P1")', want the RSA md5 pin"
[ "$(pq example.org)" = encrypt ] || fail "other entry: got '$(pq example.org)'"

tp_note "EC with --pin pkey: the public-key fingerprint, pin=pkey recorded"
tp_expect_status 0 "$T" -c "$D" set ec.test --fingerprint-from "127.0.0.1:$P2" --pin pkey
[ "$(pq ec.test)" = "fingerprint match=$(tp_pkey_fingerprint "$TP_TMP/ec.crt" md5)" ] \
    || fail "pkey pin: got '$(pq ec.test)', want the md5 public-key fingerprint"
grep -qxF "# tlspolicy: from=127.0.0.1:$P2 pin=pkey" "$D/tls_policy" \
    || fail "no pkey annotation: $(cat "$D/tls_policy")"
[ "$(tp_pkey_fingerprint "$TP_TMP/ec.crt" md5)" != "$EC_MD5" ] || fail "test broken: cert and pkey fingerprints equal"

tp_note "EC certificate pin"
tp_expect_status 0 "$T" -c "$D" set ec2.test --fingerprint-from "127.0.0.1:$P2"
[ "$(pq ec2.test)" = "fingerprint match=$EC_MD5" ] || fail "EC cert pin: got '$(pq ec2.test)'"

tp_note "two hosts: both pins, both hosts, in order given"
tp_expect_status 0 "$T" -c "$D" set two.test --fingerprint-from "127.0.0.1:$P1" --fingerprint-from "127.0.0.1:$P2"
[ "$(pq two.test)" = "fingerprint match=$RSA_MD5|$EC_MD5" ] \
    || fail "two hosts: got '$(pq two.test)', want both pins"
grep -qxF "# tlspolicy: from=127.0.0.1:$P1,127.0.0.1:$P2 pin=cert keys=$RSA_KEY_ID,$EC_KEY_ID" \
    "$D/tls_policy" || fail "two hosts annotation: $(grep -B1 '^two.test' "$D/tls_policy")"

tp_note "--keep-old: the recorded keys of the kept pins stay, the new ones join"
tp_expect_status 0 "$T" -c "$D" set ec2.test --fingerprint-from "127.0.0.1:$P1" --keep-old
[ "$(pq ec2.test)" = "fingerprint match=$EC_MD5|$RSA_MD5" ] || fail "--keep-old: got '$(pq ec2.test)'"
grep -qxF "# tlspolicy: from=127.0.0.1:$P1 pin=cert keys=$EC_KEY_ID,$RSA_KEY_ID" "$D/tls_policy" \
    || fail "--keep-old keys: $(grep -B1 '^ec2.test' "$D/tls_policy")"

tp_note "a pin set by hand drops keys= (its key is unknown), hosts and kind stay"
tp_expect_status 0 "$T" -c "$D" set two.test --fingerprint "$RSA_MD5"
grep -qxF "# tlspolicy: from=127.0.0.1:$P1,127.0.0.1:$P2 pin=cert" "$D/tls_policy" \
    || fail "hand-set pin: $(grep -B1 '^two.test' "$D/tls_policy")"
tp_note "... and --keep-old of a pin whose key was never recorded records none"
tp_expect_status 0 "$T" -c "$D" set two.test --fingerprint-from "127.0.0.1:$P2" --keep-old
[ "$(pq two.test)" = "fingerprint match=$RSA_MD5|$EC_MD5" ] || fail "--keep-old: got '$(pq two.test)'"
grep -qxF "# tlspolicy: from=127.0.0.1:$P2 pin=cert" "$D/tls_policy" \
    || fail "keys= recorded for a pin of unknown key: $(grep -B1 '^two.test' "$D/tls_policy")"
tp_note "--pin pkey over cert pins: no keys= (the pins are the keys)"
tp_expect_status 0 "$T" -c "$D" set ec2.test --fingerprint-from "127.0.0.1:$P2" --pin pkey
grep -qxF "# tlspolicy: from=127.0.0.1:$P2 pin=pkey" "$D/tls_policy" \
    || fail "pkey annotation over cert keys: $(grep -B1 '^ec2.test' "$D/tls_policy")"

tp_note "the same certificate at two hosts is pinned once"
tp_expect_status 0 "$T" -c "$D" set same.test --fingerprint-from "127.0.0.1:$P1" --fingerprint-from "localhost:$P1"
[ "$(pq same.test)" = "fingerprint match=$RSA_MD5" ] || fail "dedup: got '$(pq same.test)'"

tp_note "an unreachable host: nothing written, exit 1, the error names the host"
dead=$(tp_dead_port)
cp "$D/tls_policy" "$TP_TMP/src.before"
cp "$D/tls_policy.db" "$TP_TMP/db.before"
tp_expect_status 1 "$T" -c "$D" set two.test --fingerprint-from "127.0.0.1:$P1" --fingerprint-from "127.0.0.1:$dead"
grep -q "127.0.0.1:$dead" "$TP_TMP/err" || fail "error does not name the dead host: $(cat "$TP_TMP/err")"
grep -q "nothing written" "$TP_TMP/err" || fail "error does not say nothing was written: $(cat "$TP_TMP/err")"
cmp -s "$D/tls_policy" "$TP_TMP/src.before" || fail "source changed after a failed probe"
cmp -s "$D/tls_policy.db" "$TP_TMP/db.before" || fail "db changed after a failed probe"

tp_note "a silent host: the deadline holds, nothing written"
tp_start_server silent --cert "$TP_TMP/rsa.pem" --mode silent
start=$(date +%s%3N)
tp_expect_status 1 "$T" -c "$D" set new.test --fingerprint-from "127.0.0.1:$TP_PORT" --timeout 1
ms=$(( $(date +%s%3N) - start ))
# Without the deadline it would hang: the bound is loose for a loaded machine.
[ "$ms" -lt 20000 ] || fail "silent host took $ms ms with --timeout 1: the deadline was not kept"
grep -q "127.0.0.1:$TP_PORT" "$TP_TMP/err" || fail "error does not name the silent host: $(cat "$TP_TMP/err")"
[ "$(pq new.test)" = "<absent>" ] || fail "new.test written after a failed probe"

tp_note "the entry's servername= is the SNI sent"
printf 'sni.test\tfingerprint match=%s servername=partner.example\n' "$EC_MD5" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
: >"$(tp_server_log rsa)"
tp_expect_status 0 "$T" -c "$D" set sni.test --fingerprint-from "127.0.0.1:$P1"
grep -q 'sni=partner.example ' "$(tp_server_log rsa)" \
    || fail "SNI from servername=: server log $(cat "$(tp_server_log rsa)")"
[ "$(pq sni.test)" = "fingerprint match=$RSA_MD5 servername=partner.example" ] \
    || fail "servername entry: got '$(pq sni.test)'"

tp_note "no servername: no SNI, as Postfix's SMTP client by default"
: >"$(tp_server_log rsa)"
tp_expect_status 0 "$T" -c "$D" set nosni.test --fingerprint-from "127.0.0.1:$P1"
grep -q 'sni=- ' "$(tp_server_log rsa)" || fail "SNI sent without servername: $(cat "$(tp_server_log rsa)")"

tp_note "main.cf's smtp_tls_servername is sent when the entry has no servername="
printf 'smtp_tls_servername = relay.partner.example\n' >>"$D/main.cf"
: >"$(tp_server_log rsa)"
tp_expect_status 0 "$T" -c "$D" set mainsni.test --fingerprint-from "127.0.0.1:$P1"
grep -q 'sni=relay.partner.example ' "$(tp_server_log rsa)" ||
    fail "SNI from smtp_tls_servername: $(cat "$(tp_server_log rsa)")"
: >"$(tp_server_log rsa)"
tp_expect_status 0 "$T" -c "$D" set mainsni.test --fingerprint-from "127.0.0.1:$P1" --attr servername=hostname
grep -q 'sni=127.0.0.1 ' "$(tp_server_log rsa)" ||
    fail "servername=hostname (the host probed, as Postfix sends it): $(cat "$(tp_server_log rsa)")"
sed -i '/^smtp_tls_servername/d' "$D/main.cf"

tp_note "the entry's protocols= bound the handshake: a TLS 1.3-only server and <=TLSv1.2 fail, nothing written"
tp_start_server tls13 --cert "$TP_TMP/rsa.pem" --tls-version 1.3
cp "$D/tls_policy" "$TP_TMP/src.before"
tp_expect_status 1 "$T" -c "$D" set proto.test --fingerprint-from "127.0.0.1:$TP_PORT" --attr 'protocols=<=TLSv1.2'
grep -q "127.0.0.1\[127.0.0.1\]:$TP_PORT: TLS handshake: .*protocol version" "$TP_TMP/err" || fail "protocols= not applied: $(cat "$TP_TMP/err")"
cmp -s "$D/tls_policy" "$TP_TMP/src.before" || fail "written after a failed handshake"
tp_expect_status 0 "$T" -c "$D" set proto.test --fingerprint-from "127.0.0.1:$TP_PORT" --attr 'protocols=>=TLSv1.3'
[ "$(pq proto.test)" = "fingerprint match=$RSA_MD5 protocols=>=TLSv1.3" ] || fail "proto.test: got '$(pq proto.test)'"

tp_note "--wrapper: TLS first (SMTPS), recorded as wrappermode=yes for rotate and check"
tp_start_server smtps --cert "$TP_TMP/ec.pem" --wrapper
PW=$TP_PORT
tp_expect_status 1 "$T" -c "$D" set "[127.0.0.1]:$PW" --fingerprint-from "127.0.0.1:$PW" --timeout 3
tp_expect_status 0 "$T" -c "$D" set "[127.0.0.1]:$PW" --fingerprint-from "127.0.0.1:$PW" --wrapper
[ "$(pq "[127.0.0.1]:$PW")" = "fingerprint match=$EC_MD5" ] || fail "wrapper pin: got '$(pq "[127.0.0.1]:$PW")'"
grep -qxF "# tlspolicy: from=127.0.0.1:$PW pin=cert keys=$EC_KEY_ID wrappermode=yes" "$D/tls_policy" ||
    fail "wrapper annotation: $(cat "$D/tls_policy")"
tp_expect_status 0 "$T" -c "$D" check "[127.0.0.1]:$PW"
tp_expect_status 0 "$T" -c "$D" rotate "[127.0.0.1]:$PW"
grep -qx "all pins current" "$TP_TMP/out" || fail "rotate of a wrapper-mode entry: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" set "[127.0.0.1]:$PW" --fingerprint-from "127.0.0.1:$PW" --wrapper --pin pkey
grep -qxF "# tlspolicy: from=127.0.0.1:$PW pin=pkey wrappermode=yes" "$D/tls_policy" ||
    fail "wrapper annotation after a second set: $(cat "$D/tls_policy")"
tp_expect_status 64 "$T" -c "$D" set wrap.test --wrapper --fingerprint "$EC_MD5"

tp_note "--dry-run: the diff, nothing written"
cp "$D/tls_policy" "$TP_TMP/src.before"
tp_expect_status 0 "$T" -c "$D" set dry.test --fingerprint-from "127.0.0.1:$P2" --dry-run
grep -qxF "+dry.test	fingerprint match=$EC_MD5" "$TP_TMP/out" || fail "dry-run diff: $(cat "$TP_TMP/out")"
grep -qxF "+# tlspolicy: from=127.0.0.1:$P2 pin=cert keys=$EC_KEY_ID" "$TP_TMP/out" || fail "dry-run diff lacks annotation: $(cat "$TP_TMP/out")"
cmp -s "$D/tls_policy" "$TP_TMP/src.before" || fail "--dry-run wrote the source"

tp_note "sha256 when main.cf says so"
sed -i 's/= md5/= sha256/' "$D/main.cf"
tp_expect_status 0 "$T" -c "$D" set sha.test --fingerprint-from "127.0.0.1:$P1"
[ "$(pq sha.test)" = "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/rsa.crt" sha256)" ] \
    || fail "sha256 pin: got '$(pq sha.test)'"
sed -i 's/= sha256/= md5/' "$D/main.cf"

tp_note "a malformed host is a usage error"
tp_expect_status 64 "$T" -c "$D" set bad.test --fingerprint-from "[127.0.0.1:25"

if tp_have_ipv6; then
    tp_note "IPv6: [::1]:PORT probed and recorded in brackets"
    tp_start_server v6 --cert "$TP_TMP/ec.pem" --listen '[::1]:0'
    tp_expect_status 0 "$T" -c "$D" set v6.test --fingerprint-from "[::1]:$TP_PORT"
    [ "$(pq v6.test)" = "fingerprint match=$EC_MD5" ] || fail "IPv6 pin: got '$(pq v6.test)'"
    grep -qxF "# tlspolicy: from=[::1]:$TP_PORT pin=cert keys=$EC_KEY_ID" "$D/tls_policy" \
        || fail "IPv6 annotation: $(grep -B1 '^v6.test' "$D/tls_policy")"
else
    tp_note "no ::1 on lo: IPv6 case not run"
fi
tp_note "EHLO says main.cf's smtp_helo_name (default \$myhostname), as Postfix's SMTP client does"
printf 'myhostname = relay.tlspolicy.test\n' >>"$D/main.cf"
tp_expect_status 0 "$T" -c "$D" -v set helo.test --fingerprint-from "127.0.0.1:$(tp_server_port rsa)" --dry-run
grep -q ">>> EHLO relay.tlspolicy.test$" "$TP_TMP/err" ||
    fail "EHLO did not use myhostname: $(grep '>>> EHLO' "$TP_TMP/err")"
printf 'smtp_helo_name = helo.tlspolicy.test\n' >>"$D/main.cf"
tp_expect_status 0 "$T" -c "$D" -v set helo.test --fingerprint-from "127.0.0.1:$(tp_server_port rsa)" --dry-run
grep -q ">>> EHLO helo.tlspolicy.test$" "$TP_TMP/err" ||
    fail "EHLO did not use smtp_helo_name: $(grep '>>> EHLO' "$TP_TMP/err")"
sed -i '/^myhostname = /d; /^smtp_helo_name = /d' "$D/main.cf"
echo ok
