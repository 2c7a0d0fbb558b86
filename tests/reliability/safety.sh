# Safety of the write protocol against a hostile directory, and doctor's
# permission checks:
#   - no shell: src/ never calls system() or popen() nor execs a shell;
#   - every file set, remove and rebuild create is created beside the
#     table with O_EXCL (strace is the witness), except the lock file,
#     which is reused and opened with O_NOFOLLOW, and libdb's files inside
#     the private 0700 directory we just made; nothing is written,
#     renamed, removed or chmod'ed outside the table's directory;
#   - a symlink planted at the lock path, at temp-like names, or at the db
#     is not followed: the victim outside the directory stays unchanged;
#   - doctor warns about a source or db writable by group or others and
#     about a db owned by someone else than its source.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
command -v strace >/dev/null || fail "strace not found: install strace (the witness of every file operation)"
T=$TLSPOLICY
D=$TP_TMP/conf
V=$TP_TMP/victim
W=$TP_TMP/work
mkdir -p "$D" "$V" "$W"
cat >"$D/main.cf" <<'EOF'
compatibility_level = 3.6
smtp_tls_policy_maps = hash:${config_directory}/tls_policy
EOF
S=$D/tls_policy
"$TP_TOOLS_DIR/gen_policy" bench 5 200 "$S" || fail "gen_policy failed"
"$T" -c "$D" rebuild || fail "rebuild failed"
echo "precious" >"$V/file"
mkdir "$V/dir" && echo "precious" >"$V/dir/tls_policy.db" && echo "precious" >"$V/dir/__db.tls_policy.db"
victim_intact() {
    [ "$(cat "$V/file")" = precious ] || fail "$1: the victim file outside the table's directory changed"
    [ "$(cat "$V/dir/tls_policy.db")" = precious ] && [ "$(cat "$V/dir/__db.tls_policy.db")" = precious ] ||
        fail "$1: the victim directory's files changed"
}

tp_note "no shell runs a command: no system(), popen() or sh -c in src/"
if grep -rnE '(^|[^_[:alnum:]])(system|popen)[[:space:]]*\(' "$TP_SOURCE_DIR/src" >"$W/grep"; then
    fail "src/ calls a shell: $(cat "$W/grep")"
fi
if grep -rnE '"/bin/(ba)?sh"|"(ba)?sh"[[:space:]]*,[[:space:]]*"-c"|exec[lv]p?e?[[:space:]]*\([[:space:]]*"(ba)?sh"' "$TP_SOURCE_DIR/src" >"$W/grep"; then
    fail "src/ execs a shell or builds a command line: $(cat "$W/grep")"
fi

# trace LABEL COMMAND...: run under strace, then check every file operation.
trace() {
    local label=$1 line path created=() dir ok n=0
    shift
    # LeakSanitizer cannot run under ptrace; leaks are checked elsewhere.
    # -y names the directory of every descriptor-relative call (unlinkat(5</dir>, "name")).
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -y -o "$W/strace" -e trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,link,linkat,symlink,symlinkat,chmod,fchmodat,chown,lchown,fchownat,truncate "$@" \
        >/dev/null 2>"$W/err" || fail "$label: $(cat "$W/err")"
    grep -q 'rename' "$W/strace" || fail "$label: strace saw no rename: the trace is not working"
    while IFS= read -r line; do
        path=$(sed -nE 's/^[0-9]+ +[a-z0-9_]+\((AT_FDCWD, )?"([^"]*)".*/\2/p' <<<"$line")
        [ -n "$path" ] || fail "$label: cannot read the path in: $line"
        n=$((n + 1))
        case $line in
            *mkdir*) created+=("$path") ;;
        esac
        # Every path changed is in the table's directory.
        for p in $(grep -oE '"/[^"]*"' <<<"$line" | tr -d '"'); do
            case $p in "$D"/*) ;; *) fail "$label: outside the table's directory: $line" ;; esac
            [ "$(dirname "$p")" = "$D" ] || case $(dirname "$p") in "$D"/tls_policy*.tmp.??????) ;; *)
                fail "$label: not beside the table: $line" ;; esac
        done
        case $line in
            *O_CREAT*)
                ok=0
                case $line in *O_EXCL*) ok=1 ;; esac
                case $line in *"\"$S.lock\""*O_NOFOLLOW*) ok=1 ;; esac
                dir=$(dirname "$path")
                for c in "${created[@]}"; do [ "$dir" = "$c" ] && ok=1; done
                [ "$ok" = 1 ] || fail "$label: created without O_EXCL outside a private directory we made: $line"
                ;;
        esac
    done < <(grep -E 'O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|(mkdir|rename|unlink|rmdir|link|symlink|chmod|chown|truncate)[a-z0-9]*\(' "$W/strace" | grep -v '^[0-9]* *execve' |
             sed -E -e 's/(AT_FDCWD|[0-9]+)<[^>]*>, "(\/[^"]*)"/"\2"/g' \
                 -e 's/(AT_FDCWD|[0-9]+)<([^>]*)>, "([^"]*)"/"\2\/\3"/g')
    [ "$n" -ge 4 ] || fail "$label: only $n file operations checked: the trace is not working"
}

tp_note "strace: where and how set, remove and rebuild create and change files"
trace "set" "$T" -c "$D" set strace.example --level may
trace "remove" "$T" -c "$D" remove strace.example
trace "rebuild" "$T" -c "$D" rebuild
rm -f "$S.db" "$S.lock"
trace "rebuild creating the db and the lock" "$T" -c "$D" rebuild

cp "$S" "$W/src"
tp_note "a symlink planted at the lock file is refused, not followed"
ln -sf "$V/file" "$S.lock"
for cmd in "set x.example --level may" "remove x.example" "rebuild"; do
    rc=0
    # shellcheck disable=SC2086
    "$T" -c "$D" $cmd >/dev/null 2>"$W/err" || rc=$?
    [ "$rc" = 1 ] || fail "$cmd with a symlinked lock file: exit $rc, want 1"
    grep -q "^tlspolicy: lock file $S.lock is a symbolic link" "$W/err" || fail "$cmd: got '$(cat "$W/err")'"
    victim_intact "$cmd with a symlinked lock"
done
cmp -s "$S" "$W/src" || fail "the source changed although the lock was refused"
rm -f "$S.lock"

tp_note "symlinks at temp-like names are left alone by the sweep of stale temps"
ln -s "$V/file" "$D/tls_policy.tmp.AAAAAA"
ln -s "$V/dir" "$D/tls_policy.db.tmp.BBBBBB"
ln -s "$V/dir" "$D/tls_policy.tmp.CCCCCC"
"$T" -c "$D" set x.example --level may >/dev/null || fail "set beside planted symlinks failed"
victim_intact "set beside symlinks at temp names"
for l in tls_policy.tmp.AAAAAA tls_policy.db.tmp.BBBBBB tls_policy.tmp.CCCCCC; do
    [ -L "$D/$l" ] || fail "the sweep removed $l, a symlink we did not make"
done
rm -f "$D"/tls_policy*.tmp.*

tp_note "a stale temp directory holding a file we do not make is left alone"
mkdir "$D/tls_policy.db.tmp.DDDDDD" && echo keep >"$D/tls_policy.db.tmp.DDDDDD/notes"
"$T" -c "$D" rebuild || fail "rebuild failed"
[ -f "$D/tls_policy.db.tmp.DDDDDD/notes" ] || fail "the sweep removed a file it did not make"
rm -rf "$D/tls_policy.db.tmp.DDDDDD"

tp_note "a db that is a symlink to a file elsewhere is replaced, not written through"
mv "$S.db" "$W/db"
ln -s "$V/file" "$S.db"
"$T" -c "$D" rebuild || fail "rebuild over a symlinked db failed"
victim_intact "rebuild over a symlinked db"
[ ! -L "$S.db" ] && [ "$(postmap -c "$D" -q x.example "hash:$S")" = may ] || fail "the db is not a real db after rebuild"

tp_note "root writes a table another user owns as that user, as postmap does"
# So the owner of the table's directory cannot make root create, replace
# or remove files elsewhere, and the files made are the owner's: a lock
# file made by root (0600) would lock the owner out of their own table.
TN=$(tp_tlspolicy_for_others)
O=$TP_TMP/owned
mkdir "$O"
cp "$D/main.cf" "$O/main.cf"
"$TP_TOOLS_DIR/gen_policy" bench 3 20 "$O/tls_policy" || fail "gen_policy failed"
chown -R nobody: "$O"
"$T" -c "$O" set root.example --level may >/dev/null 2>"$W/err" || fail "root's set of nobody's table: $(cat "$W/err")"
for f in tls_policy tls_policy.db tls_policy.lock; do
    [ "$(stat -c %U "$O/$f")" = nobody ] || fail "root's set made $f owned by $(stat -c %U "$O/$f"), want nobody (the source's owner)"
done
runuser -u nobody -- "$TN" -c "$O" set nobody.example --level encrypt >/dev/null 2>"$W/err" ||
    fail "nobody cannot write their own table after root did: $(cat "$W/err")"
[ "$(postmap -c "$O" -q root.example "hash:$O/tls_policy")" = may ] || fail "root.example is not in nobody's db"
# Reloading Postfix is root's job again.
printf '#!/bin/sh\nid -u >"%s"\n' "$W/reload.uid" >"$W/fakepostfix"
chmod 755 "$W/fakepostfix"
"$T" -c "$O" set root2.example --level may --reload --postfix-command "$W/fakepostfix" >/dev/null 2>"$W/err" ||
    fail "root's set --reload of nobody's table: $(cat "$W/err")"
[ "$(cat "$W/reload.uid")" = 0 ] || fail "postfix reload ran as uid $(cat "$W/reload.uid"), want 0"
# In a directory the owner cannot write, root cannot either (postmap fails too).
mkdir "$TP_TMP/rootdir" && cp -p "$O/main.cf" "$O/tls_policy" "$TP_TMP/rootdir/"
rc=0
"$T" -c "$TP_TMP/rootdir" set x.example --level may >/dev/null 2>"$W/err" || rc=$?
[ "$rc" = 1 ] || fail "root's set of nobody's table in root's directory: exit $rc, want 1"
grep -q "Permission denied (writing as uid $(id -u nobody), the owner of $TP_TMP/rootdir/tls_policy, as postmap does)" "$W/err" ||
    fail "root's set of nobody's table in root's directory: got '$(cat "$W/err")'"

tp_note "doctor: permissions and owners"
doctor() { "$T" -c "$D" doctor >"$W/doctor" 2>&1 || echo "exit $?" >>"$W/doctor"; }
chmod 644 "$S" "$S.db"
doctor
grep -q "^ok: permissions of $S and its db" "$W/doctor" || fail "doctor with 0644 files: $(cat "$W/doctor")"
chmod 664 "$S"
doctor
grep -q "^warning: $S: writable by group (mode 0664)" "$W/doctor" || fail "doctor misses a group-writable source: $(cat "$W/doctor")"
grep -q "^exit 1" "$W/doctor" || fail "doctor exits 0 with a group-writable source"
chmod 644 "$S"; chmod 646 "$S.db"
doctor
grep -q "^warning: $S.db: writable by others (mode 0646)" "$W/doctor" || fail "doctor misses a world-writable db: $(cat "$W/doctor")"
chmod 644 "$S.db"
chown nobody "$S.db"
doctor
grep -q "^warning: $S.db: owned by uid $(id -u nobody), but its source $S by uid 0" "$W/doctor" ||
    fail "doctor misses a db owned by another user: $(cat "$W/doctor")"
grep -q "^exit 1" "$W/doctor" || fail "doctor exits 0 with a db owned by another user"
chown root "$S.db"
doctor
grep -q "^ok: permissions" "$W/doctor" || fail "doctor after the owner was put back: $(cat "$W/doctor")"
