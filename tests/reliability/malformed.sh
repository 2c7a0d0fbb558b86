# Malformed policy files of every kind through the CLI: binary noise, NUL
# bytes, a 10 MB line (with and without a final newline), invalid UTF-8
# (smtputf8 on and off), CR-only line ends, a first line that starts with
# whitespace, an empty file. list, list --json, doctor, rebuild, set and
# get never crash (exit 0 or 1, every stderr line "tlspolicy: ...", no
# sanitizer report); rebuild warns "FILE, line N" for exactly the lines
# real postmap warns about and writes exactly postmap's records; doctor
# names each skipped line as FILE:N.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
T=$TLSPOLICY
W=$TP_TMP/work
mkdir -p "$W"
# 10 MB files fsynced a few dozen times: on a tmpfs when we can.
B=$TP_TMP
if [ "$(id -u)" = 0 ]; then B=$TP_TMP/fs; tp_mount_tmpfs "$B" 512m; fi

# cases/NAME: the files. Deterministic bytes (AES-CTR of zeros) for noise.
C=$B/cases
mkdir -p "$C"
noise() { openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv 0 -nosalt </dev/zero 2>/dev/null | head -c "$1" || true; }
noise 65536 >"$C/binary"
{ echo "good.example may"; noise 4096; printf '\nlast.example encrypt\n'; } >"$C/binary_mixed"
printf 'a.example may\nnul\0key.example encrypt\nb.example enc\0rypt\n\0\0\0\nc.example may\n' >"$C/nul"
{ printf 'big.example '; head -c 10485760 /dev/zero | tr '\0' 'x'; printf '\nsmall.example may\n'; } >"$C/huge_line"
{ printf 'first.example may\n'; head -c 10485760 /dev/zero | tr '\0' 'k'; } >"$C/huge_no_newline"
printf 'ok.example may\n\xff\xfe.example may\nk\xc3\x28.example encrypt\nval.example fingerprint match=\xe2\x82\n\xc3\xa9t\xc3\xa9.example may\n' >"$C/bad_utf8"
printf 'a.example may\rb.example encrypt\r\rc.example may\r' >"$C/cr_only"
printf '  starts.with.space may\nnext.example may\n\t\n#c\nnovalue\n' >"$C/leading_ws"
: >"$C/empty"

run() {  # LABEL COMMAND...: exit 0 or 1, clean stderr
    local label=$1 rc=0
    shift
    "$@" >"$W/out" 2>"$W/err" || rc=$?
    [ "$rc" -le 1 ] || fail "$label: exit $rc: $(head -c 500 "$W/err")"
    if grep -Eq 'Sanitizer|runtime error|Segmentation|Aborted|core dumped' "$W/err"; then
        fail "$label: $(head -n 5 "$W/err")"
    fi
    if grep -qv '^tlspolicy: ' "$W/err"; then
        fail "$label: stderr line not in tlspolicy's form: $(grep -v '^tlspolicy: ' "$W/err" | head -c 300)"
    fi
    RC=$rc
}

# The oracle: postmap on a copy, same main.cf. postmap takes about two
# seconds of wall time for a new db, idle: all of them at once.
oracles=()
for utf8 in yes no; do
    for f in "$C"/*; do
        name=${f##*/}
        for dir in "$B/conf-$name-$utf8" "$B/oracle-$name-$utf8"; do
            mkdir -p "$dir"
            printf 'compatibility_level = 3.6\nsmtputf8_enable = %s\nsmtp_tls_policy_maps = hash:${config_directory}/tls_policy\n' "$utf8" >"$dir/main.cf"
            cp "$f" "$dir/tls_policy"
        done
        O=$B/oracle-$name-$utf8
        postmap -c "$O" "hash:$O/tls_policy" 2>"$O/postmap.err" &
        oracles+=($!)
    done
done
for p in "${oracles[@]}"; do
    wait "$p" || fail "postmap failed on one of the cases: $(cat "$B"/oracle-*/postmap.err | head -c 300)"
done

for utf8 in yes no; do
    for f in "$C"/*; do
        name=${f##*/}
        D=$B/conf-$name-$utf8
        O=$B/oracle-$name-$utf8
        S=$D/tls_policy
        label="$name (smtputf8 $utf8)"
        tp_note "$label"
        run "$label: rebuild" "$T" -c "$D" rebuild
        [ "$RC" = 0 ] || fail "$label: rebuild failed: $(head -c 300 "$W/err")"
        grep -oE "^tlspolicy: warning: $S, line [0-9]+:" "$W/err" | grep -oE 'line [0-9]+' | sort -u >"$W/ours" || true
        grep -oE "$O/tls_policy, line [0-9]+:" "$O/postmap.err" | grep -oE 'line [0-9]+' | sort -u >"$W/theirs" || true
        cmp -s "$W/ours" "$W/theirs" ||
            fail "$label: rebuild warns about $(tr '\n' ' ' <"$W/ours"), postmap about $(tr '\n' ' ' <"$W/theirs")"
        cmp -s <(postmap -c "$D" -s "hash:$S" | LC_ALL=C sort) <(postmap -c "$O" -s "hash:$O/tls_policy" | LC_ALL=C sort) ||
            fail "$label: the db's records differ from postmap's"
        run "$label: list" "$T" -c "$D" list
        run "$label: list --json" "$T" -c "$D" list --json
        [ "$RC" != 0 ] || jq -e . "$W/out" >/dev/null || fail "$label: list --json is not JSON"
        run "$label: doctor" "$T" -c "$D" doctor
        while read -r l; do
            n=${l#line }
            grep -q "^warning: $S:$n: " "$W/out" || fail "$label: doctor does not name $S:$n"
        done <"$W/ours"
        run "$label: get" "$T" -c "$D" get good.example
        run "$label: set" "$T" -c "$D" set added.example --level encrypt
        [ "$RC" = 0 ] || fail "$label: set failed: $(head -c 300 "$W/err")"
        [ "$(postmap -c "$D" -q added.example "hash:$S")" = encrypt ] || fail "$label: set did not reach the db"
        rm -rf "$D" "$O"
    done
done
