# Crash safety: SIGKILL `set`, `rebuild` and `rotate` at hundreds of random moments
# while they write a 6,000-entry table (set and rotate update a copy of
# the db incrementally, rebuild builds it whole), and check after every kill that
#   - the source is byte for byte the old or the new version, never a mix;
#   - the db is a whole database (real postmap -s reads it) whose records
#     are exactly the old version's or the new one's (postmap itself built
#     the reference record sets from the saved sources);
#   - never a new db beside an old source (the source is renamed first);
#   - doctor (and list --json) report the db in step exactly when it is;
#   - the next writing run repairs a stale db and leaves no temp file or
#     temp directory of a killed run behind.
# Each command is killed two ways. Step kills: crashpoint.so (LD_PRELOAD)
# kills it just before its 1st, 2nd, ... file-system step (temp file
# made, fsync, rename, unlink) until a run completes, so every gap of
# the write protocol is hit whatever the machine's load. Timed kills:
# at moments drawn uniformly over 1.3x the measured duration of an
# uninterrupted run (for set and rotate every other one, rotate each,
# from 0.8x the time a --dry-run takes, where the write is), which also
# land inside a step (half-way through a database's pages).
# The table lives on a tmpfs when run as root.
# TP_CRASH_KILLS (default 60, 40 in the ASan build) timed kills per
# command; TP_CRASH_SEED replays them.
# Long mode, 1000 timed kills per command (about an hour per map type;
# figures of a run in docs/reliability.md), in the plain build directory:
#   TP_CRASH_KILLS=1000 ctest -V -R '^reliability/crash$' --timeout 14400
# (-R '^reliability/crash' runs the lmdb: and cdb: variants too).
# For rotate the old/new pair is a pin toggled between two certificates
# that our test server presents in turn.
. "$TP_SOURCE_DIR/tests/lib.sh"
# TP_REL_MAP_TYPE: the table's type (hash by default; crash_btree.sh,
# crash_lmdb.sh, crash_cdb.sh and crash_texthash.sh run the same kills
# against btree:, lmdb:, cdb: and texthash: tables).
MT=${TP_REL_MAP_TYPE:-hash}
case $MT in hash | btree) SFX=.db ;; texthash) SFX= ;; *) SFX=.$MT ;; esac
postconf -m | grep -x "$MT" >/dev/null || fail "postconf -m lists no $MT: install postfix-$MT (the oracle)"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
T=$TLSPOLICY
KILLAT=$TP_TOOLS_DIR/killat
# The sanitizer build's every check runs slower: fewer kills keep it near a minute.
if tp_asan_build "$T"; then
    KILLS=${TP_CRASH_KILLS:-40}
else
    KILLS=${TP_CRASH_KILLS:-60}
fi
SEED=${TP_CRASH_SEED:-$$}
RANDOM=$SEED
tp_note "seed $SEED (TP_CRASH_SEED=$SEED replays the delays), $KILLS timed kills per command"
CRASHPOINT=$TP_TOOLS_DIR/crashpoint.so
[ -f "$CRASHPOINT" ] || fail "$CRASHPOINT not built"

D=$TP_TMP/conf
W=$TP_TMP/work
# A tmpfs when we can: a kill tests the kernel's view of the files, which
# is the same on any file system, and the fsyncs of hundreds of runs would
# otherwise make the test wait on a shared disk.
if [ "$(id -u)" = 0 ]; then tp_mount_tmpfs "$D" 128m; fi
mkdir -p "$D" "$W"
cat >"$D/main.cf" <<EOF
compatibility_level = 3.6
smtp_tls_policy_maps = $MT:\${config_directory}/tls_policy
EOF
S=$D/tls_policy
"$TP_TOOLS_DIR/gen_policy" bench 7 6000 "$S" || fail "gen_policy failed"

# records FILE: the record set of FILE's db as real Postfix reads it
# (cdb: as tinycdb's cdb -d reads it; Debian's postmap cannot list a cdb).
records() {
    if [ "$MT" = cdb ]; then
        cdb -d "$1.cdb" 2>"$W/postmap.err" | LC_ALL=C sort | md5sum | cut -c1-32
    else
        postmap -c "$D" -s "$MT:$1" 2>"$W/postmap.err" | LC_ALL=C sort | md5sum | cut -c1-32
    fi
    [ ! -s "$W/postmap.err" ] || fail "records of $MT:$1: $(head -n 3 "$W/postmap.err")"
}
# oracle FILE: the record set postmap itself makes from source FILE (a
# texthash: table is its source: Postfix reads the file itself).
oracle() {
    local o=$W/oracle
    rm -rf "$o" && mkdir "$o" && cp "$1" "$o/tls_policy"
    [ "$MT" = texthash ] ||
        postmap -c "$D" "$MT:$o/tls_policy" 2>/dev/null || fail "postmap $MT:$1 failed"
    records "$o/tls_policy"
}
temps() { find "$D" -maxdepth 1 -name 'tls_policy*.tmp.*' | wc -l; }
# state: "in step" or "stale", from doctor's db line (texthash: no db, so
# always in step).
doctor_state() {
    "$T" -c "$D" doctor >"$W/doctor.out" 2>&1 || true
    if [ "$MT" = texthash ] && grep -q "^ok: texthash:$S has no database" "$W/doctor.out"; then
        echo "in step"
    elif grep -q "^ok: $S$SFX holds what $S says" "$W/doctor.out"; then
        echo "in step"
    elif grep -q "^error: $S$SFX is out of step with the source" "$W/doctor.out"; then
        echo stale
    else
        fail "doctor says neither in step nor stale: $(grep "$S$SFX" "$W/doctor.out")"
    fi
}
now_us() { date +%s%6N; }

tp_note "the two versions: crash.example at level encrypt (A) and may (B)"
"$T" -c "$D" set crash.example --level encrypt >/dev/null || fail "set crash.example failed"
cp "$S" "$W/A"; cp "$S$SFX" "$W/A$SFX"
"$T" -c "$D" set crash.example --level may >"$W/set.out" || fail "set crash.example failed"
cp "$S" "$W/B"; cp "$S$SFX" "$W/B$SFX"
# The kills of set below land in the incremental write: a copy of the db
# with the changed record (hash, btree: lmdb and cdb are built whole).
case $MT in
    hash | btree) grep -q "db updated" "$W/set.out" ||
        fail "set did not update the db in a copy: $(cat "$W/set.out")" ;;
esac
cmp -s "$W/A" "$W/B" && fail "the two versions of the source are equal"
RA=$(oracle "$W/A") RB=$(oracle "$W/B")
[ "$RA" != "$RB" ] || fail "postmap gives the same records for both versions"
cp "$W/B$SFX" "$W/check$SFX"; [ "$(records "$W/check")" = "$RB" ] || fail "set wrote other records than postmap's"

# which_source / which_db: A, B, or fail.
which_source() {
    if cmp -s "$S" "$W/A"; then echo A
    elif cmp -s "$S" "$W/B"; then echo B
    else
        cmp "$S" "$W/A" >&2 || true
        fail "$1: the source is neither the old nor the new version ($(wc -c <"$S") bytes)"
    fi
}
which_db() {
    local r
    [ -f "$S$SFX" ] || fail "$1: the db is gone"
    r=$(records "$S")
    if [ "$r" = "$RA" ]; then echo A
    elif [ "$r" = "$RB" ]; then echo B
    else fail "$1: the db holds neither the old nor the new records"
    fi
}

# measure CMD...: median wall time of three uninterrupted runs, in µs.
measure() {
    local i t0 t1 times=()
    for i in 1 2 3; do
        t0=$(now_us); "$@" >/dev/null 2>&1; t1=$(now_us)
        times+=($((t1 - t0)))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}

# at_step K CMD...: run CMD, killed just before its Kth file-system step;
# prints "killed" or "exit N" as killat does (with the first line of its
# stderr when N is not 0), and leaves crashpoint's "step K (CALL)" line
# in $W/step.err. ASan wants its runtime first in the library list; the
# preload only wraps libc calls, so it may come first (the option is
# ignored by a build without ASan).
at_step() {
    local k=$1 rc=0
    shift
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        LD_PRELOAD=$CRASHPOINT TP_CRASH_STEP=$k "$@" >/dev/null 2>"$W/step.err" || rc=$?
    case $rc in
        137) echo killed ;;
        0) echo "exit 0" ;;
        *) echo "exit $rc: $(grep -v '^crashpoint: ' "$W/step.err" | head -n 1)" ;;
    esac
}
step_call() { sed -n 's/^crashpoint: step [0-9]* (\(.*\))$/\1/p' "$W/step.err"; }
# landed WHAT: the step kills of WHAT hit every kind of moment: before
# the renames, late enough for the new db, and inside a write (a temp).
landed() {
    tp_note "$1: outcomes $(for k in "${!seen[@]}"; do printf '%s=%s ' "$k" "${seen[$k]}"; done)"
    [ "${seen[killed-before]:-0}" -gt 0 ] && [ "${seen[new-db]:-0}" -gt 0 ] ||
        fail "$1: no step kill landed both before the renames and late enough for the new db"
    [ "${seen[temps]:-0}" -gt 0 ] || fail "$1: no step kill left a temp file"
}
# timed WHAT: the outcomes of the timed kills, for the log only: where
# they land depends on the machine's load.
timed() {
    tp_note "$1: outcomes $(for k in "${!seen[@]}"; do printf '%s=%s ' "$k" "${seen[$k]}"; done)"
}
MAXSTEPS=500

# after_kill LABEL OUTCOME OLD NEW: the checks every kill must pass.
declare -A seen
after_kill() {
    local label=$1 outcome=$2 old=$3 new=$4 src db state want left
    src=$(which_source "$label") db=$(which_db "$label")
    case "$src$db" in
        "$old$old"|"$new$old"|"$new$new") ;;
        *) fail "$label: source $src with db $db: the db is newer than its source" ;;
    esac
    [ "$outcome" != "exit 0" ] || [ "$src$db" = "$new$new" ] ||
        fail "$label: exited 0 but left source $src, db $db"
    case $outcome in killed|"exit 0") ;; *) fail "$label: $outcome" ;; esac
    if [ "$src" = "$db" ]; then want="in step"; else want=stale; fi
    state=$(doctor_state)
    [ "$state" = "$want" ] || fail "$label: source $src, db $db, but doctor says $state"
    if [ $((RANDOM % 8)) = 0 ]; then
        state=$("$T" -c "$D" list --json | jq -r .db_state); [ "$state" != "out of step with the source" ] || state=stale
        [ "$state" = "$want" ] || fail "$label: list --json db_state $state, want $want"
    fi
    left=$(temps)
    seen["$src$db"]=$(( ${seen["$src$db"]:-0} + 1 ))
    # Killed before the db was renamed / runs that got their new db in.
    if [ "$outcome" = killed ] && [ "$db" = "$old" ]; then
        seen[killed-before]=$(( ${seen[killed-before]:-0} + 1 ))
    fi
    [ "$db" != "$new" ] || seen[new-db]=$(( ${seen[new-db]:-0} + 1 ))
    [ "$left" = 0 ] || seen[temps]=$(( ${seen[temps]:-0} + 1 ))
    # The next writer repairs: a stale db is rebuilt, temps are swept.
    if [ "$want" = stale ] || [ "$left" != 0 ]; then
        "$T" -c "$D" rebuild >/dev/null 2>"$W/rebuild.err" || fail "$label: repair: $(cat "$W/rebuild.err")"
        [ "$(temps)" = 0 ] || fail "$label: temp files left after the next run: $(find "$D" -name '*.tmp.*')"
        [ "$(which_db "$label repaired")" = "$src" ] || fail "$label: rebuild did not repair the db"
        [ "$(doctor_state)" = "in step" ] || fail "$label: doctor after repair: $(cat "$W/doctor.out")"
    fi
}

t0=$(now_us)
cur=B
tp_note "set: a kill before each file-system step"
for ((k = 1; ; k++)); do
    if [ $cur = A ]; then new=B level=may; else new=A level=encrypt; fi
    outcome=$(at_step $k "$T" -c "$D" set crash.example --level $level)
    after_kill "set killed before step $k ($(step_call))" "$outcome" $cur $new
    cur=$(which_source "set step $k")
    [ "$outcome" = killed ] || break
    [ $k -lt $MAXSTEPS ] || fail "set: still killed at step $k: a loop?"
done
tp_note "set: $((k - 1)) steps"
landed "set steps"

unset seen; declare -A seen
tp_note "set: $KILLS timed kills"
dur=$(measure "$T" -c "$D" set crash.example --level encrypt)
"$T" -c "$D" set crash.example --level may >/dev/null
# The same run without its write (--dry-run): where the write starts.
pre=$(measure "$T" -c "$D" set crash.example --level encrypt --dry-run)
tp_note "an uninterrupted set takes $((dur / 1000)) ms, $((pre / 1000)) ms of it before the write"
# A fast writer (cdb) spends little of the run writing: every other kill
# is drawn from 0.8x the time before the write on, the rest over the
# whole run.
from=$((pre * 8 / 10))
[ "$from" -lt $((dur * 13 / 10)) ] || from=0
cur=B
for ((i = 0; i < KILLS; i++)); do
    if [ $cur = A ]; then new=B level=may; else new=A level=encrypt; fi
    if [ $((i % 2)) = 1 ]; then
        delay=$(( from + (RANDOM * 32768 + RANDOM) % (dur * 13 / 10 - from) ))
    else
        delay=$(( (RANDOM * 32768 + RANDOM) % (dur * 13 / 10) ))
    fi
    outcome=$("$KILLAT" "$delay" "$T" -c "$D" set crash.example --level $level)
    after_kill "set kill $i at ${delay}µs" "$outcome" $cur $new
    cur=$(which_source "set $i")
done
timed "set timed"

# texthash: has no database: rebuild writes nothing.
if [ "$MT" != texthash ]; then
    unset seen; declare -A seen
    tp_note "rebuild: a kill before each file-system step, of a db one version behind its source"
    cp "$W/B" "$S"
    for ((k = 1; ; k++)); do
        cp "$W/A$SFX" "$S$SFX"
        outcome=$(at_step $k "$T" -c "$D" rebuild)
        [ "$(which_source "rebuild step $k")" = B ] || fail "rebuild step $k changed the source"
        after_kill "rebuild killed before step $k ($(step_call))" "$outcome" A B
        [ "$outcome" = killed ] || break
        [ $k -lt $MAXSTEPS ] || fail "rebuild: still killed at step $k: a loop?"
    done
    tp_note "rebuild: $((k - 1)) steps"
    landed "rebuild steps"

    unset seen; declare -A seen
    tp_note "rebuild: $KILLS timed kills, each of a db one version behind its source"
    dur=$(measure "$T" -c "$D" rebuild)
    tp_note "an uninterrupted rebuild takes $((dur / 1000)) ms"
    for ((i = 0; i < KILLS; i++)); do
        cp "$W/A$SFX" "$S$SFX"
        delay=$(( (RANDOM * 32768 + RANDOM) % (dur * 13 / 10) ))
        outcome=$("$KILLAT" "$delay" "$T" -c "$D" rebuild)
        [ "$(which_source "rebuild $i")" = B ] || fail "rebuild kill $i changed the source"
        after_kill "rebuild kill $i at ${delay}µs" "$outcome" A B
    done
    timed "rebuild timed"
fi

tp_note "a temp left by a killed writer is swept by the next set, not only by rebuild"
mkdir "$D/tls_policy$SFX.tmp.Ab12Cd" && cp "$W/A$SFX" "$D/tls_policy$SFX.tmp.Ab12Cd/tls_policy$SFX"
cp "$W/A" "$D/tls_policy.tmp.Zz9Yy8"
"$T" -c "$D" set crash.example --level encrypt >/dev/null || fail "set after the temps were planted failed"
[ "$(temps)" = 0 ] || fail "set left the killed writer's temps: $(find "$D" -name '*.tmp.*')"
unset seen; declare -A seen
tp_note "rotate: kills while re-pinning the test server's next hop to what it presents now"
tp_make_cert "$W/ca" rot.partner.test >/dev/null
tp_make_cert "$W/cb" rot.partner.test >/dev/null
cp "$W/ca.pem" "$W/live.pem"
tp_start_server rot --cert "$W/live.pem"
# A [host]:port next hop (a domain would need MX records), and --trust
# tofu: the two certificates have different keys, and what is measured
# here is the write, not the trust decision.
R="[127.0.0.1]:$TP_PORT"
"$T" -c "$D" set "$R" --fingerprint-from "127.0.0.1:$TP_PORT" >/dev/null ||
    fail "set $R --fingerprint-from failed"
# Both versions as rotate itself writes them: pinned to cert b, then to a.
tp_install_cert "$W/cb.pem" "$W/live.pem"
"$T" -c "$D" rotate --yes --trust tofu "$R" >/dev/null || fail "rotate to cert b failed"
cp "$S" "$W/B"
tp_install_cert "$W/ca.pem" "$W/live.pem"
"$T" -c "$D" rotate --yes --trust tofu "$R" >/dev/null || fail "rotate to cert a failed"
cp "$S" "$W/A"
cmp -s "$W/A" "$W/B" && fail "rotate wrote the same source for both certificates"
RA=$(oracle "$W/A") RB=$(oracle "$W/B")
[ "$RA" != "$RB" ] || fail "postmap gives the same records for both rotated versions"
cur=$(which_source "rotate setup")
for ((k = 1; ; k++)); do
    if [ "$cur" = A ]; then new=B cert=cb; else new=A cert=ca; fi
    tp_install_cert "$W/$cert.pem" "$W/live.pem"
    outcome=$(at_step $k "$T" -c "$D" rotate --yes --trust tofu "$R")
    after_kill "rotate killed before step $k ($(step_call))" "$outcome" "$cur" "$new"
    cur=$(which_source "rotate step $k")
    [ "$outcome" = killed ] || break
    [ $k -lt $MAXSTEPS ] || fail "rotate: still killed at step $k: a loop?"
done
tp_note "rotate: $((k - 1)) steps"
landed "rotate steps"

unset seen; declare -A seen
tp_note "rotate: $KILLS timed kills"
# Measure rotations that write: toggle the certificate before each run.
dur=0
for cert in cb ca cb; do
    tp_install_cert "$W/$cert.pem" "$W/live.pem"
    t1=$(now_us); "$T" -c "$D" rotate --yes --trust tofu "$R" >/dev/null 2>&1 || fail "rotate failed"
    t2=$(now_us); [ $((t2 - t1)) -gt "$dur" ] && dur=$((t2 - t1))
done
# Most of a rotate is the probe; the write comes last. Kills are drawn
# from 80% of the shortest probe-only run (--dry-run) on, so they land
# in the write protocol rather than in the handshake.
probe=""
for cert in ca cb; do
    tp_install_cert "$W/$cert.pem" "$W/live.pem"
    t1=$(now_us); "$T" -c "$D" rotate --dry-run --trust tofu "$R" >/dev/null 2>&1 || true
    t2=$(now_us); [ -z "$probe" ] || [ $((t2 - t1)) -lt "$probe" ] && probe=$((t2 - t1))
done
from=$((probe * 8 / 10))
[ "$from" -lt $((dur * 13 / 10)) ] || from=0
tp_note "an uninterrupted rotate takes at most $((dur / 1000)) ms, its probe at least $((probe / 1000)) ms"
cur=$(which_source "rotate setup")
for ((i = 0; i < KILLS; i++)); do
    if [ "$cur" = A ]; then new=B cert=cb; else new=A cert=ca; fi
    tp_install_cert "$W/$cert.pem" "$W/live.pem"
    delay=$(( from + (RANDOM * 32768 + RANDOM) % (dur * 13 / 10 - from) ))
    outcome=$("$KILLAT" "$delay" "$T" -c "$D" rotate --yes --trust tofu "$R")
    after_kill "rotate kill $i at ${delay}µs" "$outcome" "$cur" "$new"
    cur=$(which_source "rotate $i")
done
timed "rotate timed"

tp_note "done in $(( ($(now_us) - t0) / 1000000 )) s"
