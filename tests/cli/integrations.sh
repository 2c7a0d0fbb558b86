# The cron entry, systemd units and Nagios/Icinga definitions in examples/
# are valid for their tools and call tlspolicy with commands and options
# it has: every invocation's global options are in "tlspolicy --help", its
# command is listed there, and its --long options are in "COMMAND --help".
# A command tlspolicy does not have fails the test: an example that runs
# it would fail every night in someone's cron.
. "$TP_SOURCE_DIR/tests/lib.sh"

X=$TP_SOURCE_DIR/examples
"$TLSPOLICY" --help >"$TP_TMP/help"
commands=$(awk '/^Commands:/{c=1;next} c&&/^  [a-z]/{print $1} c&&/^$/{c=0}' "$TP_TMP/help")
[ -n "$commands" ] || fail "no commands in tlspolicy --help"

# check_invocation WHERE WORDS...: one call of tlspolicy, split into words.
check_invocation() {
    local where=$1 cmd="" w
    shift
    [[ ${1##*/} == tlspolicy ]] || fail "$where: '$1' is not tlspolicy"
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            -c|-m|-d|--lock-timeout) [ $# -ge 2 ] || fail "$where: $1 needs a value"; shift 2 ;;
            -v|-q) shift ;;
            -*) fail "$where: unknown global option $1" ;;
            *) cmd=$1; shift; break ;;
        esac
    done
    [ -n "$cmd" ] || fail "$where: no command"
    grep -qx "$cmd" <<<"$commands" ||
        fail "$where: tlspolicy has no command '$cmd' (tlspolicy --help lists: $(echo $commands))"
    "$TLSPOLICY" "$cmd" --help >"$TP_TMP/chelp" 2>&1 || true
    for w in "$@"; do
        case $w in
            --*) grep -q -- "${w%%=*}\b" "$TP_TMP/chelp" ||
                     fail "$where: $cmd has no option $w (see tlspolicy $cmd --help)" ;;
        esac
    done
}

tp_note "the checker itself fails an unknown command and an unknown option"
( check_invocation "self-test" tlspolicy -c /etc/postfix frobnicate --yes ) 2>/dev/null &&
    fail "check_invocation passed an invocation of a command tlspolicy does not have"
( check_invocation "self-test" tlspolicy rotate --frobnicate ) 2>/dev/null &&
    fail "check_invocation passed an option rotate does not have"

tp_note "systemd units"
for unit in "$X"/systemd/*.service; do
    n=0
    while IFS= read -r line; do
        # shellcheck disable=SC2086
        check_invocation "${unit##*/}" ${line#ExecStart=}
        n=$((n + 1))
    done < <(grep '^ExecStart=' "$unit")
    [ "$n" = 1 ] || fail "${unit##*/}: $n ExecStart= lines, want 1"
    timer=${unit%.service}.timer
    [ -f "$timer" ] || fail "${unit##*/} has no timer ${timer##*/}"
    grep -q '^OnCalendar=' "$timer" || fail "${timer##*/}: no OnCalendar="
done
if command -v systemd-analyze >/dev/null; then
    # Verify copies that run the tlspolicy just built (the units name
    # /usr/bin/tlspolicy, which need not exist here).
    mkdir "$TP_TMP/units"
    for f in "$X"/systemd/*; do
        sed "s|/usr/bin/tlspolicy|$TLSPOLICY|" "$f" >"$TP_TMP/units/${f##*/}"
    done
    systemd-analyze verify --man=no "$TP_TMP"/units/* >"$TP_TMP/verify" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$TP_TMP/verify")"
    [ ! -s "$TP_TMP/verify" ] || fail "systemd-analyze verify: $(cat "$TP_TMP/verify")"
fi

tp_note "cron entry"
jobs=0
while IFS= read -r line; do
    case $line in ''|'#'*|[A-Z]*=*) continue ;; esac
    read -r m h dom mon dow user cmd <<<"$line"
    for f in "$m" "$h" "$dom" "$mon" "$dow"; do
        [[ $f =~ ^[0-9*/,-]+$ ]] || fail "cron/tlspolicy: bad time field '$f' in: $line"
    done
    [ "$m" = '*' ] || [ "$m" -le 59 ] || fail "cron/tlspolicy: minute $m"
    [ "$h" = '*' ] || [ "$h" -le 23 ] || fail "cron/tlspolicy: hour $h"
    getent passwd "$user" >/dev/null || fail "cron/tlspolicy: no user '$user' in: $line"
    [[ $cmd != *%* ]] || fail "cron/tlspolicy: unescaped % (cron makes it a newline): $line"
    sh -n -c "$cmd" || fail "cron/tlspolicy: not valid sh: $cmd"
    inv=$(grep -o 'tlspolicy [^)|&>]*' <<<"$cmd" | head -n 1)
    # shellcheck disable=SC2086
    check_invocation "cron/tlspolicy" $inv
    jobs=$((jobs + 1))
done <"$X/cron/tlspolicy"
[ "$jobs" = 2 ] || fail "cron/tlspolicy: $jobs jobs, want 2 (rotate and check)"
grep -q '^PATH=.*/usr/sbin' "$X/cron/tlspolicy" ||
    fail "cron/tlspolicy: PATH must include /usr/sbin (postfix, for --reload)"

tp_note "Nagios and Icinga 2 definitions"
n=0
while IFS= read -r inv; do
    # shellcheck disable=SC2086
    check_invocation "monitoring/tlspolicy.cfg" $inv
    n=$((n + 1))
done < <(grep -oE '/usr/bin/tlspolicy [^#]*' "$X/monitoring/tlspolicy.cfg")
[ "$n" = 2 ] || fail "monitoring/tlspolicy.cfg: $n command lines, want 2 (Nagios and NRPE)"
# Icinga 2: the arguments in order: negative orders first, then the rest.
icinga=$(awk '/^\t\t"[^"]*" = \{/ { key = $1; gsub(/"/, "", key); order = 0 }
              /^\t\t\tskip_key = true/ { key = "" }
              /^\t\t\torder = / { order = $3 }
              /^\t\t\}/ { if (key != "") printf "%s %s\n", order, key }' \
         "$X/monitoring/tlspolicy.conf" | sort -s -n -k1,1 | awk '{ printf "%s%s", sep, $2; sep = " "
             if ($2 ~ /^-[cm]$/) printf " V" }')
[[ $icinga == "-c V -m V check "* ]] ||
    fail "monitoring/tlspolicy.conf: arguments come out as '$icinga', want '-c V -m V check ...'"
# shellcheck disable=SC2086
check_invocation "monitoring/tlspolicy.conf" tlspolicy $icinga

echo "integrations: all passed"
