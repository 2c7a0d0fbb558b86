# The man page is lint clean and documents what the program offers: every
# command of "tlspolicy --help" and every long option of each command's
# --help appears in docs/tlspolicy.1, so the two cannot drift apart.
. "$TP_SOURCE_DIR/tests/lib.sh"
command -v mandoc >/dev/null || fail "mandoc not found: install mandoc"

man=$TP_SOURCE_DIR/docs/tlspolicy.1
mandoc -Tlint -W warning "$man" || fail "mandoc -Tlint reports problems in $man"
text=$TP_TMP/man.txt
mandoc -Tascii "$man" | col -b >"$text"

commands=$("$TLSPOLICY" --help | awk '/^Commands:/{c=1;next} c&&/^  [a-z]/{print $1} c&&/^$/{c=0}')
[ -n "$commands" ] || fail "no commands found in tlspolicy --help"
for c in $commands; do
    grep -Eq "^[[:space:]]+$c([[:space:]]|\$)" "$text" || fail "command $c is not documented in tlspolicy.1"
    for opt in $("$TLSPOLICY" "$c" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        [ "$opt" = --help ] && continue
        grep -q -- "$opt" "$text" || fail "$c $opt is not documented in tlspolicy.1"
    done
done
for opt in -c -m -d -v -q --syslog --lock-timeout; do
    grep -Eq "^[[:space:]]+$opt([[:space:]]|\$)" "$text" || fail "global option $opt is not documented"
done
echo "manpage: all passed"
