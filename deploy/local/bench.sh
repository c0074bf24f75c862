#!/usr/bin/env bash
# Benchmarks, printing numbers: the criterion domain bench, the Redis store bench, and an
# end-to-end run (fraud-sla simulate -> tansu -> fraud-sla run -> Redis -> escalations) on its own
# redis-server and tansu (ports 16379 / 19092), measuring:
#   - events/s from the first produced message until the processor applied the last one
#     (applied = written to Redis with its offset, i.e. durable);
#   - timer lateness p50/p99/max (fired_at - due_at) with thousands of clocks due at once;
#   - Redis bytes per open alert.
#   - the same under steady load (RATE alerts/s for 30 s, real-time dispositions).
# Sizes: ALERTS (throughput run, default 20000), SILENT (lateness run, default 5000), RATE (100).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh" >/dev/null
TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"
ALERTS="${ALERTS:-20000}"
SILENT="${SILENT:-5000}"
RATE="${RATE:-100}"
B="$LOCAL/bench"; rm -rf "$B"; mkdir -p "$B"
RP=16379; KP=19092; HP=19898

cd "$ROOT"
if [ "${SKIP_MICRO:-0}" != 1 ]; then
    log "criterion: cargo bench --bench domain"
    cargo bench --quiet --bench domain -- --noplot 2>&1 | grep -E "^[a-z_/ ]+time:|^\S.*\s+time:" || true
    log "store: cargo bench --bench store"
    cargo bench --quiet --bench store 2>&1 | grep -v "^\s*$" | grep -v Finished || true
fi

log "end to end: building the release binary"
cargo build --release --quiet
FS="$ROOT/target/release/fraud-sla"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
redis-server --port $RP --bind 127.0.0.1 --dir "$B" --save "" --appendonly no >"$B/redis.log" 2>&1 &
pids+=($!)
"$TANSU" broker --listener-url tcp://127.0.0.1:$KP --advertised-listener-url tcp://127.0.0.1:$KP \
    --storage-engine memory://tansu/ >"$B/tansu.log" 2>&1 &
pids+=($!)
wait_port $RP redis-server; wait_port $KP tansu

config() { # name, sla section
    local name=$1 sla=$2
    for t in alerts dispositions; do "$TANSU" topic create "$name.$t" --partitions 4 --broker tcp://127.0.0.1:$KP >/dev/null 2>&1; done
    for t in escalations deadletter; do "$TANSU" topic create "$name.$t" --partitions 1 --broker tcp://127.0.0.1:$KP >/dev/null 2>&1; done
    cat >"$B/$name.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$KP"
group_id = "bench-$name"
alerts_topic = "$name.alerts"
dispositions_topic = "$name.dispositions"
escalations_topic = "$name.escalations"
deadletter_topic = "$name.deadletter"
[kafka.client]
"session.timeout.ms" = 6000
"max.poll.interval.ms" = 10000
[redis]
url = "redis://127.0.0.1:$RP"
key_prefix = "$name"
[http]
listen = "127.0.0.1:$HP"
$sla
TOML
}

metric() { # sum of a metric's samples
    curl -fsS "http://127.0.0.1:$HP/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" { s += $2 } END { printf "%d", s }'
}
now_ms() { date +%s%3N; }
used_memory() { redis-cli -p $RP info memory | awk -F: '/^used_memory:/ { print $2+0 }'; }

start_processor() {
    "$FS" run --config "$B/$1.toml" >"$B/$1.log" 2>&1 &
    PROC=$!; pids+=($PROC)
    for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$HP/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "processor not ready" >&2; tail "$B/$1.log" >&2; exit 1
}
stop_processor() { kill -TERM "$PROC"; wait "$PROC" || true; }

# --- 1. throughput: the production policy (nothing fires during the run) -------------------------
config tput ""
start_processor tput
log "throughput: $ALERTS alerts with their dispositions, produced as fast as possible"
t0=$(now_ms)
"$FS" simulate --config "$B/tput.toml" --burst --count "$ALERTS" --late 0.2 --missing 0.1 --seed 7 --quiet \
    >"$B/simulate.out" 2>&1
t_produced=$(now_ms)
cat "$B/simulate.out"
# The summary line: "alerts N, dispositions M (D duplicates, E before their alert), ..."
events=$(grep -oE 'alerts [0-9]+' "$B/simulate.out" | head -1 | grep -oE '[0-9]+')
disps=$(grep -oE 'dispositions [0-9]+' "$B/simulate.out" | head -1 | grep -oE '[0-9]+')
total=$((events + disps))
while :; do
    applied=$(( $(metric fraud_sla_alerts_total) + $(metric fraud_sla_dispositions_total) + $(metric fraud_sla_duplicates_total) ))
    [ "$applied" -ge "$total" ] && break
    [ $(( $(now_ms) - t0 )) -gt 600000 ] && { echo "only $applied of $total applied after 10 min" >&2; break; }
    sleep 0.05
done
t1=$(now_ms)
stop_processor
elapsed=$((t1 - t0))
echo "RESULT throughput: $total events ($events alerts, $disps dispositions) applied in ${elapsed} ms" \
     "= $(( total * 1000 / elapsed )) events/s end to end (producing took $((t_produced - t0)) ms)"

# --- 2. timer lateness and footprint: silent alerts whose clocks come due together ---------------
config late '[sla]
visit_within = "20s"
meet_within = "40s"
feedback_within = "60s"
warn_before = "10s"
escalate_after = ["0s", "10s"]
notify = [["station_duty_officer"], ["station_chief"]]'
start_processor late
mem0=$(used_memory)
"$FS" watch --config "$B/late.toml" --from-beginning >"$B/escalations.txt" 2>/dev/null &
WATCH=$!; pids+=($WATCH)
log "lateness: $SILENT silent alerts; every one fires 9 escalations, thousands due in the same second"
# The board's event stream during the same burst: every escalation should reach a client, with no
# resync (a client that falls behind the hub gets one).
curl -sN "http://127.0.0.1:$HP/v1/events" >"$B/events.txt" 2>/dev/null &
SSE=$!; pids+=($SSE)
"$FS" simulate --config "$B/late.toml" --burst --count "$SILENT" --missing 1.0 --seed 11 --quiet >/dev/null 2>&1
until [ "$(metric fraud_sla_alerts_total)" -ge "$SILENT" ]; do sleep 0.05; done
open=$(metric fraud_sla_alerts_total); mem1=$(used_memory)
echo "RESULT footprint: $(( (mem1 - mem0) / open )) Redis bytes per open alert ($open open alerts, used_memory +$(( (mem1 - mem0) / 1024 )) KiB)"
want=$((SILENT * 9))
until [ "$(wc -l <"$B/escalations.txt")" -ge "$want" ]; do
    sleep 0.5
    [ $(( $(now_ms) - t1 )) -gt 300000 ] && break
done
kill "$WATCH" 2>/dev/null || true
kill "$SSE" 2>/dev/null || true
stop_processor
sse=$(grep -c '^event: escalation' "$B/events.txt" || true)
resyncs=$(grep -c '^event: resync' "$B/events.txt" || true)
# The firing window: from the first escalation's fired_at to the last one's, as the stream saw it.
span_ms=$(grep -oE '"fired_at":"[^"]+"' "$B/events.txt" | cut -d'"' -f4 | sort | sed -n '1p;$p' \
    | while read -r t; do date -d "$t" +%s%3N; done | paste -sd' ' | awk '{ d = $2 - $1; print (d > 0 ? d : 1) }')
echo "RESULT board events: $sse of $want escalations reached an SSE client ($resyncs resyncs), fired over ${span_ms} ms = $(( sse * 1000 / span_ms )) events/s"
grep -oE '\(\+[0-9]+ ms\)' "$B/escalations.txt" | grep -oE '[0-9]+' | sort -n >"$B/lateness.txt"
n=$(wc -l <"$B/lateness.txt")
pct() { sed -n "$(( ($1 * n + 99) / 100 ))p" "$B/lateness.txt"; }
echo "RESULT timer lateness over $n warnings/breaches: p50 $(pct 50) ms, p99 $(pct 99) ms, max $(tail -1 "$B/lateness.txt") ms"

# --- 3. timer lateness under steady load: alerts arrive at RATE/s with real-time dispositions ----
config steady '[sla]
visit_within = "10s"
meet_within = "20s"
feedback_within = "30s"
warn_before = "5s"
escalate_after = ["0s", "5s"]
notify = [["station_duty_officer"], ["station_chief"]]'
start_processor steady
"$FS" watch --config "$B/steady.toml" --from-beginning >"$B/steady.txt" 2>/dev/null &
WATCH=$!; pids+=($WATCH)
log "steady load: $RATE alerts/s for 30 s (30% late, 20% silent), then until the last clocks fire"
"$FS" simulate --config "$B/steady.toml" --rate "$RATE" --count $((RATE * 30)) --late 0.3 --missing 0.2 \
    --seed 5 --follow --quiet >"$B/steady-simulate.out" 2>&1
sleep 40   # the last alerts' feedback ladders (30 s + 5 s) finish
kill "$WATCH" 2>/dev/null || true
stop_processor
grep -oE '\(\+[0-9]+ ms\)' "$B/steady.txt" | grep -oE '[0-9]+' | sort -n >"$B/lateness.txt"
n=$(wc -l <"$B/lateness.txt")
echo "RESULT steady timer lateness over $n warnings/breaches: p50 $(pct 50) ms, p99 $(pct 99) ms, max $(tail -1 "$B/lateness.txt") ms"
