#!/usr/bin/env bash
# README command 2: everything CI checks. Installs redis-server and tansu if missing, then runs
# formatting, lints and every test (unit, property, and integration tests against real
# redis-server and tansu processes that the test harness starts on free loopback ports).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh" --with-durable-broker
export FRAUD_SLA_TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"
export FRAUD_SLA_TANSU_SQLITE="${FRAUD_SLA_TANSU_SQLITE:-$BIN/tansu-sqlite}"
cd "$ROOT"
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings
log "cargo deny: licences, bans, sources"
command -v cargo-deny >/dev/null || cargo install --locked --quiet cargo-deny@0.20.2
cargo deny check licenses bans sources
# Advisories need the RustSec database from GitHub: checked wherever GitHub answers.
if curl -s -m 10 -o /dev/null https://github.com/rustsec/advisory-db; then
    log "cargo deny: advisories"
    cargo deny check advisories
else
    log "cargo deny: advisories skipped (github.com unreachable for the RustSec database)"
fi
log "cargo test"
cargo test --locked --lib --bins --tests -- "$@"
log "the integration scenarios again, unchanged, on a 3-master Redis Cluster"
FRAUD_SLA_TEST_REDIS=cluster cargo test --locked --test scenarios -- "$@"
log "benchmarks compile and run once (criterion --test mode)"
cargo test --locked --bench domain
