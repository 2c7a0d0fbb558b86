# concurrency.sh with the policy table as texthash: (Postfix's reader waits
# for a file changed in the last second to cool down, so fewer rewrites,
# each followed by a pause).
TP_REL_REWRITES=${TP_REL_REWRITES:-20} TP_REL_MAP_TYPE=texthash exec bash "$TP_SOURCE_DIR/tests/reliability/concurrency.sh"
