#!/usr/bin/env bash
# The broker alone (BENCHMARKS.md, "The reader's p99 and the broker"): a record's time from a
# producer to a tailing reader against the batches its partition holds, on tansu's memory storage
# (the bench's broker) and, where installed, its SQLite storage. A Python client (confluent-kafka,
# from PyPI into .local/venv-broker-fetch); nothing of fraud-sla runs. Not part of the tests.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh" >/dev/null
TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"
VENV="$LOCAL/venv-broker-fetch"
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q confluent-kafka; }
KP=19192
B="$LOCAL/broker-fetch"; rm -rf "$B"; mkdir -p "$B"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

measure() { # name, tansu binary, storage engine
    log "$1"
    (cd "$B" && exec "$2" broker --listener-url tcp://127.0.0.1:$KP --advertised-listener-url tcp://127.0.0.1:$KP \
        --storage-engine "$3" >"$B/$1.log" 2>&1) &
    pid=$!
    wait_port $KP tansu
    "$TANSU" topic create fetch --partitions 1 --broker tcp://127.0.0.1:$KP >/dev/null
    "$VENV/bin/python" "$ROOT/deploy/local/broker-fetch.py" 127.0.0.1:$KP fetch 2>>"$B/$1.client.log"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

measure memory "$TANSU" memory://tansu/
SQLITE="${FRAUD_SLA_TANSU_SQLITE:-$BIN/tansu-sqlite}"
[ -x "$SQLITE" ] && measure sqlite "$SQLITE" sqlite://tansu.db
exit 0
