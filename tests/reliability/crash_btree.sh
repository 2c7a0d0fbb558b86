# crash.sh with the policy table as btree: (same checks; Postfix's readers and
# postmap -q are the oracle for a btree table). Every step kill, and 20 timed
# kills per command: btree's writer is hash's libdb path, timed 60 times.
TP_CRASH_KILLS=${TP_CRASH_KILLS:-20} TP_REL_MAP_TYPE=btree exec bash "$TP_SOURCE_DIR/tests/reliability/crash.sh"
