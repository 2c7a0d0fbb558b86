# Full disk and I/O errors: on a small tmpfs, filled to various levels
# (nothing free; room for the source but not the db; room for half the
# db), read-only, and in a directory the user cannot write, every writing
# command (set of a new key, set of an existing one, remove, rebuild)
# fails with one clear line on stderr and exit 1, and leaves the source
# and the db byte for byte as they were, still readable by Postfix
# (postmap -q), with no temp file left. Then, with room again, the same
# commands succeed: the failures were the disk's, not ours.
# (Before tp_table_commit wrote both temps ahead of both renames, a set
# with room for the source but not the db replaced the source and failed.)
. "$TP_SOURCE_DIR/tests/lib.sh"
# TP_REL_MAP_TYPE: the table's type (hash by default; the _btree, _lmdb,
# _cdb and _texthash wrappers run the same test for those types).
MT=${TP_REL_MAP_TYPE:-hash}
case $MT in hash | btree) SFX=.db ;; texthash) SFX= ;; *) SFX=.$MT ;; esac
postconf -m | grep -qx "$MT" || fail "postconf -m lists no $MT: install postfix-$MT (the oracle)"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
T=$TLSPOLICY
M=$TP_TMP/fs
W=$TP_TMP/work
mkdir -p "$W"
tp_mount_tmpfs "$M" 3m
D=$M
S=$D/tls_policy
cat >"$D/main.cf" <<EOF
compatibility_level = 3.6
smtp_tls_policy_maps = ${MT}:\${config_directory}/tls_policy
EOF
"$TP_TOOLS_DIR/gen_policy" bench 3 1000 "$S" || fail "gen_policy failed"
"$T" -c "$D" set known.example --level encrypt >/dev/null || fail "first set failed"
cp "$S" "$W/src" && cp "$S$SFX" "$W/db"
ssize=$(stat -c %s "$S") dbsize=$(stat -c %s "$S$SFX")
tp_note "source $ssize bytes, db $dbsize bytes, on a $(df -k --output=size "$M" | tail -n 1) KB tmpfs"

# fill FREE: leave about FREE bytes free on the tmpfs.
fill() {
    rm -f "$M/filler"
    dd if=/dev/zero of="$M/filler" bs=64k 2>/dev/null || true
    dd if=/dev/zero of="$M/filler" bs=4k oflag=append conv=notrunc 2>/dev/null || true
    [ "$1" = 0 ] || truncate -s "-$1" "$M/filler"
}

# intact LABEL: the old files are there, byte for byte, and Postfix reads them.
intact() {
    cmp -s "$S" "$W/src" || fail "$1: the source changed"
    cmp -s "$S$SFX" "$W/db" || fail "$1: the db changed"
    [ "$(postmap -c "$D" -q known.example "$MT:$S")" = encrypt ] ||
        fail "$1: postmap -q known.example no longer finds it"
    [ -z "$(find "$D" -name '*.tmp.*')" ] || fail "$1: temp files left: $(find "$D" -name '*.tmp.*')"
}

# must_fail LABEL PATTERN [RUNAS...] -- COMMAND ARGS: exit 1, one line
# "tlspolicy: ..." matching PATTERN (grep -E) on stderr, files intact.
must_fail() {
    local label=$1 pat=$2 rc=0
    shift 2
    "$@" >"$W/out" 2>"$W/err" || rc=$?
    [ "$rc" = 1 ] || fail "$label: exit $rc, want 1 (stderr: $(cat "$W/err"))"
    [ "$(wc -l <"$W/err")" = 1 ] || fail "$label: want one line on stderr, got: $(cat "$W/err")"
    grep -Eq "^tlspolicy: .*($pat)" "$W/err" || fail "$label: stderr '$(cat "$W/err")' does not say /$pat/"
    tp_note "  $label: $(cat "$W/err")"
    intact "$label"
}

writers() {  # LABEL PATTERN [PREFIX...]: every writing command fails
    local label=$1 pat=$2
    shift 2
    must_fail "$label: set of a new key" "$pat" "$@" "$T" -c "$D" set new.example --level may
    must_fail "$label: set of an existing key" "$pat" "$@" "$T" -c "$D" set known.example --level secure
    must_fail "$label: remove" "$pat" "$@" "$T" -c "$D" remove known.example
    if [ "$MT" = texthash ]; then
        # No database: rebuild writes nothing. It succeeds where it can
        # take the table's lock (a full disk), else fails as the others.
        if "$@" "$T" -c "$D" rebuild >"$W/out" 2>"$W/err"; then
            intact "$label: rebuild"
        else
            must_fail "$label: rebuild" "$pat" "$@" "$T" -c "$D" rebuild
        fi
    else
        must_fail "$label: rebuild" "$pat" "$@" "$T" -c "$D" rebuild
    fi
}

# Room for the new source but not the db, or for half the db: rebuild
# needs the db's room, set and remove the source's and the db's. A
# texthash: table is its source: room for half of it.
if [ "$MT" = texthash ]; then
    levels="0 4096 $((ssize / 2))"
else
    [ "$dbsize" -gt $((ssize + 16384)) ] || fail "the db should be larger than the source plus 16 KB"
    levels="0 4096 $((dbsize / 2)) $((ssize + 8192))"
fi
for free in $levels; do
    tp_note "full disk: about $free bytes free"
    fill "$free"
    writers "$free bytes free" "No space left on device"
done

tp_note "read-only file system"
rm -f "$M/filler"
mount -o remount,ro "$M" || fail "remount read-only failed"
writers "read-only" "Read-only file system"
mount -o remount,rw "$M" || fail "remount read-write failed"

tp_note "a directory the user cannot write (as nobody)"
# A copy nobody can run: the build tree may be in a directory only we enter.
TN=$(tp_tlspolicy_for_others)
chown nobody "$S" "$S$SFX" "$S.lock"
cp -p "$S$SFX" "$W/db"
chmod 555 "$D"
runuser -u nobody -- "$TN" -c "$D" list >/dev/null 2>"$W/err" ||
    fail "nobody cannot run $TN: $(cat "$W/err")"
T0=$T T=$TN
writers "unwritable directory" "Permission denied" runuser -u nobody --
T=$T0
chmod 755 "$D"
chown root "$S" "$S$SFX" "$S.lock"
cp -p "$S$SFX" "$W/db"

tp_note "with room again, the same commands succeed"
"$T" -c "$D" set new.example --level may >/dev/null || fail "set after the disk was freed failed"
[ "$(postmap -c "$D" -q new.example "$MT:$S")" = may ] || fail "postmap -q new.example after the disk was freed"
"$T" -c "$D" remove new.example >/dev/null || fail "remove after the disk was freed failed"
"$T" -c "$D" rebuild || fail "rebuild after the disk was freed failed"
cmp -s "$S" "$W/src" || fail "set + remove did not give the original source back"
