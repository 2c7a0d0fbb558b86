#!/usr/bin/env bash
# tlspolicy probe against testsmtpd: every way a server can fail a probe
# ends in its own one-line error naming host, address, port and step, with
# exit 1, within the deadline, in bounded memory; SNI, chains, IPv6, usage
# errors, and many probes at once finishing in about one timeout.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need openssl jq

T=$TP_TMP
now_ms() { date +%s%3N; }

# ASan's shadow memory makes RSS meaningless; measure only plain builds.
asan=0
if tp_asan_build "$TLSPOLICY"; then
    asan=1
fi
have_time=0
[ -x /usr/bin/time ] && have_time=1

# Names resolve through our DNS server (localhost through /etc/hosts):
# never real DNS.
echo 'other.test A 127.0.0.1' >"$T/zone"
tp_start_dns dns "$T/zone"
export TLSPOLICY_DNS_SERVERS="127.0.0.1:$TP_DNS_PORT"

# A sandbox main.cf: the probe's settings come from it, never from the
# machine's /etc/postfix.
tp_sandbox_config "$T/conf"
export MAIL_CONFIG=$T/conf

tp_make_cert "$T/a" mx.test --san DNS:mx.test,IP:127.0.0.1
tp_make_cert "$T/ca2" "Second Cert" --ec

# run_probe NAME ARGS...: runs the probe, keeping stdout, stderr, exit
# status, wall time (ms) and max RSS (KB) in $T/NAME.{out,err,rc,ms,rss}.
run_probe() {
    local name=$1 start rc
    shift
    start=$(now_ms)
    set +e
    if [ "$have_time" = 1 ]; then
        /usr/bin/time -f %M -o "$T/$name.rss" "$TLSPOLICY" "$@" >"$T/$name.out" 2>"$T/$name.err"
    else
        "$TLSPOLICY" "$@" >"$T/$name.out" 2>"$T/$name.err"
    fi
    rc=$?
    set -e
    echo "$rc" >"$T/$name.rc"
    echo $(( $(now_ms) - start )) >"$T/$name.ms"
}

# ---- the happy path, text and JSON
tp_start_server ok --cert "$T/a.pem" --chain "$T/ca2.crt"
OK=$TP_PORT
run_probe okjson probe --json "127.0.0.1:$OK"
[ "$(cat "$T/okjson.rc")" = 0 ] || fail "probe ok: got exit $(cat "$T/okjson.rc"), want 0: $(cat "$T/okjson.err")"
j=$T/okjson.out
[ "$(jq -r '.results | length' "$j")" = 1 ] || fail "got $(jq '.results|length' "$j") results, want 1"
[ "$(jq -r '.results[0].address' "$j")" = 127.0.0.1 ] || fail "address: got $(jq '.results[0].address' "$j")"
[ "$(jq -r '.results[0].ok' "$j")" = true ] || fail "ok: got $(jq '.results[0]' "$j")"
[ "$(jq -r '.results[0].servername' "$j")" = null ] || fail "an address literal must get no SNI, got $(jq '.results[0].servername' "$j")"
[ "$(jq -r '.results[0].chain | length' "$j")" = 2 ] || fail "chain: got $(jq '.results[0].chain|length' "$j") certificates, want 2"
[ "$(jq -r '.results[0].chain[0].subject' "$j")" = CN=mx.test ] || fail "leaf subject: got $(jq '.results[0].chain[0].subject' "$j")"
[ "$(jq -r '.results[0].chain[1].subject' "$j")" = "CN=Second Cert" ] || fail "chain[1] subject: got $(jq '.results[0].chain[1].subject' "$j")"
[ "$(jq -r '.results[0].verified' "$j")" = false ] || fail "a self-signed chain must not verify"
[ "$(jq -r '.results[0].name_matches' "$j")" = true ] || fail "IP:127.0.0.1 in the SAN must match 127.0.0.1"
want=$(date -u -d "$(openssl x509 -in "$T/a.crt" -noout -enddate | sed 's/notAfter=//')" +%s)
got=$(jq -r '.results[0].chain[0].not_after_epoch' "$j")
[ "$got" = "$want" ] || fail "not_after: got $got, want $want"
want=$(date -u -d "$(openssl x509 -in "$T/a.crt" -noout -startdate | sed 's/notBefore=//')" +%s)
got=$(jq -r '.results[0].chain[0].not_before_epoch' "$j")
[ "$got" = "$want" ] || fail "not_before: got $got, want $want"
# The text shows the same data.
run_probe oktext probe "127.0.0.1:$OK"
[ "$(cat "$T/oktext.rc")" = 0 ] || fail "probe text: exit $(cat "$T/oktext.rc")"
for v in "$(jq -r '.results[0].chain[0].fingerprint' "$j")" "$(jq -r '.results[0].chain[1].pkey_fingerprint' "$j")" \
         "CN=Second Cert" "$(jq -r '.results[0].chain[0].not_after' "$j")" "$(jq -r '.results[0].tls_version' "$j")"; do
    grep -qF -- "$v" "$T/oktext.out" || fail "text output lacks \"$v\": $(cat "$T/oktext.out")"
done

# Piped, nothing is wrapped: each value is whole on its own line (a
# 95-character sha256 fingerprint, a long subject), for grep and awk.
grep -qx "    fingerprint:      sha256 $(jq -r '.results[0].chain[0].fingerprint' "$j")" "$T/oktext.out" ||
    fail "fingerprint line not whole: $(grep -A1 'fingerprint:' "$T/oktext.out" | head -2)"
grep -qx "    subject:          $(jq -r '.results[0].chain[0].subject' "$j")" "$T/oktext.out" ||
    fail "subject line not whole: $(grep -A1 'subject:' "$T/oktext.out" | head -2)"

# ---- SNI as Postfix's SMTP client sends it: none by default (even for a
# name), --servername (a name, or "hostname": the host probed), or main.cf's
# smtp_tls_servername
log=$(tp_server_log ok)
: >"$log"
run_probe sni probe --json "localhost:$OK"
[ "$(cat "$T/sni.rc")" = 0 ] || fail "probe localhost: exit $(cat "$T/sni.rc"): $(cat "$T/sni.err")"
[ "$(jq -r '.results[0].servername' "$T/sni.out")" = null ] || fail "SNI by default: got $(jq '.results[0].servername' "$T/sni.out"), want none"
[ "$(jq -r '.settings.servername' "$T/sni.out")" = "" ] || fail "settings: servername $(jq '.settings.servername' "$T/sni.out")"
tp_wait_until 5 grep -q 'sni=- ' "$log" || fail "server saw SNI by default: $(cat "$log")"
run_probe sni2 probe --json --servername mx.test "127.0.0.1:$OK"
[ "$(jq -r '.results[0].servername' "$T/sni2.out")" = mx.test ] || fail "--servername: got $(jq '.results[0].servername' "$T/sni2.out")"
[ "$(jq -r '.results[0].name_matches' "$T/sni2.out")" = true ] || fail "mx.test must match DNS:mx.test"
tp_wait_until 5 grep -q 'sni=mx.test ' "$log" || fail "server did not see SNI mx.test: $(cat "$log")"
run_probe sni3 probe --json --servername hostname "localhost:$OK"
[ "$(jq -r '.results[0].servername' "$T/sni3.out")" = localhost ] || fail "--servername hostname: got $(jq '.results[0].servername' "$T/sni3.out")"
tp_wait_until 5 grep -q 'sni=localhost ' "$log" || fail "server did not see SNI localhost: $(cat "$log")"
printf 'smtp_tls_servername = main.cf.test\n' >>"$T/conf/main.cf"
run_probe sni4 probe --json "127.0.0.1:$OK"
sed -i '/^smtp_tls_servername/d' "$T/conf/main.cf"
[ "$(jq -r '.results[0].servername' "$T/sni4.out")" = main.cf.test ] || fail "smtp_tls_servername: got $(jq '.results[0].servername' "$T/sni4.out")"
run_probe sni5 probe --json --servername 'bad name' "127.0.0.1:$OK"
[ "$(cat "$T/sni5.rc")" = 64 ] || fail "--servername 'bad name': exit $(cat "$T/sni5.rc"), want 64"

# ---- settings as Postfix uses them: the mandatory cipher list and
# protocols of main.cf, overridden by the options as by an entry's
run_probe set1 probe --json "127.0.0.1:$OK"
[ "$(jq -r '.settings.cipherlist' "$T/set1.out")" = 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aNULL' ] ||
    fail "default cipher list: $(jq '.settings' "$T/set1.out")"
[ "$(jq -r '.settings.security_level' "$T/set1.out")" = 1 ] || fail "security level: $(jq '.settings' "$T/set1.out")"
printf 'smtp_tls_mandatory_ciphers = high\nsmtp_tls_mandatory_exclude_ciphers = aRSA\n' >>"$T/conf/main.cf"
run_probe set2 probe --json "127.0.0.1:$OK"
[ "$(jq -r '.settings.cipherlist' "$T/set2.out")" = 'aNULL:-aNULL:HIGH:@STRENGTH:!aRSA:!aNULL' ] ||
    fail "main.cf cipher settings: $(jq '.settings' "$T/set2.out")"
run_probe set3 probe --json --exclude aECDSA --ciphers medium "127.0.0.1:$OK"
[ "$(jq -r '.settings.cipherlist' "$T/set3.out")" = 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aECDSA:!aNULL' ] ||
    fail "--exclude replaces the main.cf exclusions: $(jq '.settings' "$T/set3.out")"
sed -i '/^smtp_tls_mandatory_/d' "$T/conf/main.cf"
run_probe set4 probe --json --protocols '>=TLSv1.3' "127.0.0.1:$OK"
[ "$(jq -r '.results[0].tls_version' "$T/set4.out")" = TLSv1.3 ] || fail "--protocols >=TLSv1.3: $(jq '.results[0].tls_version' "$T/set4.out")"
run_probe set5 probe --json --protocols 'TLSv1.2' "127.0.0.1:$OK"
[ "$(jq -r '.results[0].tls_version' "$T/set5.out")" = TLSv1.2 ] || fail "--protocols TLSv1.2: $(jq '.results[0].tls_version' "$T/set5.out")"
run_probe set6 probe --json --protocols 'TLSv9' "127.0.0.1:$OK"
[ "$(cat "$T/set6.rc")" = 1 ] || fail "--protocols TLSv9: exit $(cat "$T/set6.rc"), want 1"
[ "$(jq -r '.settings.error' "$T/set6.out")" = 'Invalid TLS protocol list "TLSv9"' ] || fail "--protocols TLSv9: $(jq '.settings' "$T/set6.out")"
run_probe set7 probe --json --ciphers superstrong "127.0.0.1:$OK"
[ "$(cat "$T/set7.rc")" = 1 ] || fail "--ciphers superstrong: exit $(cat "$T/set7.rc"), want 1"
grep -q "invalid cipher grade" "$T/set7.err" || fail "--ciphers superstrong: $(cat "$T/set7.err")"
printf 'smtp_helo_name = helo.probe.test\n' >>"$T/conf/main.cf"
run_probe helo -v probe "127.0.0.1:$OK"
sed -i '/^smtp_helo_name/d' "$T/conf/main.cf"
grep -q '>>> EHLO helo.probe.test$' "$T/helo.err" || fail "EHLO not smtp_helo_name: $(grep EHLO "$T/helo.err")"

# ---- hostile bytes: a Latin-1 banner and control bytes reach JSON and the
# terminal as valid UTF-8 without controls
tp_start_server latin1 --cert "$T/a.pem" --mode banner421 --hostname "$(printf 'caf\351\033[2J.example')"
run_probe latin1 probe --json "127.0.0.1:$TP_PORT"
[ "$(cat "$T/latin1.rc")" = 1 ] || fail "Latin-1 banner: exit $(cat "$T/latin1.rc"), want 1: $(cat "$T/latin1.err")"
jq -e . "$T/latin1.out" >/dev/null || fail "Latin-1 banner: JSON not valid: $(cat "$T/latin1.out" "$T/latin1.err")"
[ "$(jq -r '.results[0].error' "$T/latin1.out")" = "127.0.0.1[127.0.0.1]:$TP_PORT: banner: 421 4.3.2 caf??[2J.example Service not available, closing channel" ] ||
    fail "Latin-1 banner: error $(jq '.results[0].error' "$T/latin1.out")"
iconv -f UTF-8 -t UTF-8 "$T/latin1.err" >/dev/null || fail "stderr is not UTF-8: $(od -c "$T/latin1.err" | head)"

# ---- wrapper mode (SMTPS): TLS first, no STARTTLS
tp_start_server smtps --cert "$T/a.pem" --wrapper
run_probe wrap probe --json --wrapper "127.0.0.1:$TP_PORT"
[ "$(cat "$T/wrap.rc")" = 0 ] || fail "--wrapper: exit $(cat "$T/wrap.rc"): $(cat "$T/wrap.err")"
[ "$(jq -r '.results[0].chain[0].fingerprint' "$T/wrap.out")" = "$(jq -r '.results[0].chain[0].fingerprint' "$T/set1.out")" ] ||
    fail "--wrapper: another certificate: $(cat "$T/wrap.out")"
run_probe nowrap probe --json --timeout 3 "127.0.0.1:$TP_PORT"
[ "$(cat "$T/nowrap.rc")" = 1 ] || fail "STARTTLS to an SMTPS server: exit $(cat "$T/nowrap.rc"), want 1"

# ---- IPv6
if tp_have_ipv6; then
    tp_start_server v6 --cert "$T/a.pem" --listen '[::1]:0'
    run_probe v6 probe --json "[::1]:$TP_PORT"
    [ "$(cat "$T/v6.rc")" = 0 ] || fail "probe [::1]: exit $(cat "$T/v6.rc"): $(cat "$T/v6.err")"
    [ "$(jq -r '.results[0].address' "$T/v6.out")" = ::1 ] || fail "[::1]: got address $(jq '.results[0].address' "$T/v6.out")"
    # Every address of a name: a server on both families, a name with both.
    if getent ahosts localhost | grep -q '^::1 '; then
        tp_start_server dual --cert "$T/a.pem" --listen '[::1]:0' --listen 127.0.0.1:0
        p6=$(sed -n 1p "$TP_TMP/srv-dual/port"); p4=$(sed -n 2p "$TP_TMP/srv-dual/port")
        [ "$p6" = "$p4" ] && { run_probe dual probe --json "localhost:$p4"
            [ "$(jq -r '[.results[].address] | sort | join(",")' "$T/dual.out")" = "127.0.0.1,::1" ] \
                || fail "localhost: got addresses $(jq -c '[.results[].address]' "$T/dual.out"), want both"; }
    fi
else
    tp_note "no ::1 on lo: IPv6 case skipped"
fi

# ---- failures: MODE, extra server options, expected error (after "host[addr]:port: ")
failures=(
    "silent||timed out waiting for banner after 2s"
    "drip|--delay 0.2|timed out waiting for banner after 2s"
    "slow|--delay 0.8|timed out waiting for STARTTLS reply after 2s"
    "banner421||banner: 421 4.3.2 "
    "garbage||garbage in banner"
    "long-line||reply line longer than 2048 bytes in banner"
    "endless-multiline||reply longer than 65536 bytes in EHLO reply"
    "ehlo-4xx||EHLO rejected: 450 4.3.0 "
    "ehlo-5xx||EHLO rejected: 550 5.7.1 "
    "no-starttls||no STARTTLS in EHLO reply"
    "starttls-4xx||STARTTLS rejected: 454 4.7.0 "
    "starttls-5xx||STARTTLS rejected: 554 5.7.0 "
    "tls-alert||TLS handshake: sslv3 alert handshake failure"
    "close-after-banner||connection closed during EHLO"
    "close-after-ehlo||connection closed during STARTTLS"
    "close-after-starttls||connection closed during TLS handshake"
    "close-in-handshake||connection closed during TLS handshake"
)
# Baseline memory of a good probe, to compare hostile ones with.
base_rss=$(cat "$T/oktext.rss" 2>/dev/null || echo 0)
for f in "${failures[@]}"; do
    IFS='|' read -r mode extra want <<<"$f"
    # shellcheck disable=SC2086
    tp_start_server "$mode" --cert "$T/a.pem" --mode "$mode" $extra
    run_probe "$mode" probe --timeout 2 "127.0.0.1:$TP_PORT"
    rc=$(cat "$T/$mode.rc") ms=$(cat "$T/$mode.ms")
    err=$(cat "$T/$mode.err")
    [ "$rc" = 1 ] || fail "$mode: got exit $rc, want 1 (stderr: $err)"
    [ "$(wc -l <"$T/$mode.err")" = 1 ] || fail "$mode: want one line on stderr, got: $err"
    case $err in
        "tlspolicy: 127.0.0.1[127.0.0.1]:$TP_PORT: $want"*) ;;
        *) fail "$mode: got \"$err\", want \"tlspolicy: 127.0.0.1[127.0.0.1]:$TP_PORT: $want...\"" ;;
    esac
    # A missed deadline hangs (the server never gives up); the bound is loose
    # on purpose, for a shared and loaded machine.
    [ "$ms" -lt 30000 ] || fail "$mode: took ${ms} ms with --timeout 2: the deadline was not kept"
    if [ "$have_time" = 1 ] && [ "$asan" = 0 ]; then
        rss=$(tail -n 1 "$T/$mode.rss")
        [ "$rss" -lt 51200 ] || fail "$mode: max RSS ${rss} KB, want < 50 MB"
        [ "$rss" -lt $((base_rss + 8192)) ] || fail "$mode: max RSS ${rss} KB, want within 8 MB of a good probe's ${base_rss} KB"
    fi
    tp_stop_server "$mode"
done

# ---- modes that end in success: within the deadline and the memory bound too
for mode in multiline-banner; do
    tp_start_server "$mode" --cert "$T/a.pem" --mode "$mode"
    run_probe "$mode" probe --timeout 2 "127.0.0.1:$TP_PORT"
    [ "$(cat "$T/$mode.rc")" = 0 ] || fail "$mode: got exit $(cat "$T/$mode.rc"), want 0: $(cat "$T/$mode.err")"
    [ "$(cat "$T/$mode.ms")" -lt 30000 ] || fail "$mode: took $(cat "$T/$mode.ms") ms with --timeout 2: the deadline was not kept"
    if [ "$have_time" = 1 ] && [ "$asan" = 0 ]; then
        rss=$(tail -n 1 "$T/$mode.rss")
        [ "$rss" -lt $((base_rss + 8192)) ] || fail "$mode: max RSS ${rss} KB, want within 8 MB of a good probe's ${base_rss} KB"
    fi
    tp_stop_server "$mode"
done

# ---- every misbehaviour testsmtpd knows is tested above, with both bounds
# (a mode added to testsmtpd without a case here fails this test).
modes=$("$TESTSMTPD" --help 2>&1 | sed -n 's/^modes: *//p' || true)
[ -n "$modes" ] || fail "testsmtpd --help lists no modes"
for mode in $modes; do
    case " normal multiline-banner ${failures[*]%%|*} " in
        *" $mode "*) ;;
        *) if ! printf '%s\n' "${failures[@]}" | grep -q "^$mode|"; then
               fail "testsmtpd mode $mode has no probe case with a deadline and a memory bound"
           fi ;;
    esac
done

# ---- nothing listening, and a name that does not resolve
port=$(tp_server_port ok)
tp_stop_server ok
run_probe refused probe --timeout 2 "127.0.0.1:$port"
[ "$(cat "$T/refused.rc")" = 1 ] || fail "refused: exit $(cat "$T/refused.rc")"
grep -qF "127.0.0.1[127.0.0.1]:$port: connect: Connection refused" "$T/refused.err" || fail "refused: got $(cat "$T/refused.err")"
run_probe nxdomain probe --timeout 2 --json "nonexistent.invalid:25"
[ "$(cat "$T/nxdomain.rc")" = 1 ] || fail "nxdomain: exit $(cat "$T/nxdomain.rc")"
grep -qF "nonexistent.invalid:25: cannot resolve nonexistent.invalid: no such domain (NXDOMAIN)" "$T/nxdomain.err" || fail "nxdomain: got $(cat "$T/nxdomain.err")"
[ "$(jq -r '.results[0].ok' "$T/nxdomain.out")" = false ] || fail "nxdomain JSON: $(cat "$T/nxdomain.out")"

# ---- many at once: 40 silent probes and a good one, not one after another
tp_start_server many --cert "$T/a.pem" --mode silent
silent=$TP_PORT
tp_start_server good --cert "$T/a.pem"
good=$TP_PORT
args=()
for _ in $(seq 40); do args+=("127.0.0.1:$silent"); done
run_probe many probe --json --timeout 2 --jobs 64 "${args[@]}" "127.0.0.1:$good"
ms=$(cat "$T/many.ms")
[ "$(cat "$T/many.rc")" = 1 ] || fail "many: exit $(cat "$T/many.rc"), want 1"
# One after another they would take 80 s; at once, about 2 s. The bound sits
# between, far from both, for a loaded machine.
[ "$ms" -lt 40000 ] || fail "41 probes with --timeout 2 --jobs 64 took ${ms} ms: not probed at once"
[ "$(jq '[.results[] | select(.ok)] | length' "$T/many.out")" = 1 ] || fail "many: want the good probe to succeed"
[ "$(grep -c 'timed out waiting for banner' "$T/many.err")" = 40 ] || fail "many: want 40 timeouts, got $(grep -c 'timed out' "$T/many.err")"
# --jobs bounds the connections: 8 silent probes, 4 at a time, take two rounds
# (a lower bound: load only makes it slower).
args=()
for _ in $(seq 8); do args+=("127.0.0.1:$silent"); done
run_probe jobs probe --timeout 1 --jobs 4 "${args[@]}"
ms=$(cat "$T/jobs.ms")
[ "$ms" -ge 1900 ] || fail "8 probes, --jobs 4, --timeout 1: took ${ms} ms, want two rounds (at least 2000)"

# Out of file descriptors (ulimit -n 20, --jobs 64): fewer at once, no failures.
args=()
for _ in $(seq 30); do args+=("127.0.0.1:$silent"); done
start=$(now_ms)
set +e
(ulimit -n 20 && exec "$TLSPOLICY" probe --timeout 1 --jobs 64 "${args[@]}") >/dev/null 2>"$T/fd.err"
set -e
ms=$(( $(now_ms) - start ))
[ "$(grep -c 'timed out waiting for banner after 1s' "$T/fd.err")" = 30 ] \
    || fail "ulimit -n 20: want 30 timeouts and no socket errors, got: $(sort "$T/fd.err" | uniq -c | head -5)"
[ "$ms" -lt 25000 ] || fail "ulimit -n 20, 30 probes: took ${ms} ms, want a few rounds of 1 s, not 30"

# ---- usage errors: 64
for bad in "probe" "probe mx.test:0" "probe [::1" "probe --timeout x mx.test" "probe --jobs 0 mx.test" "probe --bogus mx.test" "probe --servername"; do
    set +e
    # shellcheck disable=SC2086
    "$TLSPOLICY" $bad >"$T/usage.out" 2>"$T/usage.err"
    rc=$?
    set -e
    [ "$rc" = 64 ] || fail "\"tlspolicy $bad\": got exit $rc, want 64 ($(cat "$T/usage.err"))"
done
"$TLSPOLICY" probe --help | grep -q 'HOST\[:PORT\]' || fail "probe --help does not show the usage"
echo "probe.sh: ok"
