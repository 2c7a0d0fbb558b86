# check and rotate show "probing N/M addresses..." on stderr while they
# probe, only when stderr is a terminal (script(1) gives them one) and not
# with -q, and erase it before printing anything else: nothing of it in a
# file, in a pipe, or after the run.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need script

T=$TLSPOLICY
D=$TP_TMP/conf
mkdir -p "$D"
printf '%s\n' 'compatibility_level = 3.6' \
    'smtp_tls_policy_maps = hash:${config_directory}/tls_policy' >"$D/main.cf"
tp_make_cert "$TP_TMP/a" mx.partner.test
# Twelve next hops, [127.0.0.N]:PORT, on one slow server listening on all.
tp_start_server slow --cert "$TP_TMP/a.pem" --mode slow --delay 0.1 \
    $(for i in $(seq 1 12); do printf -- '--listen 127.0.0.%s:0 ' "$i"; done)
FP=$(tp_cert_fingerprint "$TP_TMP/a.crt")
for i in $(seq 1 12); do
    printf '[127.0.0.%s]:%s\tfingerprint match=%s\n' "$i" "$TP_PORT" "$FP"
done >"$D/tls_policy"
"$T" -c "$D" rebuild >/dev/null

# on_tty OUT CMD...: runs CMD with stdin, stdout and stderr on a pty.
on_tty() {
    local out=$1 q
    shift
    printf -v q '%q ' "$@"
    script -qec "$q" /dev/null </dev/null >"$out" || true
}

tp_note "check on a terminal: progress shown, then erased"
on_tty "$TP_TMP/tty" "$T" -c "$D" check --jobs 2
grep -aq $'\rprobing [0-9]*/12 addresses\.\.\.' "$TP_TMP/tty" ||
    fail "no progress line on the terminal: $(cat -v "$TP_TMP/tty")"
# Each drawing is erased before the summary: the last one is followed by
# "\r ESC[K" and then the report.
tr -d '\n' <"$TP_TMP/tty" | grep -aq $'\\.\\.\\.\033\\[K\r\033\\[KTLSPOLICY OK - ' ||
    fail "progress not erased before the report: $(cat -v "$TP_TMP/tty")"
n=$(grep -ao $'\rprobing' "$TP_TMP/tty" | wc -l)
# 12 probes of 4 replies x 0.1 s, 2 at once: about 2.4 s, so at most ~25
# redraws at 10 a second; one per probe would also pass, one per event not.
[ "$n" -ge 2 ] && [ "$n" -le 30 ] || fail "progress drawn $n times, want 2 to 30"

tp_note "rotate on a terminal too"
on_tty "$TP_TMP/tty" "$T" -c "$D" rotate --jobs 2
grep -aq $'\rprobing [0-9]*/12 addresses\.\.\.' "$TP_TMP/tty" ||
    fail "rotate: no progress line: $(cat -v "$TP_TMP/tty")"
grep -aq 'all pins current' "$TP_TMP/tty" || fail "rotate: $(cat -v "$TP_TMP/tty")"

tp_note "-q on a terminal: none"
on_tty "$TP_TMP/tty" "$T" -q -c "$D" check --jobs 12
grep -aq 'TLSPOLICY OK' "$TP_TMP/tty" || fail "-q check: $(cat -v "$TP_TMP/tty")"
! grep -aq 'probing' "$TP_TMP/tty" || fail "-q: progress shown: $(cat -v "$TP_TMP/tty")"

tp_note "stderr to a file or a pipe: none"
"$T" -c "$D" check --jobs 12 >"$TP_TMP/out" 2>"$TP_TMP/err" || fail "check: $(cat "$TP_TMP/err")"
[ ! -s "$TP_TMP/err" ] || fail "stderr not empty: $(cat -v "$TP_TMP/err")"
"$T" -c "$D" rotate --jobs 12 2>&1 | cat >"$TP_TMP/out"
! grep -aq 'probing' "$TP_TMP/out" || fail "progress in a pipe: $(cat -v "$TP_TMP/out")"
# stdout on a terminal but stderr to a file: still none (it is stderr's).
on_tty "$TP_TMP/tty" sh -c '"$0" -c "$1" check --jobs 2 2>"$2"' "$T" "$D" "$TP_TMP/err"
[ ! -s "$TP_TMP/err" ] || fail "stderr file not empty: $(cat -v "$TP_TMP/err")"
! grep -aq 'probing' "$TP_TMP/tty" || fail "progress with stderr to a file: $(cat -v "$TP_TMP/tty")"
echo "progress: all passed"
