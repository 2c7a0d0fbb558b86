# --dry-run's diff costs about the size of the table, not lines times
# lines times line length: removing the first and last of 4,093 lines,
# with 4,091 long and alike lines between them (a 33 MB table), prints the
# two-line diff patch(1) turns into what the real run writes, within a
# few CPU seconds. (Comparing lines byte by byte at each of the 16M cells
# of the LCS table took over ten CPU seconds here, minutes for longer
# lines.) CPU time, not wall time: a loaded machine does not change it.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v patch >/dev/null || fail "patch not found: install patch"
T=$TLSPOLICY
D=$TP_TMP/conf
mkdir -p "$D"
tp_sandbox_config "$D"
S=$D/tls_policy
long=$(head -c 8160 /dev/zero | tr '\0' x)
{
    echo "dup.example may"
    for ((i = 0; i < 4091; i++)); do
        echo "b.example encrypt protocols=$long"
    done
    echo "dup.example may"
} >"$S"
cp "$S" "$TP_TMP/pre"

tp_note "remove --dry-run of two lines of a $(($(wc -c <"$S") / 1048576)) MB table, at most 8 CPU seconds"
rc=0
(ulimit -t 8; exec "$T" -c "$D" remove dup.example --dry-run) >"$TP_TMP/out" 2>"$TP_TMP/err" || rc=$?
[ "$rc" = 0 ] || fail "remove --dry-run: exit $rc (137 or 152: killed for using over 8 CPU seconds): $(head -c 300 "$TP_TMP/err")"
cmp -s "$S" "$TP_TMP/pre" || fail "--dry-run wrote the source"
[ "$(grep -c '^-dup.example may$' "$TP_TMP/out")" = 2 ] && [ "$(grep -c '^+' "$TP_TMP/out")" = 1 ] ||
    fail "want a diff removing the two dup.example lines: $(grep -c '^[-+]' "$TP_TMP/out") changed lines"
cp "$TP_TMP/pre" "$TP_TMP/patched"
patch -s "$TP_TMP/patched" <"$TP_TMP/out" || fail "the diff does not apply: $(head -c 300 "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" remove dup.example
cmp -s "$S" "$TP_TMP/patched" || fail "the dry-run diff and the real run differ"
