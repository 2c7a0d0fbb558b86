# Errors and warnings also go to syslog, facility mail, one line each with
# the text of stderr: when stderr is not a terminal, or with --syslog;
# not on a terminal without it; what rotate pins, with why, at mail.notice,
# even with -q. syslog(3) writes to /dev/log: each run
# happens in a private mount namespace whose /dev is a directory holding
# the real null/zero/urandom/... and, as "log", the socket of testsyslog,
# so no syslog daemon is needed and the host's /dev is untouched.
. "$TP_SOURCE_DIR/tests/lib.sh"

[ "$(id -u)" = 0 ] || skip "a private mount namespace needs root"
tp_need unshare mount script
unshare --mount --propagation private true 2>/dev/null || skip "unshare --mount is not permitted here"

T=$TLSPOLICY
DEV=$TP_TMP/dev
mkdir "$DEV"
for n in null zero full random urandom tty; do
    [ -e "/dev/$n" ] && : >"$DEV/$n"
done
LOG=$TP_TMP/syslog
: >"$LOG"
"$TP_TOOLS_DIR/testsyslog" --socket "$DEV/log" --out "$LOG" 2>"$TP_TMP/testsyslog.err" &
SYSLOG_PID=$!
trap 'rc=$?; kill "$SYSLOG_PID" 2>/dev/null || true; _tp_cleanup "$rc"' EXIT
tp_wait_until 10 test -S "$DEV/log" || fail "testsyslog did not bind: $(cat "$TP_TMP/testsyslog.err")"

# The namespace runner: bind the device nodes into $DEV, $DEV over /dev.
cat >"$TP_TMP/ns" <<'EOS'
#!/bin/sh
dev=$1
shift
exec unshare --mount --propagation private sh -c '
    dev=$1; shift
    for n in null zero full random urandom tty; do
        [ -e "$dev/$n" ] && mount --bind "/dev/$n" "$dev/$n"
    done
    mount --rbind "$dev" /dev || exit 125
    exec "$@"' sh "$dev" "$@"
EOS
chmod +x "$TP_TMP/ns"

# run WANT_EXIT CMD...: stderr to a file (not a terminal).
run() {
    local want=$1 got=0
    shift
    "$TP_TMP/ns" "$DEV" "$@" >"$TP_TMP/out" 2>"$TP_TMP/err" </dev/null || got=$?
    [ "$got" = "$want" ] || fail "$*: exit $got, want $want; stderr: $(cat "$TP_TMP/err")"
}
# logged N: wait until the syslog file has N lines.
logged() {
    tp_wait_until 5 eval '[ "$(wc -l <"$LOG")" -ge '"$1"' ]' ||
        fail "want $1 syslog lines, got: $(cat "$LOG")"
    sleep 0.2
    [ "$(wc -l <"$LOG")" = "$1" ] || fail "want $1 syslog lines, got: $(cat "$LOG")"
}
# expect_line N PRI TEXT: line N is "<PRI>Mmm dd hh:mm:ss tlspolicy[PID]: TEXT".
expect_line() {
    local got
    got=$(sed -n "$1p" "$LOG")
    [[ $got =~ ^\<$2\>[A-Z][a-z][a-z]\ [\ 0-9][0-9]\ [0-9:]{8}\ tlspolicy\[[0-9]+\]:\ (.*)$ ]] ||
        fail "syslog line $1: got '$got', want <$2>DATE tlspolicy[PID]: $3"
    [ "${BASH_REMATCH[1]}" = "$3" ] || fail "syslog line $1: got text '${BASH_REMATCH[1]}', want '$3'"
}

tp_note "an error, stderr not a terminal: the same line at mail.err (<19>)"
run 1 "$T" -m "hash:$TP_TMP/nosuch" list
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "want one stderr line: $(cat "$TP_TMP/err")"
err=$(cat "$TP_TMP/err")
[[ $err == "tlspolicy: "*nosuch* ]] || fail "stderr: $err"
logged 1
expect_line 1 19 "${err#tlspolicy: }"

tp_note "warnings at mail.warning (<20>), 'warning: ' kept"
printf 'ok.test\tencrypt\nnovalue.test\nother.test\tmay\n' >"$TP_TMP/tbl"
run 0 "$T" -m "hash:$TP_TMP/tbl" rebuild
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "want one warning: $(cat "$TP_TMP/err")"
w=$(cat "$TP_TMP/err")
[[ $w == "tlspolicy: warning: "* ]] || fail "stderr: $w"
logged 2
expect_line 2 20 "${w#tlspolicy: }"

tp_note "a usage error is an error too"
run 64 "$T" check --warn-days x
logged 3
expect_line 3 19 "$(sed 's/^tlspolicy: //' "$TP_TMP/err")"

tp_note "-q: errors still logged, warnings neither shown nor logged"
run 0 "$T" -q -m "hash:$TP_TMP/tbl" rebuild
run 1 "$T" -q -m "hash:$TP_TMP/nosuch" list
logged 4
expect_line 4 19 "$(sed 's/^tlspolicy: //' "$TP_TMP/err")"

tp_note "on a terminal: not logged; with --syslog: logged"
script -qec "'$TP_TMP/ns' '$DEV' '$T' -m 'hash:$TP_TMP/nosuch' list" /dev/null >"$TP_TMP/tty" </dev/null || true
grep -q "nosuch" "$TP_TMP/tty" || fail "no error on the terminal: $(cat "$TP_TMP/tty")"
sleep 0.3
[ "$(wc -l <"$LOG")" = 4 ] || fail "logged from a terminal without --syslog: $(tail -n 1 "$LOG")"
script -qec "'$TP_TMP/ns' '$DEV' '$T' --syslog -m 'hash:$TP_TMP/nosuch' list" /dev/null >"$TP_TMP/tty" </dev/null || true
logged 5
expect_line 5 19 "$(tr -d '\r' <"$TP_TMP/tty" | sed 's/^tlspolicy: //')"
tp_note "a pin rotate writes, even with -q: mail.notice (<21>), the reason it was trusted"
tp_make_cert "$TP_TMP/old" mx.syslog.test
tp_make_cert "$TP_TMP/renewed" mx.syslog.test --key "$TP_TMP/old.key"
cp "$TP_TMP/old.pem" "$TP_TMP/live.pem"
tp_start_server partner --cert "$TP_TMP/live.pem"
C=$TP_TMP/conf
tp_sandbox_config "$C"
: >"$C/tls_policy"
key="[127.0.0.1]:$TP_PORT"
run 0 "$T" -c "$C" set "$key" --fingerprint-from "127.0.0.1:$TP_PORT"
# Line 1 is the annotation set writes above the entry.
tp_install_cert "$TP_TMP/renewed.pem" "$TP_TMP/live.pem"
run 0 "$T" -q -c "$C" rotate --yes
[ ! -s "$TP_TMP/out" ] && [ ! -s "$TP_TMP/err" ] || fail "rotate -q printed: $(cat "$TP_TMP/out" "$TP_TMP/err")"
logged 6
expect_line 6 21 "$key: pinned $(tp_cert_fingerprint "$TP_TMP/renewed.crt") ($C/tls_policy:2): same public key as the pinned certificate (a renewal)"
echo "syslog: all passed"
