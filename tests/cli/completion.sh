# bash completion: sourced in bash with COMP_LINE/COMP_WORDS set as bash
# sets them, _tlspolicy offers the commands of "tlspolicy --help", each
# command's options, option values, and the keys of the table that the
# -c/-m typed on the line (or MAIL_CONFIG) select, ':' in keys included.
. "$TP_SOURCE_DIR/tests/lib.sh"

COMPLETION=$TP_SOURCE_DIR/contrib/bash-completion/tlspolicy
bin=$TP_TMP/bin
mkdir -p "$bin"
ln -s "$TLSPOLICY" "$bin/tlspolicy"   # completed by name, found in PATH

D=$TP_TMP/conf
mkdir -p "$D"
cat >"$D/main.cf" <<'X'
smtp_tls_fingerprint_digest = sha256
smtp_tls_policy_maps = hash:${config_directory}/tls_policy
X
cat >"$D/tls_policy" <<'X'
# partners (line 1 is a comment)
.example.net encrypt
# tlspolicy: from=relay.example.org:587 pin=cert
[relay.example.org]:587 fingerprint
    match=11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00
example.org may
X
D2=$TP_TMP/conf2
mkdir -p "$D2"
cp "$D/main.cf" "$D2/main.cf"
printf 'only.example may\n' >"$D2/tls_policy"

# comp LINE: what completing at the end of LINE offers, one per line, sorted.
comp() {
    PATH="$bin:$PATH" bash --norc --noprofile -c '
        . "$1" || exit 1
        spec=$(complete -p tlspolicy) || exit 1
        fn=${spec#*-F }; fn=${fn%% *}
        COMP_LINE=$2; COMP_POINT=${#2}; COMP_TYPE=9; COMP_KEY=9
        # COMP_WORDS as bash builds it: also split at ":" (COMP_WORDBREAKS).
        read -ra COMP_WORDS <<<"${2//:/ : }"
        [[ $2 == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        "$fn" tlspolicy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"' comp "$COMPLETION" "$1" | sed '/^$/d' | sort
}

# expect LINE WANT...: the completions of LINE are exactly WANT.
expect() {
    local line=$1 got want
    shift
    got=$(comp "$line")
    want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
    [ "$got" = "$want" ] || fail "completing '$line': got [$(echo $got)], want [$(echo $want)]"
}

tp_note "commands and options, from the program's --help"
commands=$("$TLSPOLICY" --help | awk '/^Commands:/{c=1;next} c&&/^  [a-z]/{print $1} c&&/^$/{c=0}')
for c in list get set remove import export rebuild doctor probe; do
    grep -qx "$c" <<<"$commands" || fail "$c missing from tlspolicy --help"
done
# shellcheck disable=SC2086
expect "tlspolicy " $commands
expect "tlspolicy -c $D " $commands
expect "tlspolicy --lock-timeout 5 " $commands
expect "tlspolicy -q re" $(grep '^re' <<<"$commands")
expect "tlspolicy -" -c -m -d -v -q --syslog --lock-timeout --help --version
# shellcheck disable=SC2046
expect "tlspolicy set x --" $("$TLSPOLICY" set --help | grep -oE -- '--[a-z][a-z-]*' | sort -u)
expect "tlspolicy set x --fingerprint-f" --fingerprint-from
expect "tlspolicy list --" --json
expect "tlspolicy export --" --json --help
expect "tlspolicy import x --par" --partial

tp_note "option values"
expect "tlspolicy set x --level fi" fingerprint
expect "tlspolicy set x --pin " cert pkey
expect "tlspolicy set x --attr serv" servername=
expect "tlspolicy -d sha2" sha224 sha256
expect "tlspolicy -c $TP_TMP/con" "$TP_TMP/conf" "$TP_TMP/conf2"

tp_note "import takes a file"
touch "$TP_TMP/partners.txt"
expect "tlspolicy -c $D import $TP_TMP/partn" "$TP_TMP/partners.txt"

tp_note "keys of the table -c names"
expect "tlspolicy -c $D get " .example.net '[relay.example.org]:587' example.org
expect "tlspolicy -c $D remove ex" example.org
expect "tlspolicy -c $D set [re" '[relay.example.org]:587'
# After a ':' bash replaces only what follows it.
expect "tlspolicy -c $D get [relay.example.org]:5" 587
expect "tlspolicy -v -c $D2 get " only.example
expect "tlspolicy -m hash:$D2/tls_policy -c $D get " only.example
MAIL_CONFIG=$D2 expect "tlspolicy get " only.example
expect "tlspolicy -c $TP_TMP/nonexistent get " ""
expect "tlspolicy -c $D list " ""

echo "completion: all passed"
