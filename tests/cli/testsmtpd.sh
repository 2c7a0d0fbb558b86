# Tests of the test server itself (tests/tools/testsmtpd.c): the certificate
# it presents, certificate replacement, delivery, and that every --mode does
# what it claims. Other tests trust it, so it must be right.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need openssl timeout

# talk SECONDS LINE...
#   Connects to 127.0.0.1:$PORT, sends each LINE (CRLF added) 0.3 s apart,
#   and prints everything the server sends until it closes or SECONDS pass.
talk() {
    local secs=$1
    shift
    timeout "$secs" bash -c '
        port=$1; shift
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        cat <&3 &
        for l in "$@"; do sleep 0.3; printf "%s\r\n" "$l" >&3 2>/dev/null || break; done
        wait' talk "$PORT" "$@" || true
}

# ms: milliseconds since the epoch.
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# starttls_cert [S_CLIENT OPTIONS...]: the certificate the server presents.
starttls_cert() {
    timeout 10 openssl s_client -starttls smtp -connect "127.0.0.1:$PORT" "$@" \
        </dev/null 2>/dev/null | openssl x509 2>/dev/null
}

set_mode() { echo "$1" >"$TP_TMP/mode"; }

tp_make_cert "$TP_TMP/a" server-a.test
tp_make_cert "$TP_TMP/b" server-b.test --ec
tp_make_cert "$TP_TMP/old" expired.test --not-before 20200101000000Z --not-after 20210101000000Z
cp "$TP_TMP/a.pem" "$TP_TMP/live.pem"
fp_a=$(tp_cert_fingerprint "$TP_TMP/a.crt")
fp_b=$(tp_cert_fingerprint "$TP_TMP/b.crt")
[ "$fp_a" != "$fp_b" ] || fail "two fresh certificates have the same fingerprint"
openssl x509 -in "$TP_TMP/old.crt" -noout -checkend 0 >/dev/null \
    && fail "tp_make_cert --not-after 2021: certificate is not expired"
openssl x509 -in "$TP_TMP/old.crt" -noout -enddate | grep -q 'Jan  1 00:00:00 2021 GMT' \
    || fail "expired cert: got $(openssl x509 -in "$TP_TMP/old.crt" -noout -enddate), want 2021"

tp_start_server main --cert "$TP_TMP/live.pem" --mode-file "$TP_TMP/mode" \
    --hostname mx.server.test --delay 0.5 --timeout 20
PORT=$TP_PORT
LOG=$(tp_server_log main)

tp_note "normal: the configured certificate, SNI logged"
got=$(starttls_cert -servername sni.example.test | openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
[ "$got" = "$fp_a" ] || fail "presented certificate: got '$got', want '$fp_a'"
tp_wait_until 5 grep -q 'sni=sni.example.test tls=TLSv1.3' "$LOG" \
    || fail "log lacks sni=sni.example.test tls=TLSv1.3: $(cat "$LOG")"

tp_note "normal: the certificate file is reloaded for each connection"
tp_install_cert "$TP_TMP/b.pem" "$TP_TMP/live.pem"
got=$(starttls_cert | openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
[ "$got" = "$fp_b" ] || fail "after replacing the cert: got '$got', want '$fp_b'"
tp_install_cert "$TP_TMP/old.pem" "$TP_TMP/live.pem"
got=$(starttls_cert | openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
want=$(tp_cert_fingerprint "$TP_TMP/old.crt")
[ "$got" = "$want" ] || fail "expired cert: got '$got', want '$want'"
tp_install_cert "$TP_TMP/a.pem" "$TP_TMP/live.pem"

tp_note "normal: posttls-finger sees the same fingerprints"
if command -v posttls-finger >/dev/null; then
    for dg in sha256 md5 sha1; do
        out=$(timeout 20 posttls-finger -c -l fingerprint -d "$dg" "[127.0.0.1]:$PORT" 2>&1)
        want="fingerprint=$(tp_cert_fingerprint "$TP_TMP/a.crt" "$dg"), pkey_fingerprint=$(tp_pkey_fingerprint "$TP_TMP/a.crt" "$dg")"
        grep -qF "$want" <<<"$out" || fail "posttls-finger -d $dg: got '$out', want '$want'"
    done
else
    tp_note "posttls-finger not installed: interop sub-test skipped"
fi

tp_note "normal: a transaction after STARTTLS delivers a message"
out=$(timeout 10 openssl s_client -starttls smtp -connect "127.0.0.1:$PORT" -quiet -crlf 2>/dev/null <<'EOF'
EHLO client.test
MAIL FROM:<alice@a.test>
RCPT TO:<bob@b.test>
RCPT TO:<carol@b.test>
DATA
Subject: test

..leading dot
.
QUIT
EOF
) || true
grep -q '^250 2.0.0 Ok: queued' <<<"$out" || fail "DATA not accepted: $out"
grep -q '^221 ' <<<"$out" || fail "QUIT not answered: $out"
grep -q 'STARTTLS' <<<"$out" && fail "EHLO after STARTTLS still offers STARTTLS: $out"
tp_wait_mail main 1
msg=$(cat "$(tp_server_maildir main)"/*.eml)
for want in 'X-Testsmtpd-Mail-From: <alice@a.test>' 'X-Testsmtpd-Rcpt-To: <bob@b.test>' \
        'X-Testsmtpd-Rcpt-To: <carol@b.test>' 'X-Testsmtpd-TLS: TLSv1.3' 'Subject: test'; do
    grep -qF "$want" <<<"$msg" || fail "message lacks '$want': $msg"
done
grep -q $'^\\.leading dot\r$' <<<"$msg" || fail "dot not unstuffed: $msg"
grep -q $'^\\.\\.leading' <<<"$msg" && fail "dot not unstuffed: $msg"

tp_note "normal: plaintext EHLO reply, overlong line refused without harm"
out=$(talk 3 "EHLO x" "$(head -c 100000 /dev/zero | tr '\0' a)" "NOOP" "QUIT")
for want in '^220 mx.server.test ESMTP' '^250-STARTTLS' '^250-PIPELINING' '^250-SIZE ' \
        '^250-ENHANCEDSTATUSCODES' '^250 8BITMIME' '^500 5.5.2 Error: line too long' '^221 '; do
    grep -q "$want" <<<"$out" || fail "plaintext session lacks /$want/: $out"
done

tp_note "TLS 1.2 only"
tp_start_server tls12 --cert "$TP_TMP/a.pem" --tls-version 1.2
out=$(PORT=$TP_PORT; timeout 10 openssl s_client -starttls smtp -connect "127.0.0.1:$PORT" </dev/null 2>&1) || true
grep -q 'Protocol  *: TLSv1.2' <<<"$out" || fail "--tls-version 1.2: got $(grep Protocol <<<"$out")"

tp_note "--wrapper: TLS first, then the banner and the session over TLS (posttls-finger -w agrees)"
tp_start_server smtps --cert "$TP_TMP/a.pem" --wrapper --hostname mx.server.test
out=$(printf 'EHLO client.test\nQUIT\n' | timeout 10 openssl s_client -connect "127.0.0.1:$TP_PORT" -quiet -crlf 2>/dev/null) || true
grep -q '^220 mx.server.test ESMTP' <<<"$out" || fail "--wrapper: no banner over TLS: $out"
grep -q 'STARTTLS' <<<"$out" && fail "--wrapper: STARTTLS offered inside TLS: $out"
grep -q '^221 ' <<<"$out" || fail "--wrapper: QUIT not answered: $out"
out=$(timeout 20 posttls-finger -w -c -l fingerprint -d sha256 "[127.0.0.1]:$TP_PORT" 2>&1)
grep -qF "fingerprint=$(tp_cert_fingerprint "$TP_TMP/a.crt" sha256)" <<<"$out" || fail "posttls-finger -w: $out"

tp_note "IPv6"
if tp_have_ipv6; then
    tp_start_server v6 --cert "$TP_TMP/b.pem" --listen '[::1]:0' --listen 127.0.0.1:0
    [ "$(wc -l <"$TP_TMP/srv-v6/port")" = 2 ] || fail "two --listen: want two ports in the port file"
    [ "$(sort -u "$TP_TMP/srv-v6/port" | wc -l)" = 1 ] \
        || fail "[::1]:0 and 127.0.0.1:0: got ports $(tr '\n' ' ' <"$TP_TMP/srv-v6/port"), want one port"
    got=$(timeout 10 openssl s_client -starttls smtp -connect "127.0.0.1:$TP_PORT" </dev/null 2>/dev/null \
          | openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
    [ "$got" = "$fp_b" ] || fail "127.0.0.1 of the two-address server: got '$got', want '$fp_b'"
    got=$(timeout 10 openssl s_client -starttls smtp -connect "[::1]:$TP_PORT" </dev/null 2>/dev/null \
          | openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
    [ "$got" = "$fp_b" ] || fail "[::1]: got '$got', want '$fp_b'"
else
    tp_note "no ::1 on lo: IPv6 sub-test skipped"
fi

tp_note "non-loopback --listen is refused"
"$TESTSMTPD" --cert "$TP_TMP/a.pem" --listen 192.0.2.1:0 2>"$TP_TMP/err" \
    && fail "--listen 192.0.2.1:0 accepted"
grep -q 'only loopback' "$TP_TMP/err" || fail "--listen 192.0.2.1: got '$(cat "$TP_TMP/err")'"

tp_note "--count 1 exits after one connection"
"$TESTSMTPD" --cert "$TP_TMP/a.pem" --count 1 --port-file "$TP_TMP/c1.port" 2>/dev/null &
c1=$!
tp_wait_until 10 test -s "$TP_TMP/c1.port" || fail "--count server did not start"
PORT=$(cat "$TP_TMP/c1.port") talk 2 QUIT >/dev/null
tp_wait_until 5 bash -c "! kill -0 $c1 2>/dev/null" || fail "--count 1: still running"
wait "$c1" || fail "--count 1: exit status $?"

# ---- misbehaviour modes, switched through --mode-file ----

tp_note "silent: nothing in 2 s"
set_mode silent
n=$(talk 2 | wc -c)
[ "$n" -eq 0 ] || fail "silent: got $n bytes, want 0"

tp_note "drip: a few bytes of a 220- banner, at the --delay rate"
set_mode drip
out=$(talk 2.6)
# How many bytes arrive depends on the machine's load: a prefix of the
# banner "220-mx...", at least "220".
want="220-mx"
[ "${out:0:6}" = "${want:0:${#out}}" ] && [[ $out == 220* ]] \
    || fail "drip: got '$out', want a prefix of a 220- banner"
[ "${#out}" -ge 3 ] && [ "${#out}" -le 8 ] || fail "drip: got ${#out} bytes in 2.6 s at 0.5 s/byte"

tp_note "banner421: 421 then close"
set_mode banner421
t0=$(ms)
out=$(talk 5)
[ $(( $(ms) - t0 )) -lt 3000 ] || fail "banner421: connection not closed"
[[ $out == "421 4.3.2 "* ]] || fail "banner421: got '$out'"

tp_note "garbage: binary bytes, no reply code"
set_mode garbage
talk 2 >"$TP_TMP/garbage"
n=$(wc -c <"$TP_TMP/garbage")
[ "$n" -ge 1024 ] || fail "garbage: got $n bytes, want 1024"
head -c 1 "$TP_TMP/garbage" | grep -q '[0-9]' && fail "garbage starts with a digit"

tp_note "long-line: > 64 KB without CRLF, fast"
set_mode long-line
t0=$(ms)
talk 5 | head -c 70000 >"$TP_TMP/long"
el=$(( $(ms) - t0 ))
[ "$(wc -c <"$TP_TMP/long")" -eq 70000 ] || fail "long-line: got $(wc -c <"$TP_TMP/long") bytes"
[ "$(tr -cd '\r\n' <"$TP_TMP/long" | wc -c)" -eq 0 ] || fail "long-line: contains CR or LF"
[ "$el" -lt 2000 ] || fail "long-line: 70 KB took $el ms"

tp_note "endless-multiline: 250- lines that never end, fast"
set_mode endless-multiline
t0=$(ms)
talk 5 "EHLO x" | head -c 100000 >"$TP_TMP/multi"
el=$(( $(ms) - t0 ))
[ "$(wc -c <"$TP_TMP/multi")" -eq 100000 ] || fail "endless-multiline: got $(wc -c <"$TP_TMP/multi") bytes"
[ "$(grep -c '^250-' "$TP_TMP/multi")" -gt 1000 ] || fail "endless-multiline: too few 250- lines"
grep -q '^250 ' "$TP_TMP/multi" && fail "endless-multiline: the reply ended"
[ "$el" -lt 2500 ] || fail "endless-multiline: 100 KB took $el ms"

tp_note "ehlo-4xx, ehlo-5xx"
set_mode ehlo-4xx
talk 2 "EHLO x" | grep -q '^450 4' || fail "ehlo-4xx: no 450 reply"
set_mode ehlo-5xx
talk 2 "EHLO x" | grep -q '^550 5' || fail "ehlo-5xx: no 550 reply"

tp_note "no-starttls"
set_mode no-starttls
out=$(talk 2 "EHLO x" "STARTTLS")
grep -q '^250 8BITMIME' <<<"$out" || fail "no-starttls: EHLO reply incomplete: $out"
grep -q 'STARTTLS' <<<"$out" && fail "no-starttls: STARTTLS offered: $out"
grep -q '^502 ' <<<"$out" || fail "no-starttls: STARTTLS not refused: $out"

tp_note "starttls-4xx, starttls-5xx"
set_mode starttls-4xx
talk 2 "EHLO x" "STARTTLS" | grep -q '^454 4.7.0' || fail "starttls-4xx: no 454"
set_mode starttls-5xx
talk 2 "EHLO x" "STARTTLS" | grep -q '^554 5.7.0' || fail "starttls-5xx: no 554"

tp_note "tls-alert: the handshake fails with an alert"
set_mode tls-alert
out=$(timeout 10 openssl s_client -starttls smtp -connect "127.0.0.1:$PORT" </dev/null 2>&1) \
    && fail "tls-alert: s_client succeeded"
grep -q 'alert handshake failure' <<<"$out" || fail "tls-alert: got $out"

tp_note "close-after-banner, close-after-ehlo, close-after-starttls: reply then EOF"
set_mode close-after-banner
t0=$(ms); out=$(talk 5 "EHLO x")
[ $(( $(ms) - t0 )) -lt 3000 ] || fail "close-after-banner: not closed"
[[ $out == "220 "* ]] && ! grep -q '^250' <<<"$out" || fail "close-after-banner: got '$out'"
set_mode close-after-ehlo
t0=$(ms); out=$(talk 5 "EHLO x" "STARTTLS")
[ $(( $(ms) - t0 )) -lt 3000 ] || fail "close-after-ehlo: not closed"
grep -q '^250 8BITMIME' <<<"$out" && ! grep -q '^220 2' <<<"$out" || fail "close-after-ehlo: got '$out'"
set_mode close-after-starttls
t0=$(ms); out=$(talk 5 "EHLO x" "STARTTLS")
[ $(( $(ms) - t0 )) -lt 3000 ] || fail "close-after-starttls: not closed"
grep -q '^220 2.0.0 Ready to start TLS' <<<"$out" || fail "close-after-starttls: got '$out'"

tp_note "close-in-handshake: part of the server's flight, then EOF"
set_mode close-in-handshake
out=$(timeout 10 openssl s_client -starttls smtp -connect "127.0.0.1:$PORT" </dev/null 2>&1) \
    && fail "close-in-handshake: s_client succeeded"
grep -q 'BEGIN CERTIFICATE' <<<"$out" && fail "close-in-handshake: handshake completed"
tp_wait_until 5 grep -q 'close-in-handshake: sent [1-9][0-9]* of' "$LOG" \
    || fail "close-in-handshake: nothing sent: $(tail -3 "$LOG")"

tp_note "multiline-banner: valid, the handshake works"
set_mode multiline-banner
out=$(talk 2 QUIT)
[ "$(grep -c '^220-' <<<"$out")" -eq 2 ] && grep -q '^220 ' <<<"$out" \
    || fail "multiline-banner: got '$out'"
got=$(starttls_cert | openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
[ "$got" = "$fp_a" ] || fail "multiline-banner: got '$got', want '$fp_a'"

tp_note "slow: every reply after --delay"
set_mode slow
t0=$(ms)
out=$(talk 5 "EHLO x" "QUIT")
el=$(( $(ms) - t0 ))
grep -q '^221 ' <<<"$out" || fail "slow: session incomplete: $out"
[ "$el" -ge 1400 ] || fail "slow: 3 replies at 0.5 s took only $el ms"

tp_note "SIGTERM ends the server and its connections"
set_mode silent
talk 30 >/dev/null &
talker=$!
sleep 0.5
t0=$(ms)
tp_stop_server main
wait "$talker" || true
[ $(( $(ms) - t0 )) -lt 5000 ] || fail "connection outlived the server"
[ ! -e "$TP_TMP/srv-main/port" ] || fail "port file left behind"

tp_note "one log line per connection"
grep -c ' result=' "$LOG" >/dev/null || fail "no connection lines in the log"
grep -q 'mode=tls-alert .* result=tls-alert-sent' "$LOG" || fail "log: tls-alert result missing"
echo "ok"
