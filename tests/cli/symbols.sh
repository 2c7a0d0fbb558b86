# libtlspolicy exports exactly the functions its public headers declare
# with TP_EXTERN, all under the TLSPOLICY_0 version node: a public function
# that does not make it into the ABI (declared but not defined, or hidden)
# and an internal one that leaks out both fail here, whoever adds them.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need nm

lib=$TP_BINARY_DIR/libtlspolicy.so
[ -e "$lib" ] || fail "$lib not built"

# Declared: every TP_EXTERN(type) name( in include/, across line breaks.
cat "$TP_SOURCE_DIR"/include/tlspolicy.h "$TP_SOURCE_DIR"/include/tlspolicy/*.h |
    tr '\n' ' ' | grep -oE 'TP_EXTERN\([^)]*\)[[:space:]*]*[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(' |
    sed -E 's/^TP_EXTERN\([^)]*\)[[:space:]*]*//; s/[[:space:]]*\($//' |
    sort -u >"$TP_TMP/declared"
[ "$(wc -l <"$TP_TMP/declared")" -gt 50 ] ||
    fail "found only $(wc -l <"$TP_TMP/declared") TP_EXTERN declarations in include/: the pattern is broken"

# Exported: defined dynamic symbols, without the version node itself.
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' |
    sort -u >"$TP_TMP/exported"

if ! diff -u "$TP_TMP/declared" "$TP_TMP/exported" >"$TP_TMP/diff"; then
    cat "$TP_TMP/diff" >&2
    fail "exports of $lib differ from the TP_EXTERN declarations in include/ (- declared only, + exported only)"
fi

# Every export carries the version node (the version script was applied).
if command -v objdump >/dev/null; then
    unversioned=$(objdump -T "$lib" | awk '$NF ~ /^tp_/ && $(NF-1) != "TLSPOLICY_0" { print $NF }')
    [ -z "$unversioned" ] || fail "exported without version TLSPOLICY_0: $unversioned"
fi

# SONAME: libtlspolicy.so.0, and the link-time name points at it.
if command -v objdump >/dev/null; then
    soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
    [ "$soname" = libtlspolicy.so.0 ] || fail "SONAME: got '$soname', want libtlspolicy.so.0"
fi
echo "symbols: $(wc -l <"$TP_TMP/exported") exported, all declared; all passed"
