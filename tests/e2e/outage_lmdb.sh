# The outage end to end (outage.sh) with smtp_tls_policy_maps = lmdb:...,
# so pinning, the deferral, rotate and the reload work for a lmdb table.
TP_E2E_MAP_TYPE=lmdb exec bash "$TP_SOURCE_DIR/tests/e2e/outage.sh"
