#!/usr/bin/env bash
# The long versions of the reliability tests (CI runs short ones through test.sh):
#   - crash loop: 20 SIGKILLs under simulated load, 1000 alerts;
#   - rebalance storms: 3 instances, one stopped every 1.5-3.5 s for 60 s (half SIGKILL, then
#     SIGTERM only);
#   - decoder fuzzing: 1,000,000 arbitrary and near-valid messages per property;
#   - then the Redis outage (30 s), broker restart, mock cluster, Redis Cluster and store tests.
# Numbers are printed as the tests run (--nocapture).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh" --with-durable-broker
export FRAUD_SLA_TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"
export FRAUD_SLA_TANSU_SQLITE="${FRAUD_SLA_TANSU_SQLITE:-$BIN/tansu-sqlite}"
cd "$ROOT"
log "crash loop: ${FRAUD_SLA_CHAOS_KILLS:=20} kills, ${FRAUD_SLA_CHAOS_ALERTS:=1000} alerts"
FRAUD_SLA_CHAOS_KILLS=$FRAUD_SLA_CHAOS_KILLS FRAUD_SLA_CHAOS_ALERTS=$FRAUD_SLA_CHAOS_ALERTS \
    cargo test --release --test chaos -- --nocapture
log "rebalance storm: ${FRAUD_SLA_STORM_SECONDS:=60} s, stops every 1.5-3.5 s, half SIGKILL"
FRAUD_SLA_STORM_SECONDS=$FRAUD_SLA_STORM_SECONDS FRAUD_SLA_STORM_KILL_SHARE="${FRAUD_SLA_STORM_KILL_SHARE:-0.5}" \
    cargo test --release --test rebalance -- --nocapture
log "rebalance storm: $FRAUD_SLA_STORM_SECONDS s, clean leaves only (SIGTERM)"
FRAUD_SLA_STORM_SECONDS=$FRAUD_SLA_STORM_SECONDS FRAUD_SLA_STORM_KILL_SHARE=0 \
    cargo test --release --test rebalance storm -- --nocapture
log "fuzzing the decoder: ${PROPTEST_CASES:=1000000} cases per property"
PROPTEST_CASES=$PROPTEST_CASES cargo test --release --lib domain::validate::tests -- --nocapture
log "everything else once more, in release"
cargo test --release --test resilience --test broker_restart --test mock_cluster --test redis_variants --test store
