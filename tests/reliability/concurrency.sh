# Concurrency: the table lock queues writers, and the db is replaced so a
# Postfix reader never sees a half-built table.
#   1. 40 `set`s of different keys started at once: every one succeeds and
#      no update is lost, in the source or in the db (real postmap -q).
#   2. Real Postfix readers (`postmap -q` in loops) during 300 rewrites
#      (set, which updates a copy of the db, and rebuild, which builds it
#      whole): a key present in every version is always found
#      with its value, a key being rewritten is always found with its old
#      or new value, and no lookup ever fails or warns.
. "$TP_SOURCE_DIR/tests/lib.sh"
# TP_REL_MAP_TYPE: the table's type (hash by default; the _btree, _lmdb,
# _cdb and _texthash wrappers run the same test for those types).
MT=${TP_REL_MAP_TYPE:-hash}
case $MT in hash | btree) SFX=.db ;; texthash) SFX= ;; *) SFX=.$MT ;; esac
postconf -m | grep -qx "$MT" || fail "postconf -m lists no $MT: install postfix-$MT (the oracle)"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
T=$TLSPOLICY
D=$TP_TMP/conf
W=$TP_TMP/work
mkdir -p "$D" "$W"
cat >"$D/main.cf" <<EOF
compatibility_level = 3.6
smtp_tls_policy_maps = ${MT}:\${config_directory}/tls_policy
EOF
S=$D/tls_policy
"$TP_TOOLS_DIR/gen_policy" bench 11 2000 "$S" || fail "gen_policy failed"
"$T" -c "$D" rebuild 2>/dev/null || fail "rebuild failed"
pq() { postmap -c "$D" -q "$1" "$MT:$S"; }

tp_note "40 parallel sets of different keys"
N=40
pids=()
for ((i = 0; i < N; i++)); do
    "$T" -c "$D" set "par$i.example" --level encrypt --attr "protocols=>=TLSv1.2" \
        >"$W/set$i.out" 2>"$W/set$i.err" &
    pids+=($!)
done
for ((i = 0; i < N; i++)); do
    wait "${pids[$i]}" || fail "set par$i.example: exit $?: $(cat "$W/set$i.err")"
done
for ((i = 0; i < N; i++)); do
    grep -q "^par$i\.example[[:space:]]" "$S" || fail "lost update: par$i.example is not in the source"
    got=$(pq "par$i.example" 2>&1) || fail "lost update: postmap -q par$i.example: not in the db ($got)"
    [ "$got" = "encrypt protocols=>=TLSv1.2" ] || fail "postmap -q par$i.example: got '$got'"
done
[ "$(grep -c '^par[0-9]*\.example' "$S")" = "$N" ] || fail "want $N par*.example entries, got $(grep -c '^par' "$S")"
"$T" -c "$D" doctor >"$W/doctor" 2>&1 || true
if [ "$MT" = texthash ]; then
    grep -q "^ok: texthash:$S has no database" "$W/doctor" || fail "doctor on texthash:$S: $(cat "$W/doctor")"
else
    grep -q "^ok: $S$SFX holds what $S says" "$W/doctor" || fail "db not in step after parallel sets: $(grep "$S$SFX" "$W/doctor")"
fi
[ -z "$(find "$D" -name '*.tmp.*')" ] || fail "temp files left: $(find "$D" -name '*.tmp.*')"

tp_note "Postfix readers during 300 rewrites"
# Three keys present in every version: first, middle and last in the file.
mapfile -t keys < <(grep -v '^[#[:space:]]' "$S" | grep -v '^par\|^$' | awk '{print $1}' | sed -n '1p;1000p;$p')
[ "${#keys[@]}" = 3 ] || fail "could not pick three keys"
for k in "${keys[@]}"; do
    pq "$k" >"$W/want.$(echo "$k" | md5sum | cut -c1-8)" || fail "postmap -q $k before the run failed"
done
"$T" -c "$D" set toggle.example --level may >/dev/null || fail "set toggle.example failed"

# reader ID KEY...: look the keys up until the writer is done; every
# problem is one line in $W/reader.ID.bad; the count goes to .n.
reader() {
    local id=$1 n=0 k got h
    shift
    : >"$W/reader.$id.bad"
    while [ ! -e "$W/writer.done" ]; do
        for k in "$@"; do
            if ! got=$(postmap -c "$D" -q "$k" "$MT:$S" 2>"$W/reader.$id.err"); then
                echo "postmap -q $k: exit status $? ($(cat "$W/reader.$id.err"))" >>"$W/reader.$id.bad"
            elif [ -s "$W/reader.$id.err" ]; then
                echo "postmap -q $k warned: $(cat "$W/reader.$id.err")" >>"$W/reader.$id.bad"
            elif [ "$k" = toggle.example ]; then
                case $got in may|encrypt) ;; *) echo "toggle.example: got '$got'" >>"$W/reader.$id.bad" ;; esac
            else
                h=$(echo "$k" | md5sum | cut -c1-8)
                [ "$got" = "$(cat "$W/want.$h")" ] || echo "$k: got '$got'" >>"$W/reader.$id.bad"
            fi
            n=$((n + 1))
        done
    done
    echo "$n" >"$W/reader.$id.n"
}
reader 1 "${keys[@]}" toggle.example &
r1=$!
reader 2 toggle.example "${keys[0]}" &
r2=$!

REWRITES=${TP_REL_REWRITES:-300}
for ((i = 0; i < REWRITES; i++)); do
    if [ $((i % 10)) = 9 ]; then
        "$T" -c "$D" rebuild 2>"$W/writer.err" || { touch "$W/writer.done"; fail "rebuild $i: $(cat "$W/writer.err")"; }
    elif [ $((i % 2)) = 0 ]; then
        "$T" -c "$D" set toggle.example --level encrypt >"$W/writer.out" 2>"$W/writer.err" ||
            { touch "$W/writer.done"; fail "set $i: $(cat "$W/writer.err")"; }
        # The readers see the incremental writes: a copy of the db with
        # the changed record (hash, btree; lmdb and cdb are built whole).
        case $MT in
            hash | btree) grep -q "db updated" "$W/writer.out" ||
                { touch "$W/writer.done"; fail "set $i did not update the db in a copy: $(cat "$W/writer.out")"; } ;;
        esac
    else
        "$T" -c "$D" set toggle.example --level may >/dev/null 2>"$W/writer.err" ||
            { touch "$W/writer.done"; fail "set $i: $(cat "$W/writer.err")"; }
    fi
    # Postfix reads a texthash: source whole, and waits for a file changed in
    # the last second to cool down first: a lookup needs a pause.
    [ "$MT" != texthash ] || sleep 1.5
done
touch "$W/writer.done"
wait "$r1" "$r2"
n1=$(cat "$W/reader.1.n") n2=$(cat "$W/reader.2.n")
tp_note "$REWRITES rewrites, $((n1 + n2)) lookups by postmap -q"
if [ -s "$W/reader.1.bad" ] || [ -s "$W/reader.2.bad" ]; then
    fail "a Postfix reader saw a broken table: $(cat "$W/reader.1.bad" "$W/reader.2.bad" | sort | uniq -c | head -n 5)"
fi
[ "$((n1 + n2))" -ge $((REWRITES * 2 / 3)) ] || fail "only $((n1 + n2)) lookups during the rewrites: the readers did not overlap them"
[ -z "$(find "$D" -name '*.tmp.*')" ] || fail "temp files left: $(find "$D" -name '*.tmp.*')"
