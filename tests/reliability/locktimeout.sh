# Waits have an end: any local user who can read the db (it is
# world-readable) can hold a lock on it, and a stuck tlspolicy can hold
# the table's lock file. With the lock held by someone else (util-linux
# flock(1) stands in for them), every command gives up after
# --lock-timeout with exit 1 and one line naming the file and the
# process holding it, and leaves source and db as they were; once the
# lock is let go the same commands work. The default is in --help.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
command -v flock >/dev/null || fail "flock not found: install util-linux"
T=$TLSPOLICY
D=$TP_TMP/conf
W=$TP_TMP/work
mkdir -p "$D" "$W"
tp_sandbox_config "$D"
S=$D/tls_policy
printf 'known.example encrypt\n' >"$S"
"$T" -c "$D" rebuild || fail "rebuild failed"
"$T" -c "$D" set other.example --level may >/dev/null || fail "first set failed (makes the lock file)"
cp "$S" "$W/src" && cp "$S.db" "$W/db"

"$T" --help | grep -q -- '--lock-timeout S' || fail "--help does not document --lock-timeout"
"$T" --help | grep -q 'default 60' || fail "--help does not give --lock-timeout's default"
tp_expect_status 64 "$T" --lock-timeout soon -c "$D" list
tp_expect_status 64 "$T" --lock-timeout -1 -c "$D" list

# hold MODE FILE: flock(1) holds FILE (-x or -s) until release; sets
# HOLDER. -o: flock itself holds the lock, not the sleep it starts.
hold() {
    rm -f "$W/held"
    flock -o "$1" "$2" sh -c "echo \$\$ >'$W/held'; exec sleep 120" >/dev/null 2>&1 &
    HOLDER=$!
    tp_wait_until 10 test -s "$W/held" || fail "flock $1 $2 did not take the lock"
    SLEEPER=$(cat "$W/held")
    TP_PIDS=("$HOLDER")
}
release() {
    kill "$HOLDER" "$SLEEPER" 2>/dev/null || true
    wait "$HOLDER" 2>/dev/null || true
    TP_PIDS=()
}

# gives_up LABEL FILE COMMAND...: exit 1, one line naming FILE and the holder.
gives_up() {
    local label=$1 file=$2 rc=0
    shift 2
    "$@" >"$W/out" 2>"$W/err" </dev/null || rc=$?
    [ "$rc" = 1 ] || fail "$label: exit $rc, want 1 (stderr: $(cat "$W/err"))"
    [ "$(wc -l <"$W/err")" = 1 ] || fail "$label: want one line on stderr, got: $(cat "$W/err")"
    grep -q "^tlspolicy: $file is still locked after 1 s, by pid $HOLDER (flock)" "$W/err" ||
        fail "$label: got '$(cat "$W/err")', want the file and 'by pid $HOLDER (flock)'"
    cmp -s "$S" "$W/src" || fail "$label: the source changed"
    cmp -s "$S.db" "$W/db" || fail "$label: the db changed"
    [ -z "$(find "$D" -name '*.tmp.*')" ] || fail "$label: temp files left: $(find "$D" -name '*.tmp.*')"
    tp_note "  $label: $(cat "$W/err")"
}

tp_note "the table's lock file held by another writer"
hold -x "$S.lock"
gives_up "set" "$S.lock" "$T" --lock-timeout 1 -c "$D" set new.example --level may
gives_up "remove" "$S.lock" "$T" --lock-timeout 1 -c "$D" remove known.example
gives_up "rebuild" "$S.lock" "$T" --lock-timeout 1 -c "$D" rebuild
release

tp_note "the db held shared, as any reader may: writers give up before renaming anything"
hold -s "$S.db"
gives_up "set" "$S.db" "$T" --lock-timeout 1 -c "$D" set new.example --level may
gives_up "remove" "$S.db" "$T" --lock-timeout 1 -c "$D" remove known.example
gives_up "rebuild" "$S.db" "$T" --lock-timeout 1 -c "$D" rebuild
# Readers share it.
[ "$("$T" --lock-timeout 0 -c "$D" get known.example)" = encrypt ] || fail "get under a shared lock"
release

tp_note "the db held exclusively, as postmap does while it rewrites: readers give up"
hold -x "$S.db"
gives_up "get" "$S.db" "$T" --lock-timeout 1 -c "$D" get known.example
gives_up "list" "$S.db" "$T" --lock-timeout 1 -c "$D" list
release

tp_note "let go, the same commands work (and --lock-timeout 0 does not wait for nothing)"
"$T" --lock-timeout 0 -c "$D" set new.example --level may >/dev/null || fail "set after the locks were let go"
[ "$(postmap -c "$D" -q new.example "hash:$S")" = may ] || fail "postmap -q new.example"
"$T" --lock-timeout 0 -c "$D" list >/dev/null || fail "list after the locks were let go"
