# diskfull.sh with the policy table as texthash: (no database: the source
# alone is written; rebuild writes nothing).
TP_REL_MAP_TYPE=texthash exec bash "$TP_SOURCE_DIR/tests/reliability/diskfull.sh"
