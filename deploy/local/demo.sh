#!/usr/bin/env bash
# README command 1: the whole job on this machine. Installs what is missing, starts redis-server and
# tansu on loopback, runs `fraud-sla run --config config/demo.toml` (deadlines in seconds), feeds it
# with `fraud-sla simulate`, and prints every escalation as it fires. Ctrl-C stops the processor and
# the simulator; deploy/local/down.sh stops the servers.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/up.sh"

log "building fraud-sla (release)"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
FRAUD_SLA="$ROOT/target/release/fraud-sla"
CONFIG="$ROOT/config/demo.toml"
"$FRAUD_SLA" check-config --config "$CONFIG" | sed 's/^/    /'

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f "$RUN/fraud-sla.pid"
    log "stopped; the servers still run (deploy/local/down.sh stops them)"
}
trap cleanup INT TERM EXIT

log "starting the processor (log: $RUN/fraud-sla.log)"
"$FRAUD_SLA" run --config "$CONFIG" >"$RUN/fraud-sla.log" 2>&1 &
pids+=($!); echo $! >"$RUN/fraud-sla.pid"
for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:9898/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "${pids[0]}" 2>/dev/null; then cat "$RUN/fraud-sla.log" >&2; exit 1; fi
    sleep 0.1
done
curl -fsS "http://127.0.0.1:9898/readyz" >/dev/null || { echo "processor not ready" >&2; tail -20 "$RUN/fraud-sla.log" >&2; exit 1; }

cat <<INFO

  fraud-sla is running (demo policy: visit 20 s, high risk 15 s, meet 40 s, feedback 2 min).
    the board        http://127.0.0.1:9898/          (值班看板: at-risk, overdue, stations; 中文 / English)
    metrics          http://127.0.0.1:9898/metrics
    overdue alerts   http://127.0.0.1:9898/v1/overdue?limit=20
    one alert        http://127.0.0.1:9898/v1/alerts/<alert_id>
    health           http://127.0.0.1:9898/healthz   http://127.0.0.1:9898/readyz
  Escalations follow as they fire (warnings 10 s before a deadline, breaches at it).
  Ctrl-C to stop.

INFO

"$FRAUD_SLA" watch --config "$CONFIG" &
pids+=($!)
"$FRAUD_SLA" simulate --config "$CONFIG" --rate 2 --late 0.3 --missing 0.2 --follow --quiet \
    >>"$RUN/simulate.log" 2>&1 &
pids+=($!)
wait "${pids[0]}"
