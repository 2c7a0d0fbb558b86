# --reload runs Postfix's own postfix, $command_directory/postfix of
# main.cf, by absolute path: not the first "postfix" in the caller's PATH
# (root's PATH may hold a user's bin or "."), and with an environment of
# PATH and TZ only (nothing like LD_PRELOAD or the caller's secrets is
# passed on). It runs "postfix -c DIR reload" without a shell, DIR as it
# is. --postfix-command still chooses another program,
# by path, or by name in the system's PATH. A failing reload is one line
# and exit 1, after the table was written. migrate runs postconf the same
# way: $command_directory/postconf, in that environment.
. "$TP_SOURCE_DIR/tests/lib.sh"

T=$TLSPOLICY
D="$TP_TMP/conf;x'y"     # reaches postfix as it is: no shell between
mkdir -p "$D" "$TP_TMP/sbin" "$TP_TMP/evil"
tp_sandbox_config "$D"
echo "command_directory = $TP_TMP/sbin" >>"$D/main.cf"

# fake NAME: a postfix that records who it is, its arguments and environment.
fake() {
    cat >"$2" <<EOF
#!/bin/sh
echo "$1 \$*" >"$TP_TMP/ran"
env | LC_ALL=C sort >"$TP_TMP/env"
EOF
    chmod 755 "$2"
}
fake good "$TP_TMP/sbin/postfix"
fake evil "$TP_TMP/evil/postfix"

tp_note "set --reload: \$command_directory/postfix, not the PATH's, in a minimal environment"
rm -f "$TP_TMP/ran"
PATH="$TP_TMP/evil:$PATH" TP_SECRET=hunter2 LD_PRELOAD= TZ=UTC \
    tp_expect_status 0 "$T" -c "$D" set a.example --level may --reload
[ -f "$TP_TMP/ran" ] || fail "no postfix ran"
[ "$(cat "$TP_TMP/ran")" = "good -c $D reload" ] ||
    fail "ran '$(cat "$TP_TMP/ran")', want 'good -c $D reload' (\$command_directory/postfix)"
extra=$(grep -Ev '^(PATH|TZ|PWD|SHLVL|_)=' "$TP_TMP/env" || true)
[ -z "$extra" ] || fail "postfix got more than PATH and TZ from us: $extra"
grep -qx 'TZ=UTC' "$TP_TMP/env" || fail "TZ not passed on: $(cat "$TP_TMP/env")"
grep -q "^PATH=.*$TP_TMP" "$TP_TMP/env" && fail "the caller's PATH reached postfix: $(grep ^PATH "$TP_TMP/env")"

tp_note "remove --reload: the same"
rm -f "$TP_TMP/ran"
PATH="$TP_TMP/evil:$PATH" tp_expect_status 0 "$T" -c "$D" remove a.example --reload
[ "$(cat "$TP_TMP/ran")" = "good -c $D reload" ] || fail "remove --reload ran '$(cat "$TP_TMP/ran")'"

tp_note "--postfix-command by path still chooses the program"
rm -f "$TP_TMP/ran"
tp_expect_status 0 "$T" -c "$D" set b.example --level may --reload --postfix-command "$TP_TMP/evil/postfix"
[ "$(cat "$TP_TMP/ran")" = "evil -c $D reload" ] || fail "--postfix-command ran '$(cat "$TP_TMP/ran")'"

tp_note "a failing reload: written, one line naming the program, exit 1"
cat >"$TP_TMP/sbin/postfix" <<'EOF'
#!/bin/sh
exit 3
EOF
tp_expect_status 1 "$T" -c "$D" set c.example --level encrypt --reload
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "want one line on stderr, got: $(cat "$TP_TMP/err")"
grep -qF "tlspolicy: $TP_TMP/sbin/postfix -c $D reload failed (exit status 3)" "$TP_TMP/err" ||
    fail "got '$(cat "$TP_TMP/err")'"
grep -q '^c\.example' "$D/tls_policy" || fail "the table was not written before the reload"

tp_note "a relative command_directory is refused, not searched"
echo "command_directory = sbin" >>"$D/main.cf"
tp_expect_status 1 "$T" -c "$D" set d.example --level may --reload
grep -q "command_directory = sbin is not an absolute path" "$TP_TMP/err" || fail "got '$(cat "$TP_TMP/err")'"

tp_note "a command_directory too long for a path: one line, for reload and for migrate"
sed -i '/^command_directory = sbin$/d' "$D/main.cf"
long=/$(printf 'd%.0s' $(seq 1 4100))
echo "command_directory = $long" >>"$D/main.cf"
tp_expect_status 1 "$T" -c "$D" set d.example --level may --reload
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "want one line on stderr, got: $(cat "$TP_TMP/err")"
grep -q "command_directory = /ddd*\.\.\. is too long; cannot run postfix reload" "$TP_TMP/err" ||
    fail "got '$(cat "$TP_TMP/err")'"
tp_expect_status 1 "$T" -c "$D" migrate --to lmdb --dry-run
grep -q "is too long; cannot run postconf" "$TP_TMP/err" || fail "migrate: got '$(cat "$TP_TMP/err")'"
sed -i "\|^command_directory = $long\$|d" "$D/main.cf"
echo "command_directory = sbin" >>"$D/main.cf"

tp_note "migrate: \$command_directory/postconf, not the PATH's, in a minimal environment"
sed -i '/^command_directory = sbin$/d' "$D/main.cf"
grep -qx "command_directory = $TP_TMP/sbin" "$D/main.cf" || fail "main.cf lost its command_directory"
fake good "$TP_TMP/sbin/postconf"
fake evil "$TP_TMP/evil/postconf"
rm -f "$TP_TMP/ran"
# The fake answers nothing to "postconf -m": migrate stops there, exit 1.
PATH="$TP_TMP/evil:$PATH" TP_SECRET=hunter2 TZ=UTC \
    tp_expect_status 1 "$T" -c "$D" migrate --to lmdb
[ "$(cat "$TP_TMP/ran")" = "good -c $D -m" ] ||
    fail "migrate ran '$(cat "$TP_TMP/ran")', want 'good -c $D -m' (\$command_directory/postconf)"
extra=$(grep -Ev '^(PATH|TZ|PWD|SHLVL|_)=' "$TP_TMP/env" || true)
[ -z "$extra" ] || fail "postconf got more than PATH and TZ from us: $extra"
grep -q "^PATH=.*$TP_TMP" "$TP_TMP/env" && fail "the caller's PATH reached postconf: $(grep ^PATH "$TP_TMP/env")"
[ ! -e "$D/tls_policy.lmdb" ] || fail "migrate wrote tls_policy.lmdb though postconf -m listed nothing"

# The queue's postqueue runs the same way; how it fails is what list and
# check report as queue_error: postqueue's last stderr line, else how it
# ended, and a hung one is killed at the deadline.
tp_note "postqueue: its failure is one reason in queue_error; a hung one is killed"
mkdir -p "$TP_TMP/q/pid"
echo "queue_directory = $TP_TMP/q" >>"$D/main.cf"
# A live master: this test's own shell (nothing to clean up on failure).
printf '%10d\n' "$$" >"$TP_TMP/q/pid/master.pid"
queue_error() {
    tp_expect_status 0 "$T" -c "$D" list --json
    jq -c .queue_error "$TP_TMP/out"
}
printf '#!/bin/sh\necho "postqueue: warning: first" >&2\necho "postqueue: fatal: the last line" >&2\nexit 1\n' \
    >"$TP_TMP/sbin/postqueue"
chmod 755 "$TP_TMP/sbin/postqueue"
got=$(queue_error)
[ "$got" = '"postqueue: fatal: the last line"' ] || fail "queue_error: got $got"
printf '#!/bin/sh\nexit 3\n' >"$TP_TMP/sbin/postqueue"
got=$(queue_error)
[ "$got" = "\"$TP_TMP/sbin/postqueue exited with status 3\"" ] || fail "queue_error: got $got"
printf '#!/bin/sh\nexec sleep 30\n' >"$TP_TMP/sbin/postqueue"
start=$(date +%s)
"$T" -c "$D" check --timeout 2 --json >"$TP_TMP/out" 2>"$TP_TMP/err" || true
[ $(($(date +%s) - start)) -lt 20 ] || fail "a hung postqueue was not killed at the deadline"
jq -r .queue_error "$TP_TMP/out" | grep -qx "$TP_TMP/sbin/postqueue did not finish within 2 s" ||
    fail "check: queue_error $(jq -c .queue_error "$TP_TMP/out") $(cat "$TP_TMP/err")"
printf '#!/bin/sh\nexit 0\n' >"$TP_TMP/sbin/postqueue"
got=$(queue_error)
[ "$got" = null ] || fail "a postqueue that succeeds: queue_error $got"
true
