# crash.sh with the policy table as texthash: (no database: Postfix reads
# the source, so the kills test the source's replacement; postmap -q reads
# it as Postfix does).
TP_CRASH_KILLS=${TP_CRASH_KILLS:-50} TP_REL_MAP_TYPE=texthash exec bash "$TP_SOURCE_DIR/tests/reliability/crash.sh"
