# crash.sh with the policy table as texthash: (no database: Postfix reads
# the source, so the kills test the source's replacement; postmap -q reads
# it as Postfix does). Every step kill, and 20 timed kills per command: the
# source's write is the one hash's test times 60 times.
TP_CRASH_KILLS=${TP_CRASH_KILLS:-20} TP_REL_MAP_TYPE=texthash exec bash "$TP_SOURCE_DIR/tests/reliability/crash.sh"
