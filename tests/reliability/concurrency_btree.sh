# concurrency.sh with the policy table as btree: (same checks; Postfix's readers and
# postmap -q are the oracle for a btree table).
TP_REL_REWRITES=${TP_REL_REWRITES:-100} TP_REL_MAP_TYPE=btree exec bash "$TP_SOURCE_DIR/tests/reliability/concurrency.sh"
