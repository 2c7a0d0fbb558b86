# crash.sh with the policy table as cdb: (same checks; Postfix's readers and
# postmap -q are the oracle for a cdb table).
TP_CRASH_KILLS=${TP_CRASH_KILLS:-50} TP_REL_MAP_TYPE=cdb exec bash "$TP_SOURCE_DIR/tests/reliability/crash.sh"
