#!/usr/bin/env bash
# The benchmark of issue 12: one run measures the same workload on fraud-sla and on BullMQ, prints
# a table of ratios and writes a JSON record (one file per run) to benchmarks/. BENCHMARKS.md
# explains the workload, the figures and the knobs, and shows the last results (the report
# rewrites them). Nothing here runs in `cargo test`.
#
# fraud-sla (release build) on its own redis-server (127.0.0.1:16379) and tansu (19092), input
# topics with PARTITIONS partitions, `fraud-sla simulate` producing, /metrics (19098) telling
# what was applied, `fraud-sla watch` as the Kafka reader that stamps arrival times:
#   1. drain    ALERTS alerts + their dispositions produced before the processor starts, then
#               timed until every message is applied (in Redis with its offset).
#   2. open     OPEN silent alerts, production policy (nothing fires), drained the same way; Redis
#               used_memory per open alert, and MEMORY USAGE by key type.
#   3. probe    with those still open, PROBE_RATE low-risk alerts/s for PROBE_SECONDS whose ladder
#               ([sla.risk.low], put in force with SIGHUP) runs in seconds: fired - due, and
#               arrival at the reader - due, split at the record's Kafka timestamp.
#   4. overload probes' clocks due while OVERLOAD alerts arrive faster than they are applied:
#               fired - due, and warnings sent.
#   5. burst    BURST silent alerts whose nine escalations each come due at the same time:
#               fired - due, and the board's event stream (events reaching an SSE client, resyncs,
#               bytes).
#   6. restart  RESTART open alerts; SIGKILL just before their deadlines, restart with the same
#               config once they have passed: seconds until the first and the last is published.
# BullMQ (deploy/local/bullmq/bench.mjs, installed with `npm ci`) on its own redis-server (16380):
# the same drain, open set, probes and burst as delayed jobs.
#
# Knobs: ALERTS (200000), LATE (0.2), MISSING (0.52), OPEN (1000000), PROBE_RATE (50),
# PROBE_SECONDS (30), OVERLOAD (400000; 0 skips it), OVERLOAD_PROBES (1000), OVERLOAD_RATE
# (alerts/s; as fast as the broker takes them when unset), BURST (10000), RESTART (3000),
# PARTITIONS (8), OPEN_MAX_SECONDS (cap on BullMQ's arming, 240), SKIP_MICRO=1 (no criterion /
# store micro benches), SKIP_BULLMQ=1, REDIS_AOF=1 (appendonly everysec on both redis-servers; off
# by default on both),
# LISTPACK_VALUE (hash- and zset-max-listpack-value on both, 128; Redis's default is 64),
# READER_WAIT_MS (the Kafka reader's fetch.wait.max.ms, 10), BOARD_OPEN=1 (a board page, an SSE
# client of /v1/events, connected to the processor through every phase, and the bytes it got in
# the drain; by default only through the burst: the board reads the escalations and changes back
# only while a page is connected), KAFKA_CLIENT (TOML lines added to every configuration's
# [kafka.client], simulate's and the reader's included: '"compression.type" = "lz4"', say).
PARTS="${PARTITIONS:-8}"   # read before common.sh, whose PARTITIONS is the demo's
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh" >/dev/null
TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"
ALERTS="${ALERTS:-200000}"
LATE="${LATE:-0.2}"
MISSING="${MISSING:-0.52}"
OPEN="${OPEN:-1000000}"
PROBE_RATE="${PROBE_RATE:-50}"
PROBE_SECONDS="${PROBE_SECONDS:-30}"
BURST="${BURST:-10000}"
RESTART="${RESTART:-3000}"
OVERLOAD="${OVERLOAD:-400000}"
OVERLOAD_PROBES="${OVERLOAD_PROBES:-1000}"
OVERLOAD_RATE="${OVERLOAD_RATE:-}"
READER_WAIT="${READER_WAIT_MS:-10}"
BOARD_OPEN="${BOARD_OPEN:-0}"
KAFKA_CLIENT="${KAFKA_CLIENT:-}"
BURST_DUE=20     # seconds from a burst alert's issued_at to its nine escalations
RESTART_DUE=20   # seconds from a restart alert's issued_at to its three breaches
B="$LOCAL/bench"; rm -rf "$B"; mkdir -p "$B"
RP=16379; BRP=16380; KP=19092; HP=19098
FIGS="$B/figures.txt"; : >"$FIGS"

cd "$ROOT"
if [ "${SKIP_MICRO:-0}" != 1 ]; then
    log "criterion: cargo bench --bench domain"
    cargo bench --quiet --bench domain -- --noplot 2>&1 | grep -E "^[a-z_/ ]+time:|^\S.*\s+time:" || true
    log "store: cargo bench --bench store"
    cargo bench --quiet --bench store 2>&1 | grep -v "^\s*$" | grep -v Finished || true
fi

log "building the release binary"
cargo build --release --quiet
FS="$ROOT/target/release/fraud-sla"

now_ms() { date +%s%3N; }
fig() { echo "$1 ${*:2}" >>"$FIGS"; }              # a figure for the report: name value
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
sleep_until() { local d=$(( $1 - $(now_ms) )); [ "$d" -le 0 ] || sleep "$(awk -v d="$d" 'BEGIN { printf "%.3f", d / 1000 }')"; }
rc() { redis-cli -p "$RP" "$@"; }
# CPU time (user + system, clock ticks) of the processor, fraud-sla's redis-server and tansu, so
# each phase can say which of them its figure costs: `<phase>.cpu_s` in seconds, in that order.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_mark() { echo "$(ticks "$PROC") $(ticks "$REDIS_PID") $(ticks "$TANSU_PID")"; }
cpu_fig() { # phase, mark before, mark after, what a unit is, units: a figure and a line
    local cpu
    cpu=$(awk -v c="$(getconf CLK_TCK)" -v a="$2" -v b="$3" 'BEGIN { split(a, x); split(b, y)
        printf "%.2f %.2f %.2f", (y[1] - x[1]) / c, (y[2] - x[2]) / c, (y[3] - x[3]) / c }')
    fig "$1.cpu_s" "$cpu"
    awk -v cpu="$cpu" -v what="$4" -v n="$5" 'BEGIN { split(cpu, s)
        printf "   CPU %s: processor %.1f µs, Redis %.1f µs, tansu %.1f µs (%.2f, %.2f, %.2f s in all)\n",
            what, s[1] * 1e6 / n, s[2] * 1e6 / n, s[3] * 1e6 / n, s[1], s[2], s[3] }'
}
used_memory() { redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }
# Redis's time by command since the last CONFIG RESETSTAT, per unit (phase, what a unit is,
# units): the six that took most, a script's inner commands counted in it and again on their
# own. A figure and a line.
redis_commands() {
    local top
    top=$(rc info commandstats | tr -d '\r' | awk -F'[:,=]' -v n="$3" '/^cmdstat_/ {
        sub(/^cmdstat_/, "", $1); printf "%s %.2f %d\n", $1, $5 / n, $3 }' | sort -k2 -g -r | head -6)
    fig "$1.redis_us_by_command" "$(echo "$top" | awk '{ printf "%s%s=%s", (NR > 1 ? "," : ""), $1, $2 }')"
    echo "$top" | awk -v what="$2" '{ l = l sprintf("%s%s %.2f µs (%d calls)", (NR > 1 ? ", " : ""), $1, $2, $3) }
        END { print "   Redis " what " by command (a script with the commands it calls): " l }'
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
persistence=(--save "" --appendonly no)
[ "${REDIS_AOF:-0}" = 1 ] && persistence=(--save "" --appendonly yes --appendfsync everysec)
# As docs/scaling.md recommends for fraud-sla's Redis (records and index entries up to 128 bytes
# in listpack buckets); the same on BullMQ's, whose job hashes it also lets stay listpacks.
persistence+=(--hash-max-listpack-value "${LISTPACK_VALUE:-128}" --zset-max-listpack-value "${LISTPACK_VALUE:-128}")
redis-server --port $RP --bind 127.0.0.1 --dir "$B" "${persistence[@]}" >"$B/redis.log" 2>&1 &
REDIS_PID=$!; pids+=($REDIS_PID)
"$TANSU" broker --listener-url tcp://127.0.0.1:$KP --advertised-listener-url tcp://127.0.0.1:$KP \
    --storage-engine memory://tansu/ >"$B/tansu.log" 2>&1 &
TANSU_PID=$!; pids+=($TANSU_PID)
wait_port $RP redis-server; wait_port $KP tansu

topics() { # name: inputs with PARTS partitions, outputs with one
    for t in alerts dispositions; do
        "$TANSU" topic create "$1.$t" --partitions "$PARTS" --broker tcp://127.0.0.1:$KP >/dev/null 2>&1
    done
    for t in escalations deadletter; do
        "$TANSU" topic create "$1.$t" --partitions 1 --broker tcp://127.0.0.1:$KP >/dev/null 2>&1
    done
}

write_config() { # file, topics and key prefix, group, [kafka.client] lines, policy
    cat >"$1" <<TOML
[kafka]
brokers = "127.0.0.1:$KP"
group_id = "$3"
alerts_topic = "$2.alerts"
dispositions_topic = "$2.dispositions"
escalations_topic = "$2.escalations"
deadletter_topic = "$2.deadletter"
[kafka.client]
$4
$KAFKA_CLIENT
[redis]
url = "redis://127.0.0.1:$RP"
key_prefix = "$2"
[http]
listen = "127.0.0.1:$HP"
[display]
timezone = "UTC"
language = "en"
$5
TOML
}

# The production policy: config/default.toml's [sla] and [sla.*] sections as shipped.
PRODUCTION="$(shipped_policy)"
# Probes: low risk runs its ladder in seconds (nine escalations per alert); the rest as shipped.
PROBE="$PRODUCTION
[sla.risk.low]
visit_within = \"5s\"
meet_within = \"10s\"
feedback_within = \"15s\"
warn_before = \"2s\"
escalate_after = [\"0s\", \"2s\"]
notify = [[\"station_duty_officer\"], [\"station_chief\"]]"
# The burst: every stage due at the same time, three levels paged together, no warning: nine
# escalations per alert, all due at issued_at + BURST_DUE.
BURST_POLICY="[sla]
visit_within = \"${BURST_DUE}s\"
meet_within = \"${BURST_DUE}s\"
feedback_within = \"${BURST_DUE}s\"
warn_before = \"0s\"
escalate_after = [\"0s\", \"0s\", \"0s\"]
notify = [[\"station_duty_officer\"], [\"station_chief\"], [\"sub_bureau_command\"]]"
# The restart: three breaches per alert, due at issued_at + RESTART_DUE.
RESTART_POLICY="[sla]
visit_within = \"${RESTART_DUE}s\"
meet_within = \"${RESTART_DUE}s\"
feedback_within = \"${RESTART_DUE}s\"
warn_before = \"0s\"
escalate_after = [\"0s\"]
notify = [[\"station_duty_officer\"]]"

metrics() { curl -fsS "http://127.0.0.1:$HP/metrics"; }
metric() { # sum of a metric's samples, optionally only those whose labels contain $2
    metrics | awk -v n="$1" -v l="${2:-}" '$1 ~ "^"n"({|$)" && index($1, l) { s += $2 } END { printf "%d", s }'
}
applied() { messages_applied "$HP"; }
# Escalations of key prefix $1 not yet acknowledged by the broker: in its partitions' outboxes. An
# entry holds a batch's escalations, `n` of them (one, as `id` and `e`, before that).
count_outbox='local s = 0 for _, e in ipairs(redis.call("XRANGE", KEYS[1], "-", "+")) do local n = 1 for j = 1, #e[2], 2 do if e[2][j] == "n" then n = tonumber(e[2][j + 1]) end end s = s + n end return s'
outbox_left() { for p in $(seq 0 $((PARTS - 1))); do rc eval "$count_outbox" 1 "{$1:$p}:outbox"; done | awk '{ s += $1 } END { print s + 0 }'; }
wait_published() { # key prefix, timeout in s: the time (ms) its outboxes were empty
    local until=$(( $(now_ms) + $2 * 1000 ))
    until [ "$(outbox_left "$1")" = 0 ]; do
        [ "$(now_ms)" -lt "$until" ] || { echo "escalations still in the outbox after $2 s" >&2; break; }
        sleep 0.05
    done
    now_ms
}
# The timed phases poll the processor 20 times a second. With curl, awk, date and sleep a poll
# cost ~9 ms of CPU in forks, 18% of a core taken from the 2-core machine being measured, while
# its redis-server waited for a core 9-13% of the open phase (/proc/<pid>/schedstat). One Python
# process a phase polls on one connection instead (~0.5 ms of CPU a poll).
wait_applied() { # target, timeout in s; the time (ms) it was reached
    python3 - "$HP" "$1" "$2" "$APPLIED_METRICS" <<'PY'
import http.client, sys, time
port, target, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
counted = set(sys.argv[4].split())
until, conn, n = time.time() + timeout, None, 0
while True:
    try:
        conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        lines = conn.getresponse().read().decode().splitlines()
        n = sum(int(float(l.rsplit(" ", 1)[1])) for l in lines
                if l.split("{", 1)[0].split(" ", 1)[0] in counted)
    except (OSError, http.client.HTTPException):
        conn, n = None, 0
    if n >= target:
        break
    if time.time() > until:
        print(f"only {n} of {target} messages applied after {timeout:g} s", file=sys.stderr)
        break
    time.sleep(0.05)
print(int(time.time() * 1000))
PY
}
start_processor() { # config; sets PROC and T_READY
    "$FS" run --config "$1" >>"$1.log" 2>&1 &
    PROC=$!; pids+=($PROC)
    for _ in $(seq 1 600); do
        if curl -fsS "http://127.0.0.1:$HP/readyz" >/dev/null 2>&1; then
            T_READY=$(now_ms)
            if [ "$BOARD_OPEN" = 1 ]; then
                curl -sN "http://127.0.0.1:$HP/v1/events" >>"$B/board-events.txt" 2>/dev/null &
                pids+=($!)
            fi
            return 0
        fi
        sleep 0.05
    done
    echo "processor not ready" >&2; tail "$1.log" >&2; exit 1
}
stop_processor() { kill -TERM "$PROC"; wait "$PROC" || true; }
board_bytes() { stat -c %s "$B/board-events.txt" 2>/dev/null || echo 0; } # what BOARD_OPEN's page got
reload() { # config file rewritten: SIGHUP, then wait until its policy is in force
    local version
    version=$("$FS" check-config --config "$1" | awk '/^policy_version/ { print $3 }')
    kill -HUP "$PROC"
    for _ in $(seq 1 200); do
        metrics | grep -q "fraud_sla_policy_info{policy_version=\"$version\"} 1" && return 0
        sleep 0.05
    done
    echo "policy $version not in force after SIGHUP" >&2; exit 1
}
simulate() { # config, options...: the summary line; every message must have been delivered
    local out
    if ! out=$("$FS" simulate --config "$1" "${@:2}" --quiet 2>&1); then echo "simulate: $out" >&2; exit 1; fi
    echo "$out" >>"$B/simulate.out"
    grep -q 'delivery failures 0, unsent 0' <<<"$out" || { echo "simulate: $out" >&2; exit 1; }
    echo "$out"
}
count() { grep -oE "$1 [0-9]+" <<<"$2" | head -1 | grep -oE '[0-9]+'; }

# MEMORY USAGE by key kind: every key of the run (SCAN), its kind the part after the hash tag
# with alert ids, buckets and dates generalised; records under their own keys from a sample of
# 3,000 scaled to their count. Per open alert, and what MEMORY USAGE does not see.
memory_breakdown() { # open alerts, used_memory delta
    local open=$1 delta=$2
    rc --scan | awk '{
        k = $0; sub(/^\{[^}]*\}:/, "", k); n = split(k, part, ":")
        if (part[1] == "a") kind = "a:<alert_id>"
        else if (part[1] == "r" || part[1] == "clock" || part[1] == "ids") kind = part[1] ":<bucket>"
        else if (part[1] == "due" && part[2] ~ /^\+/) kind = "due:" part[2] ":<bucket>"
        else if (part[1] == "due" && part[2] == "shared") kind = k
        else if (part[1] == "due" || part[1] == "late") kind = part[1] ":<bucket>"
        else if (part[1] == "day") kind = "day:<date>"
        else kind = k
        print kind, $0 }' >"$B/keys.txt"
    awk '$1 != "a:<alert_id>" || n++ < 3000 { print $2 }' "$B/keys.txt" >"$B/mem-keys.txt"
    sed 's/^/MEMORY USAGE /; s/$/ SAMPLES 0/' "$B/mem-keys.txt" | rc >"$B/mem-usage.txt"
    paste -d' ' "$B/mem-keys.txt" "$B/mem-usage.txt" | awk -v keys="$B/keys.txt" '
        BEGIN { while ((getline line < keys) > 0) { split(line, f, " "); kind[f[2]] = f[1]; count[f[1]]++ } }
        $2 ~ /^[0-9]+$/ { k = kind[$1]; bytes[k] += $2; seen[k]++ }
        END { for (k in bytes) printf "{p}:%s %d %d\n", k, count[k], bytes[k] / seen[k] * count[k] }' \
        | sort -k3,3nr >"$B/memory.txt"
    local seen
    seen=$(awk '{ s += $3 } END { print s + 0 }' "$B/memory.txt")
    echo "(unaccounted:dict,expiry,allocator) - $((delta - seen))" >>"$B/memory.txt"
    echo "   MEMORY USAGE by key kind at $open open alerts (records under their own keys: the mean of a sample):"
    awk -v open="$open" '{ printf "     %-38s %8s keys %12d bytes %6.0f per open alert\n", $1, $2, $3, $3 / open }' "$B/memory.txt"
    while read -r line; do fig "memory.fraud_sla $line"; done <"$B/memory.txt"
}

fig machine.hostname "$(hostname)"
fig machine.nproc "$(nproc)"
fig machine.cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
fig machine.ram_gib "$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
fig machine.kernel "$(uname -sr)"
fig machine.redis "$(redis-server --version | grep -oE 'v=[^ ]+' | cut -d= -f2)"
fig machine.tansu "$("$TANSU" --version | awk '{ print $2 }')"
fig machine.node "$(node --version 2>/dev/null || echo none)"
fig machine.redis_persistence "$([ "${REDIS_AOF:-0}" = 1 ] && echo "appendonly everysec" || echo "none (no AOF, no RDB) on both")"
fig machine.redis_listpack_value "${LISTPACK_VALUE:-128}"
fig sizes "ALERTS=$ALERTS LATE=$LATE MISSING=$MISSING OPEN=$OPEN PROBE_RATE=$PROBE_RATE PROBE_SECONDS=$PROBE_SECONDS OVERLOAD=$OVERLOAD OVERLOAD_PROBES=$OVERLOAD_PROBES OVERLOAD_RATE=${OVERLOAD_RATE:-0} BURST=$BURST RESTART=$RESTART PARTITIONS=$PARTS READER_WAIT_MS=$READER_WAIT BOARD_OPEN=$BOARD_OPEN"
[ -n "$KAFKA_CLIENT" ] && fig kafka_client "$(tr '\n' ' ' <<<"$KAFKA_CLIENT" | sed 's/ *$//')"
fig load.start "$(loadavg)"

# The Kafka reader of phases 3-6, started now because joining a new group takes tansu ~20 s:
# every escalation stamped with its arrival time (ms) as `fraud-sla watch` prints it. It asks the
# broker every READER_WAIT ms (fetch.wait.max.ms): tansu 0.6 holds every fetch for the whole
# wait, data or not, so a message reaches the reader up to about one wait after the producer
# sent it (a Kafka broker answers as soon as it has data; BENCHMARKS.md). One
# message that is no escalation (an alert, sent by simulate) tells when it reads: watch prints
# "(unreadable escalation at offset 0)" and the board skips it with a warning. Each line is led by
# the record's Kafka timestamp (--print-timestamp), when the processor handed it to its producer:
# the report splits the reader's figure into the processor's part and the broker's.
topics main
write_config "$B/reader.toml" main bench-reader "\"fetch.wait.max.ms\" = \"$READER_WAIT\"" ""
"$FS" watch --config "$B/reader.toml" --from-beginning --print-timestamp \
    > >(python3 -uc 'import sys, time
for line in sys.stdin: sys.stdout.write("%d %s" % (time.time() * 1000, line))' >"$B/reader.txt") 2>"$B/reader.log" &
pids+=($!)
sed 's/^alerts_topic = .*/alerts_topic = "main.escalations"/; s/^dispositions_topic = .*/dispositions_topic = "main.deadletter"/' \
    "$B/reader.toml" >"$B/sentinel.toml"
simulate "$B/sentinel.toml" --burst --count 1 --missing 1.0 >/dev/null

# --- 1. drain: a backlog produced before the processor starts ----------------------------------
topics drain
write_config "$B/drain.toml" drain bench-drain "" "$PRODUCTION"
log "1. drain: producing $ALERTS alerts with their dispositions (late $LATE, missing $MISSING), processor stopped"
out=$(simulate "$B/drain.toml" --burst --count "$ALERTS" --late "$LATE" --missing "$MISSING" --seed 7)
echo "   $out"
n_alerts=$(count alerts "$out"); n_disps=$(count dispositions "$out"); total=$((n_alerts + n_disps))
fig load.drain "$(loadavg)"
t_start=$(now_ms)
page0=$(board_bytes)
start_processor "$B/drain.toml"
cpu0=$(cpu_mark)
t_done=$(wait_applied "$total" 900)
cpu1=$(cpu_mark)
[ "$BOARD_OPEN" = 1 ] && fig drain.sse_bytes $(($(board_bytes) - page0))
# The escalations the backlog fired (breaches of silent and late alerts, and their resolutions)
# are with the broker once the outboxes are empty; the processor's peak memory is theirs mostly.
t_out=$(wait_published drain 300)
escalations=$(metric fraud_sla_escalations_total)
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$PROC/status")
# Redis started empty: its peak is the drain's, the outbox's share included.
redis_peak=$(rc info memory | awk -F: '/^used_memory_peak:/ { print $2 + 0 }')
stop_processor
ms=$((t_done - T_READY))
fig drain.alerts "$n_alerts"; fig drain.dispositions "$n_disps"; fig drain.messages "$total"
fig drain.startup_ms $((T_READY - t_start)); fig drain.ms "$ms"
fig drain.escalations "$escalations"; fig drain.published_ms $((t_out - T_READY)); fig drain.processor_hwm_kib "$hwm"
fig drain.redis_peak_bytes "$redis_peak"
echo "RESULT drain: $total messages ($n_alerts alerts, $n_disps dispositions) applied in $ms ms after ready" \
     "= $((total * 1000 / ms)) messages/s, $((n_alerts * 1000 / ms)) alerts/s (start-up to ready $((T_READY - t_start)) ms)"
echo "RESULT drain: $escalations escalations fired, all with the broker $((t_out - T_READY)) ms after ready;" \
     "the processor's peak resident memory $((hwm / 1024)) MiB, Redis's peak used_memory $((redis_peak / 1048576)) MiB"
cpu_fig drain "$cpu0" "$cpu1" "a message" "$total"

# --- 2. open: OPEN alerts, production policy, nothing fires -------------------------------------
rc flushall sync >/dev/null
# Static membership: a restarted processor rejoins as the same member (docs/contract.md §6
# passes [kafka.client] to librdkafka as is). session.timeout.ms stays at the processor's 10 s.
write_config "$B/main.toml" main bench-main '"group.instance.id" = "bench-1"' "$PRODUCTION"
log "2. open: producing $OPEN silent alerts, processor stopped"
out=$(simulate "$B/main.toml" --burst --count "$OPEN" --missing 1.0 --seed 9)
echo "   $out"
mem0=$(used_memory $RP)
fig load.open "$(loadavg)"
t_start=$(now_ms)
rc config resetstat >/dev/null
start_processor "$B/main.toml"
cpu0=$(cpu_mark)
t_done=$(wait_applied "$OPEN" 900)
cpu1=$(cpu_mark)
ms=$((t_done - T_READY))
redis_commands open "a message" "$OPEN"
sleep 1
mem1=$(used_memory $RP)
# The board's change streams keep the last 10 s of writes (EVENTS_WINDOW_MS), however many alerts
# are open: right after this phase, the changes of its last 10 s (more, the faster the machine:
# 13 bytes an open alert at 25,000 messages/s, 28 at 55,000), in steady state a few. Measured
# apart, not counted per open alert.
window=$(rc --scan --pattern '*:events' | sed 's/^/MEMORY USAGE /; s/$/ SAMPLES 0/' | rc | awk '{ s += $1 } END { print s + 0 }')
per=$(( (mem1 - mem0 - window) / OPEN ))
fig open.alerts "$OPEN"; fig open.ms "$ms"; fig open.startup_ms $((T_READY - t_start))
fig open.used_memory_delta $((mem1 - mem0)); fig open.events_window_bytes "$window"
fig open.bytes_per_alert "$per"
echo "RESULT open: $OPEN alerts applied in $ms ms after ready = $((OPEN * 1000 / ms)) messages/s;" \
     "Redis used_memory +$(( (mem1 - mem0) / 1048576 )) MiB, of which the board's 10-second change" \
     "window $((window / 1048576)) MiB; the rest = $per bytes per open alert"
cpu_fig open "$cpu0" "$cpu1" "a message" "$OPEN"
memory_breakdown "$OPEN" $((mem1 - mem0))

# --- 3. probes at steady rate, with the open alerts still open ----------------------------------
write_config "$B/main.toml" main bench-main '"group.instance.id" = "bench-1"' "$PROBE"
reload "$B/main.toml"
rate=$(awk -v r="$PROBE_RATE" 'BEGIN { printf "%.3f", r / 0.3 }')   # 30% of simulate's alerts are low risk
low0=$(metric fraud_sla_alerts_total 'risk="low"'); a0=$(applied)
until=$(( $(now_ms) + 120000 ))
until grep -q unreadable "$B/reader.txt" || [ "$(now_ms)" -gt "$until" ]; do sleep 0.2; done
grep -q unreadable "$B/reader.txt" || { echo "the Kafka reader did not join its group in 2 min" >&2; exit 1; }
before=$(wc -l <"$B/reader.txt")
log "3. probe: $PROBE_RATE low-risk alerts/s (of $rate alerts/s) for $PROBE_SECONDS s, nine escalations each within 17 s"
fig load.probe "$(loadavg)"
fig probe.start_ms "$(now_ms)"
out=$(simulate "$B/main.toml" --rate "$rate" --count "$(awk -v r="$rate" -v s="$PROBE_SECONDS" 'BEGIN { printf "%d", r * s }')" --missing 1.0 --seed 13)
echo "   $out"
wait_applied $((a0 + $(count alerts "$out"))) 60 >/dev/null
probes=$(( $(metric fraud_sla_alerts_total 'risk="low"') - low0 ))
want=$((before + probes * 9))
until=$(( $(now_ms) + 90000 ))
until [ "$(wc -l <"$B/reader.txt")" -ge "$want" ] || [ "$(now_ms)" -gt "$until" ]; do sleep 0.5; done
fig probe.alerts "$probes"; fig probe.expected $((probes * 9))
echo "RESULT probe: $probes probe alerts, $(( $(wc -l <"$B/reader.txt") - before )) of $((probes * 9)) escalations read (figures in the table)"

# --- 4. overload: clocks due while input arrives faster than it is applied ----------------------
# OVERLOAD_PROBES alerts under the probe policy (a third low risk: nine escalations each, due 3-17 s
# after issued_at), applied first; then the shipped policy back in force (its alerts keep their
# ladder, the load's fire nothing) and, from 2 s after the probes, OVERLOAD alerts as fast as the
# broker takes them (or OVERLOAD_RATE a second): more than the processor applies, so its queues
# never empty until the load is applied. fired - due of the probes' escalations.
if [ "$OVERLOAD" -gt 0 ]; then
    before=$(wc -l <"$B/reader.txt"); low0=$(metric fraud_sla_alerts_total 'risk="low"'); a0=$(applied)
    if [ -n "$OVERLOAD_RATE" ]; then pace=(--rate "$OVERLOAD_RATE"); else pace=(--burst); fi
    log "4. overload: $OVERLOAD_PROBES alerts under the probe policy, then $OVERLOAD alerts (${pace[*]})"
    fig load.overload "$(loadavg)"
    t_probes=$(now_ms); fig overload.probes_ms "$t_probes"
    out=$(simulate "$B/main.toml" --burst --count "$OVERLOAD_PROBES" --missing 1.0 --seed 19)
    wait_applied $((a0 + OVERLOAD_PROBES)) 60 >/dev/null
    probes=$(( $(metric fraud_sla_alerts_total 'risk="low"') - low0 ))
    write_config "$B/main.toml" main bench-main '"group.instance.id" = "bench-1"' "$PRODUCTION"
    reload "$B/main.toml"
    sleep_until $((t_probes + 2000))
    a0=$(applied)
    fig overload.start_ms "$(now_ms)"
    out=$(simulate "$B/main.toml" "${pace[@]}" --count "$OVERLOAD" --missing 1.0 --seed 23)
    fig overload.produced_ms "$(now_ms)"
    echo "   $out"
    fig overload.applied_ms "$(wait_applied $((a0 + OVERLOAD)) 300)"
    # Six breaches a probe; its three warnings are not sent once their deadline has passed (§3).
    breaches() { tail -n +$((before + 1)) "$B/reader.txt" | grep -c BREACH; }
    until=$(( $(now_ms) + 90000 ))
    until [ "$(breaches)" -ge $((probes * 6)) ] || [ "$(now_ms)" -gt "$until" ]; do sleep 0.5; done
    sleep 1
    fig overload.alerts "$OVERLOAD"; fig overload.probe_alerts "$probes"; fig overload.expected $((probes * 9))
    echo "RESULT overload: $probes probe alerts, $(breaches) of $((probes * 6)) breaches and" \
         "$(tail -n +$((before + 1)) "$B/reader.txt" | grep -c WARNING) of $((probes * 3)) warnings read (figures in the table)"
fi

# --- 5. burst: nine escalations per alert, all due at once --------------------------------------
write_config "$B/main.toml" main bench-main '"group.instance.id" = "bench-1"' "$BURST_POLICY"
reload "$B/main.toml"
before=$(wc -l <"$B/reader.txt")
curl -sN "http://127.0.0.1:$HP/v1/events" >"$B/events.txt" 2>/dev/null &
SSE=$!; pids+=($SSE)
log "5. burst: $BURST silent alerts, $((BURST * 9)) escalations due ${BURST_DUE} s after issued_at"
fig load.burst "$(loadavg)"
t_burst=$(now_ms); fig burst.start_ms "$t_burst"
out=$(simulate "$B/main.toml" --burst --count "$BURST" --missing 1.0 --seed 11)
echo "   $out"
# CPU from just before the clocks are due: the firing, not the alerts' applying or the wait.
sleep_until $((t_burst + BURST_DUE * 1000 - 300))
cpu0=$(cpu_mark)
rc config resetstat >/dev/null
want=$((before + BURST * 9))
until=$(( $(now_ms) + BURST_DUE * 1000 + 300000 ))
until [ "$(wc -l <"$B/reader.txt")" -ge "$want" ] || [ "$(now_ms)" -gt "$until" ]; do sleep 0.5; done
cpu1=$(cpu_mark)
redis_commands burst "an escalation" $((BURST * 9))
sleep 1
kill "$SSE" 2>/dev/null || true
sse=$(grep -c '^event: escalation' "$B/events.txt" || true)
resyncs=$(grep -c '^event: resync' "$B/events.txt" || true)
fig burst.alerts "$BURST"; fig burst.expected $((BURST * 9))
fig burst.sse_escalations "$sse"; fig burst.sse_resyncs "$resyncs"
fig burst.sse_changed "$(grep -c '^event: changed' "$B/events.txt" || true)"
fig burst.sse_bytes "$(wc -c <"$B/events.txt")"
echo "RESULT burst: $(( $(wc -l <"$B/reader.txt") - before )) of $((BURST * 9)) escalations read; $sse reached an SSE client, $resyncs resyncs"
cpu_fig burst "$cpu0" "$cpu1" "an escalation" $((BURST * 9))

# --- 6. restart: SIGKILL, deadlines pass while it is dead, restart at once ----------------------
write_config "$B/main.toml" main bench-main '"group.instance.id" = "bench-1"' "$RESTART_POLICY"
reload "$B/main.toml"
before=$(wc -l <"$B/reader.txt")
a0=$(metric fraud_sla_alerts_total)
log "6. restart: $RESTART alerts due ${RESTART_DUE} s after issued_at; SIGKILL before, restart after"
fig load.restart "$(loadavg)"
t_a=$(now_ms)
out=$(simulate "$B/main.toml" --burst --count "$RESTART" --missing 1.0 --seed 17)
t_b=$(now_ms)
echo "   $out"
until=$(( $(now_ms) + 60000 ))
until [ "$(metric fraud_sla_alerts_total)" -ge $((a0 + RESTART)) ] || [ "$(now_ms)" -gt "$until" ]; do sleep 0.05; done
[ "$(now_ms)" -lt $((t_a + RESTART_DUE * 1000 - 1000)) ] || echo "warning: the restart alerts were applied late; some may fire before the kill" >&2
sleep_until $((t_a + RESTART_DUE * 1000 - 500))
# Escalations still in the outboxes (not yet acknowledged by the broker): republished after the kill.
outbox=$(outbox_left main)
kill -KILL "$PROC"; wait "$PROC" 2>/dev/null || true
t_kill=$(now_ms)
sleep_until $((t_b + RESTART_DUE * 1000 + 200))
t_restart=$(now_ms)
start_processor "$B/main.toml"
# Their breaches, told from the burst's (republished after the kill: at-least-once) by due time.
secs=$(for ((t = (t_a + RESTART_DUE * 1000) / 1000 - 1; t <= (t_b + RESTART_DUE * 1000) / 1000 + 1; t++)); do
    date -u -d "@$t" +%T; done | paste -sd'|')
restart_read() {
    tail -n +$((before + 1)) "$B/reader.txt" | grep -E "due ($secs) UTC" | awk '{ print $6, $7, $8, $9 }' | sort -u | wc -l
}
until=$(( $(now_ms) + 120000 ))
until [ "$(restart_read)" -ge $((RESTART * 3)) ] || [ "$(now_ms)" -gt "$until" ]; do sleep 0.2; done
fig restart.alerts "$RESTART"; fig restart.expected $((RESTART * 3))
fig restart.due_from_ms $((t_a + RESTART_DUE * 1000)); fig restart.due_to_ms $((t_b + RESTART_DUE * 1000))
fig restart.outbox_at_kill "$outbox"; fig restart.kill_ms "$t_kill"; fig restart.restart_ms "$t_restart"; fig restart.ready_ms "$T_READY"
echo "RESULT restart: $(restart_read) of $((RESTART * 3)) overdue breaches read, $(( $(wc -l <"$B/reader.txt") - before )) escalations in all (republished ones included);"
echo "RESULT restart: killed $((t_a + RESTART_DUE * 1000 - t_kill)) ms before the first deadline," \
     "restarted $((t_restart - t_b - RESTART_DUE * 1000)) ms after the last (dead $((t_restart - t_kill)) ms), ready after $((T_READY - t_restart)) ms"
stop_processor
fig load.end_fraud_sla "$(loadavg)"

# --- BullMQ: the same workload on its own redis-server ------------------------------------------
if [ "${SKIP_BULLMQ:-0}" != 1 ]; then
    BQ="$ROOT/deploy/local/bullmq"
    pinned=$(node -p "require('$BQ/package.json').dependencies.bullmq")
    if [ "$(node -p "require('$BQ/node_modules/bullmq/package.json').version" 2>/dev/null)" != "$pinned" ]; then
        log "installing BullMQ (npm ci in deploy/local/bullmq)"
        (cd "$BQ" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    redis-server --port $BRP --bind 127.0.0.1 --dir "$B" --dbfilename bullmq.rdb --appendfilename bullmq.aof \
        "${persistence[@]}" >"$B/redis-bullmq.log" 2>&1 &
    pids+=($!)
    wait_port $BRP redis-server
    log "BullMQ: drain $ALERTS alerts, open $OPEN, probes $PROBE_RATE/s for $PROBE_SECONDS s, burst $((BURST * 9)) jobs"
    fig load.bullmq "$(loadavg)"
    BULLMQ_REDIS_PORT=$BRP ALERTS=$ALERTS LATE=$LATE MISSING=$MISSING OPEN=$OPEN PROBE_RATE=$PROBE_RATE \
        PROBE_SECONDS=$PROBE_SECONDS BURST=$BURST node "$BQ/bench.mjs" >"$B/bullmq.json"
fi
fig load.end "$(loadavg)"

# --- the table, the JSON record, BENCHMARKS.md's last results -----------------------------------
mkdir -p "$ROOT/benchmarks"
fig git.commit "$(git -C "$ROOT" rev-parse HEAD)"
fig git.dirty "$(git -C "$ROOT" status --porcelain --untracked-files=no | wc -l)"
node "$ROOT/deploy/local/bench-report.mjs" "$B" "$ROOT/benchmarks" "$ROOT/BENCHMARKS.md"
