# crash.sh with the policy table as btree: (same checks; Postfix's readers and
# postmap -q are the oracle for a btree table).
TP_CRASH_KILLS=${TP_CRASH_KILLS:-50} TP_REL_MAP_TYPE=btree exec bash "$TP_SOURCE_DIR/tests/reliability/crash.sh"
