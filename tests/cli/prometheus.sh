# check --prometheus FILE: a node_exporter textfile, replaced atomically,
# with per entry status, days until the pinned certificate expires (and
# its notAfter), and the last successful probe, which survives a run that
# cannot reach the host. Checked line by line against the text format, and
# by node_exporter's own parser when prometheus-node-exporter is installed.
. "$TP_SOURCE_DIR/tests/lib.sh"

T=$TLSPOLICY
D=$TP_TMP/conf
mkdir -p "$D" "$TP_TMP/tf"
P=$TP_TMP/tf/tlspolicy.prom
printf '%s\n' 'compatibility_level = 3.6' \
    'smtp_tls_policy_maps = hash:${config_directory}/tls_policy' >"$D/main.cf"
tp_make_cert "$TP_TMP/a" mx.partner.test --days 10
cp "$TP_TMP/a.pem" "$TP_TMP/a.live"
tp_start_server a --cert "$TP_TMP/a.live"
PA=$TP_PORT
FP=$(tp_cert_fingerprint "$TP_TMP/a.crt")
NOTAFTER=$(date -d "$(openssl x509 -in "$TP_TMP/a.crt" -noout -enddate | sed 's/^notAfter=//')" +%s)
printf '%s\n' 'a.test MX 10 mx.a.test' 'mx.a.test A 127.0.0.1' >"$TP_TMP/zone"
tp_start_dns dns "$TP_TMP/zone"
export TLSPOLICY_DNS_SERVERS
TLSPOLICY_DNS_SERVERS=$(tp_dns_servers dns)
A=a.test:$PA
# A table path with a double quote and a key with a backslash: label
# values escape both. (Postfix never looks such a key up: UNKNOWN.)
export TBL=$TP_TMP/ta\"ble/tls_policy
mkdir "${TBL%/*}"
{
    printf '%s\tfingerprint match=%s\n' "$A" "$FP"
    printf 'qu\\ote.test\tfingerprint match=%s\n' "$FP"
} >"$TBL"
"$T" -c "$D" -m "hash:$TBL" rebuild >/dev/null

# value METRIC KEY: the sample's value, "" when absent.
esc() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }
value() {
    PREFIX="$1{table=\"$(esc "$TBL")\",key=\"$(esc "$2")\"} " awk '
        index($0, ENVIRON["PREFIX"]) == 1 { print $NF }' "$P"
}
# Strict checks of the text format: every line a comment (HELP/TYPE) or a
# sample of a family whose HELP and TYPE came first; names and label
# syntax valid; values numbers; no family twice; no timestamps.
validate() {
    awk '
        /^# HELP / { if ($3 in helped) { print "HELP twice: " $3; bad = 1 } helped[$3] = 1; next }
        /^# TYPE / { if ($4 != "gauge") { print "TYPE not gauge: " $0; bad = 1 } typed[$3] = 1; next }
        /^#/ { next }
        {
            if (!match($0, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) { print "bad name: " $0; bad = 1; next }
            name = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
            if (!(name in helped) || !(name in typed)) { print "no HELP/TYPE before: " $0; bad = 1 }
            if (rest ~ /^\{/) {
                lab = "^\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\",?)*\\} "
                if (!match(rest, lab)) { print "bad labels: " $0; bad = 1; next }
                rest = substr(rest, RLENGTH + 1)
            } else sub(/^ /, "", rest)
            if (rest !~ /^-?[0-9]+(\.[0-9]+)?$/) { print "bad value (or a timestamp): " $0; bad = 1 }
            if (last != name && (name in seen)) { print "family split: " name; bad = 1 }
            seen[name] = 1; last = name
        }
        END { exit bad }' "$P" || fail "$P is not valid text format: $(cat "$P")"
}

tp_note "a run that reaches everything"
before=$(date +%s)
tp_expect_status 1 "$T" -c "$D" -m "hash:$TBL" check --prometheus "$P"   # expires in 10 days: WARNING
after=$(date +%s)
validate
[ "$(value tlspolicy_entry_status "$A")" = 1 ] || fail "a.test status: $(cat "$P")"
[ "$(value tlspolicy_entry_status 'qu\ote.test')" = 3 ] || fail "escaped key: $(cat "$P")"
grep -qF 'ta\"ble/tls_policy",key="qu\\ote.test"} ' "$P" || fail "label values not escaped: $(cat "$P")"
days=$(value tlspolicy_pin_expiry_days "$A")
awk -v d="$days" 'BEGIN { exit !(d > 9.9 && d <= 10.0) }' || fail "expiry days $days, want about 10"
[ "$(value tlspolicy_pinned_cert_not_after_seconds "$A")" = "$NOTAFTER" ] ||
    fail "not_after $(value tlspolicy_pinned_cert_not_after_seconds "$A"), want $NOTAFTER"
ok1=$(value tlspolicy_last_success_timestamp_seconds "$A")
[ "$ok1" -ge "$before" ] && [ "$ok1" -le "$after" ] || fail "last success $ok1, want $before..$after"
grep -qxF "tlspolicy_check_status{table=\"${TBL//\"/\\\"}\"} 1" "$P" || fail "check status: $(cat "$P")"
[ "$(stat -c %a "$P")" = 644 ] || fail "mode $(stat -c %a "$P"), want 644 (node_exporter reads it as another user)"
[ -z "$(ls "$TP_TMP/tf" | grep -v '^tlspolicy.prom$')" ] || fail "left over: $(ls "$TP_TMP/tf")"

tp_note "host down: UNKNOWN, last success kept from the previous file, no expiry"
sleep 1.1
tp_stop_server a
tp_expect_status 3 "$T" -c "$D" -m "hash:$TBL" check --prometheus "$P" --timeout 2
validate
[ "$(value tlspolicy_entry_status "$A")" = 3 ] || fail "a.test status after the host died: $(cat "$P")"
[ "$(value tlspolicy_last_success_timestamp_seconds "$A")" = "$ok1" ] ||
    fail "last success not kept: got '$(value tlspolicy_last_success_timestamp_seconds "$A")', want $ok1"
[ -z "$(value tlspolicy_pin_expiry_days "$A")" ] || fail "expiry of an unreachable host: $(cat "$P")"

tp_note "the table cannot be read: check status 3, last success still kept"
tp_expect_status 3 "$T" -c "$TP_TMP/nowhere" check --prometheus "$P"
validate
grep -q '^tlspolicy_check_status{table=""} 3$' "$P" || fail "check status: $(cat "$P")"
[ "$(value tlspolicy_last_success_timestamp_seconds "$A")" = "$ok1" ] || fail "last success lost: $(cat "$P")"

tp_note "back up: a new last success"
tp_start_server a2 --cert "$TP_TMP/a.live" --listen "127.0.0.1:$PA"
tp_expect_status 1 "$T" -c "$D" -m "hash:$TBL" check --prometheus "$P"
ok2=$(value tlspolicy_last_success_timestamp_seconds "$A")
[ "$ok2" -gt "$ok1" ] || fail "last success $ok2, want > $ok1"

tp_note "cannot write the file: an error, and an OK check becomes UNKNOWN"
tp_expect_status 0 "$T" -c "$D" -m "hash:$TBL" check --warn-days 0 --prometheus "$P" "$A"
tp_expect_status 3 "$T" -c "$D" -m "hash:$TBL" check --warn-days 0 --prometheus "$TP_TMP/nodir/x.prom" "$A"
grep -q "^tlspolicy: cannot create a temporary file beside $TP_TMP/nodir/x.prom: No such file" "$TP_TMP/err" ||
    fail "no error naming the file: $(cat "$TP_TMP/err")"

if command -v prometheus-node-exporter >/dev/null; then
    tp_note "node_exporter's textfile collector parses it"
    tp_expect_status 1 "$T" -c "$D" -m "hash:$TBL" check --prometheus "$P"
    for try in 1 2 3 4 5; do
        port=$(( 20000 + RANDOM % 20000 ))
        prometheus-node-exporter --collector.disable-defaults --collector.textfile \
            --collector.textfile.directory="$TP_TMP/tf" --web.listen-address="127.0.0.1:$port" \
            >"$TP_TMP/ne.log" 2>&1 &
        NE=$!
        if tp_wait_until 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then break; fi
        kill "$NE" 2>/dev/null || true; wait "$NE" 2>/dev/null || true; NE=""
    done
    [ -n "$NE" ] || fail "node_exporter did not start: $(cat "$TP_TMP/ne.log")"
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    tr -d '\r' <&3 >"$TP_TMP/scrape"
    exec 3<&-
    kill "$NE"; wait "$NE" 2>/dev/null || true
    grep -q '^node_textfile_scrape_error 0$' "$TP_TMP/scrape" ||
        fail "node_exporter could not parse the file: $(grep -i textfile "$TP_TMP/scrape"; cat "$TP_TMP/ne.log")"
    grep -q "^tlspolicy_entry_status{key=\"$A\",table=" "$TP_TMP/scrape" ||
        fail "tlspolicy_entry_status not exported: $(grep tlspolicy "$TP_TMP/scrape")"
    grep -qF 'key="qu\\ote.test",table="'"$TP_TMP"'/ta\"ble/tls_policy"}' "$TP_TMP/scrape" || fail "escaped key not exported as is: $(grep tlspolicy "$TP_TMP/scrape")"
else
    tp_note "prometheus-node-exporter not installed: its parser not tried"
fi
echo "prometheus: all passed"
