# "cmake --install" gives a tree a user or a packager can use: the program
# runs, the shared library has its SONAME links, the static archive and
# headers are there, tlspolicy.pc and find_package(tlspolicy) both build a
# program against the INSTALLED copy (not the build tree), the examples
# build with nothing but pkg-config and work (list-pins on a table,
# probe-fingerprints against testsmtpd), and the documentation and shell
# integration are in their places.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need cmake pkg-config cc objdump mandoc

P=$TP_TMP/prefix
cmake --install "$TP_BINARY_DIR" --prefix "$P" >"$TP_TMP/install.log" 2>&1 ||
    fail "cmake --install: $(tail -5 "$TP_TMP/install.log")"

so0=$(find "$P" -name libtlspolicy.so.0 | head -n 1)
[ -n "$so0" ] || fail "no libtlspolicy.so.0 under $P"
libdir=${so0%/*}
export LD_LIBRARY_PATH=$libdir
export PKG_CONFIG_PATH=$libdir/pkgconfig
unset PKG_CONFIG_LIBDIR || true

# The library was built with sanitizers: its users must link them too.
SAN=()
if objdump -p "$so0" | grep 'NEEDED.*libasan' >/dev/null; then
    # shellcheck disable=SC2054 # one compiler flag, the comma is its own
    SAN=(-fsanitize=address,undefined)
fi

tp_note "program, libraries, headers"
[ -x "$P/bin/tlspolicy" ] || fail "no $P/bin/tlspolicy"
ver=$("$P/bin/tlspolicy" --version) || fail "installed tlspolicy --version failed"
[ "$ver" = "tlspolicy 0.1.0" ] || fail "tlspolicy --version: got '$ver', want 'tlspolicy 0.1.0'"
[ "$(readlink "$libdir/libtlspolicy.so")" = libtlspolicy.so.0 ] ||
    fail "libtlspolicy.so -> '$(readlink "$libdir/libtlspolicy.so")', want libtlspolicy.so.0"
real=$(readlink "$so0")
[[ $real == libtlspolicy.so.0.* ]] && [ -f "$libdir/$real" ] ||
    fail "libtlspolicy.so.0 -> '$real', want a file libtlspolicy.so.0.*"
ldd "$P/bin/tlspolicy" | grep "libtlspolicy.so.0 => $libdir/" >/dev/null ||
    fail "installed tlspolicy does not use $libdir: $(ldd "$P/bin/tlspolicy" | grep tlspolicy)"
[ -f "$libdir/libtlspolicy.a" ] || fail "no static library $libdir/libtlspolicy.a"
for h in tlspolicy.h $(cd "$TP_SOURCE_DIR/include" && ls tlspolicy/*.h); do
    cmp -s "$TP_SOURCE_DIR/include/$h" "$P/include/$h" || fail "header $h not installed as is"
done

tp_note "pkg-config"
[ "$(pkg-config --modversion tlspolicy)" = 0.1.0 ] ||
    fail "pkg-config --modversion: got '$(pkg-config --modversion tlspolicy 2>&1)'"
[ "$(pkg-config --variable=prefix tlspolicy)" = "$P" ] ||
    fail "tlspolicy.pc prefix: got '$(pkg-config --variable=prefix tlspolicy)', want $P"
# Packagers install with DESTDIR: the .pc names the final prefix.
DESTDIR=$TP_TMP/dest cmake --install "$TP_BINARY_DIR" --prefix /usr >/dev/null 2>&1 ||
    fail "DESTDIR=... cmake --install --prefix /usr failed"
pc=$(find "$TP_TMP/dest" -name tlspolicy.pc)
grep -qx 'prefix=/usr' "$pc" || fail "DESTDIR install: $pc says $(grep ^prefix= "$pc"), want prefix=/usr"

tp_note "examples built against the installed copy with pkg-config"
E=$TP_TMP/examples
mkdir -p "$E"
for ex in list-pins probe-fingerprints postfix-servers; do
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror "${SAN[@]}" -o "$E/$ex" \
        "$TP_SOURCE_DIR/examples/$ex.c" $(pkg-config --cflags --libs tlspolicy) \
        2>"$E/$ex.err" || fail "cc $ex.c with pkg-config: $(cat "$E/$ex.err")"
    ldd "$E/$ex" | grep "libtlspolicy.so.0 => $libdir/" >/dev/null ||
        fail "$ex does not link the installed library: $(ldd "$E/$ex" | grep tlspolicy)"
done

cat >"$E/tls_policy" <<'X'
# partners
[mx.example.com]:25 fingerprint
    match=11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00|01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14
Example.NET may
example.org fingerprint match=a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
X
printf '%s\t%s\t%s\n' \
    '[mx.example.com]:25' md5 11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00 \
    '[mx.example.com]:25' sha1 01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14 \
    example.org sha256 A0:A1:A2:A3:A4:A5:A6:A7:A8:A9:AA:AB:AC:AD:AE:AF:B0:B1:B2:B3:B4:B5:B6:B7:B8:B9:BA:BB:BC:BD:BE:BF \
    >"$E/want"
MAIL_CONFIG=$E "$E/list-pins" "$E/tls_policy" >"$E/got" 2>"$E/err" ||
    fail "list-pins: exit $?: $(cat "$E/err")"
diff -u "$E/want" "$E/got" >&2 || fail "list-pins output differs (- want, + got)"
echo 'broken fingerprint match=zz' >>"$E/tls_policy"
rc=0
MAIL_CONFIG=$E "$E/list-pins" "$E/tls_policy" >/dev/null 2>"$E/err" || rc=$?
[ "$rc" = 1 ] && grep -q 'tls_policy:6: broken:' "$E/err" ||
    fail "list-pins on a bad entry: exit $rc, stderr '$(cat "$E/err")', want 1 and 'tls_policy:6: broken: ...'"

tp_make_cert "$TP_TMP/a" mx.test --ec
tp_start_server a --cert "$TP_TMP/a.pem"
want="127.0.0.1[127.0.0.1]:$TP_PORT cert=$(tp_cert_fingerprint "$TP_TMP/a.crt") pkey=$(tp_pkey_fingerprint "$TP_TMP/a.crt")"
got=$("$E/probe-fingerprints" -t 10 "127.0.0.1:$TP_PORT" 2>"$E/err") ||
    fail "probe-fingerprints: exit $?: $(cat "$E/err")"
[ "$got" = "$want" ] || fail "probe-fingerprints: got '$got', want '$want'"
want="127.0.0.1[127.0.0.1]:$TP_PORT cert=$(tp_cert_fingerprint "$TP_TMP/a.crt" md5) pkey=$(tp_pkey_fingerprint "$TP_TMP/a.crt" md5)"
got=$("$E/probe-fingerprints" -d md5 -t 10 "127.0.0.1:$TP_PORT" 2>"$E/err") ||
    fail "probe-fingerprints -d md5: exit $?: $(cat "$E/err")"
[ "$got" = "$want" ] || fail "probe-fingerprints -d md5: got '$got', want '$want'"
# postfix-servers: the server Postfix tries for the key, and the verdict.
printf 'compatibility_level = 3.6\n' >"$E/main.cf"
"$E/postfix-servers" -c "$E" -t 10 "[127.0.0.1]:$TP_PORT" "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/a.crt")" \
    >"$E/got" 2>"$E/err" || fail "postfix-servers: exit $?: $(cat "$E/got" "$E/err")"
grep -qx "server 127.0.0.1\[127.0.0.1\]:$TP_PORT pref 0 tried yes: match" "$E/got" ||
    fail "postfix-servers: $(cat "$E/got")"
grep -q "^verdict: OK" "$E/got" || fail "postfix-servers verdict: $(cat "$E/got")"
tp_stop_server a
rc=0
"$E/probe-fingerprints" -t 5 "127.0.0.1:$TP_PORT" >/dev/null 2>"$E/err" || rc=$?
[ "$rc" = 1 ] || fail "probe-fingerprints on a closed port: exit $rc, want 1"

tp_note "static linking with pkg-config --static"
# --whole-archive pulls in every object of libtlspolicy.a, so every
# dependency it has must be named by Requires.private / Libs.private.
# shellcheck disable=SC2046
cc -std=c11 "${SAN[@]}" -o "$E/list-pins-static" "$TP_SOURCE_DIR/examples/list-pins.c" \
    $(pkg-config --cflags tlspolicy) \
    $(pkg-config --static --libs tlspolicy | sed 's/-ltlspolicy\b/-Wl,--whole-archive -l:libtlspolicy.a -Wl,--no-whole-archive/') \
    2>"$E/static.err" || fail "static link with pkg-config --static: $(cat "$E/static.err")"
! objdump -p "$E/list-pins-static" | grep 'NEEDED.*libtlspolicy' >/dev/null ||
    fail "list-pins-static still needs libtlspolicy.so"
LD_LIBRARY_PATH='' MAIL_CONFIG=$E "$E/list-pins-static" "$E/tls_policy" >"$E/got" 2>/dev/null || true
head -n 3 "$E/got" | diff -u "$E/want" - >&2 || fail "statically linked list-pins output differs"

tp_note "find_package(tlspolicy) and tlspolicy::tlspolicy"
C=$TP_TMP/consumer
mkdir -p "$C"
cat >"$C/CMakeLists.txt" <<'X'
cmake_minimum_required(VERSION 3.25)
project(consumer LANGUAGES C)
find_package(tlspolicy 0.1 REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE tlspolicy::tlspolicy)
X
cat >"$C/main.c" <<'X'
#include <stdio.h>
#include <tlspolicy.h>
int main(void) { printf("%s\n", tp_strerror(TP_ENOTFOUND)); return 0; }
X
cmake -S "$C" -B "$C/build" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_FLAGS="${SAN[*]}" \
    >"$C/log" 2>&1 || fail "find_package(tlspolicy): $(tail -20 "$C/log")"
cmake --build "$C/build" >>"$C/log" 2>&1 || fail "building against tlspolicy::tlspolicy: $(tail -20 "$C/log")"
grep -rq -- "-I$TP_SOURCE_DIR\|$TP_SOURCE_DIR/include" "$C/build" &&
    fail "the consumer compiled with the source tree's headers, not the installed ones"
# Run without LD_LIBRARY_PATH: CMake's build RPATH must find the library.
got=$(env -u LD_LIBRARY_PATH "$C/build/consumer") || fail "consumer did not run"
[ -n "$got" ] || fail "consumer printed nothing for tp_strerror(TP_ENOTFOUND)"
env -u LD_LIBRARY_PATH ldd "$C/build/consumer" | grep "libtlspolicy.so.0 => $libdir/" >/dev/null ||
    fail "consumer does not use the installed library"

tp_note "documentation and integrations"
doc=$P/share/doc/tlspolicy/examples
for f in list-pins.c probe-fingerprints.c postfix-servers.c cron/tlspolicy monitoring/tlspolicy.cfg \
         monitoring/tlspolicy.conf systemd/tlspolicy-check.service \
         systemd/tlspolicy-check.timer systemd/tlspolicy-rotate.service \
         systemd/tlspolicy-rotate.timer; do
    cmp -s "$TP_SOURCE_DIR/examples/$f" "$doc/$f" || fail "examples/$f not installed in $doc"
done

for page in man1/tlspolicy.1 man3/libtlspolicy.3; do
    f=$P/share/man/$page
    [ -f "$f" ] || fail "man page $page not installed under $P/share/man"
    mandoc -Tlint -W warning "$f" || fail "mandoc -Tlint: $f"
done
# man finds both pages under the prefix.
for pair in "1 tlspolicy" "3 libtlspolicy"; do
    set -- $pair
    MANPATH=$P/share/man man -w "$1" "$2" 2>/dev/null | grep -x "$P/share/man/man$1/$2.$1" >/dev/null ||
        fail "man -w $1 $2 with MANPATH=$P/share/man: got '$(MANPATH=$P/share/man man -w "$1" "$2" 2>&1)'"
done
comp=$P/share/bash-completion/completions/tlspolicy
cmp -s "$TP_SOURCE_DIR/contrib/bash-completion/tlspolicy" "$comp" ||
    fail "bash completion not installed as $comp"
# Sourced as bash-completion would, it completes with the installed program.
got=$(PATH="$P/bin:$PATH" bash --norc --noprofile -c '. "$1"; COMP_LINE="tlspolicy re";
    COMP_POINT=${#COMP_LINE}; COMP_WORDS=(tlspolicy re); COMP_CWORD=1
    _tlspolicy tlspolicy re tlspolicy; printf "%s\n" "${COMPREPLY[@]}"' x "$comp" | sort | tr '\n' ' ')
[ "$got" = "rebuild remove " ] || fail "installed completion of 'tlspolicy re': got '$got', want 'rebuild remove '"

echo "install: all passed"
