# libtlspolicy(3) is lint clean and its SYNOPSIS declares every function
# the public headers export (TP_EXTERN), and no other: a new public function
# must be documented, a removed one must leave the page.
. "$TP_SOURCE_DIR/tests/lib.sh"
command -v mandoc >/dev/null || fail "mandoc not found: install mandoc"

man=$TP_SOURCE_DIR/docs/libtlspolicy.3
mandoc -Tlint -W warning "$man" || fail "mandoc -Tlint reports problems in $man"

cat "$TP_SOURCE_DIR"/include/tlspolicy.h "$TP_SOURCE_DIR"/include/tlspolicy/*.h |
    tr '\n' ' ' | grep -oE 'TP_EXTERN\([^)]*\)[[:space:]*]*[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(' |
    sed -E 's/^TP_EXTERN\([^)]*\)[[:space:]*]*//; s/[[:space:]]*\($//' | sort -u >"$TP_TMP/declared"
[ "$(wc -l <"$TP_TMP/declared")" -gt 50 ] || fail "too few TP_EXTERN declarations found: the pattern is broken"
awk '/^\.Sh SYNOPSIS/ { s = 1; next } /^\.Sh / { s = 0 } s && /^\.Fo / { print $2 }' "$man" |
    sort -u >"$TP_TMP/documented"
if ! diff -u "$TP_TMP/declared" "$TP_TMP/documented" >"$TP_TMP/diff"; then
    cat "$TP_TMP/diff" >&2
    fail "the SYNOPSIS of libtlspolicy(3) and the TP_EXTERN functions of include/ differ (- undocumented, + not in the headers)"
fi
# Each function's return type in the page is the header's.
while read -r fn; do
    want=$(cat "$TP_SOURCE_DIR"/include/tlspolicy/*.h | tr '\n' ' ' |
        grep -oE "TP_EXTERN\([^)]*\)[[:space:]]*$fn[[:space:]]*\(" | sed -E 's/^TP_EXTERN\(([^)]*)\).*/\1/')
    got=$(awk -v fn="$fn" '/^\.Ft / { ft = substr($0, 5); gsub(/"/, "", ft) } $1 == ".Fo" && $2 == fn { print ft }' "$man")
    [ "$got" = "$want" ] || fail "libtlspolicy(3): $fn returns '$got', the header says '$want'"
done <"$TP_TMP/declared"
echo "libmanpage: $(wc -l <"$TP_TMP/declared") functions documented; all passed"
