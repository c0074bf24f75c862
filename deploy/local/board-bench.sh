#!/usr/bin/env bash
# What a board list request costs at scale (docs/contract.md §10.4: /v1/open, /v1/overdue):
# BOARD_ALERTS open alerts (default 1 000 000) over BOARD_PARTITIONS partitions (default 8),
# their index entries written through the real batch script into a fresh redis-server on a free
# port, then pages read exactly as the handler reads them (one list_stages.lua call per partition,
# all at once, merged): unfiltered first page, a deep cursor, prefix filters, overdue.
# Prints p50/p99 per page and Redis bytes per open alert for the board's keys.
# Runs in about a minute after the build (benches/store.rs, `board`).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v redis-server >/dev/null || { echo "redis-server not found: run deploy/local/install.sh" >&2; exit 1; }
cd "$ROOT"
log "building the store bench (release)"
cargo bench --quiet --no-run --bench store
log "board bench: ${BOARD_ALERTS:-1000000} open alerts, ${BOARD_PARTITIONS:-8} partitions"
BOARD_ALERTS="${BOARD_ALERTS:-1000000}" BOARD_PARTITIONS="${BOARD_PARTITIONS:-8}" \
    cargo bench --quiet --bench store
