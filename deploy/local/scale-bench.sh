#!/usr/bin/env bash
# Scale-out on one machine: fraud-sla on a 3-master Redis Cluster (loopback), input topics with
# 8 partitions, one tansu broker (in-memory). Printing numbers (RESULT lines):
#
# 1. Throughput. One backlog (`simulate --burst`: ALERTS alerts and their dispositions) is
#    produced once, then drained three times from the start, each time by a fresh consumer group
#    with its own key prefix:
#      a. one process on a single redis-server (no cluster);
#      b. one process on the Redis Cluster;
#      c. two processes in one group on the Redis Cluster (`[redis] cluster = true`).
#    Per run: messages/s (process start -> last message applied, i.e. durable in Redis with its
#    offset, and the rate once the group has settled), how the 8 partitions split between the
#    processes, where the partitions' hash tags landed on the masters, per-master memory and keys,
#    CPU seconds of Redis, of the processors and of the broker.
# 1b. The same backlog shape, ALERTS_ONE alerts (default ALERTS / 4; 0 skips it), through ONE
#    partition: what one partition (one serial pipeline, one Redis slot) takes.
# 2. Correctness. SILENT silent alerts arrive at SILENT_RATE/s under a short policy (deadlines in
#    seconds, 9 escalations per alert); two processes share them, and one is stopped (SIGTERM)
#    STOP_AT s into the run and started again DOWN_FOR s later. `fraud-sla watch` reads the
#    escalations topic as they are published (lateness), and again from the start once it is
#    complete; on that, the script checks that every expected escalation_id (alerts x 9)
#    appears, counts duplicates, and that no other id appears, and counts the ids the live
#    reader did not see; `fraud-sla report --audit` checks the same
#    window against the rules (missed / false pages); escalations more than 1 s late are shown
#    by when they fired, next to the stop and the restart.
#
# Sizes: ALERTS (default 200000), SILENT (6000), SILENT_RATE (100), STOP_AT (20), DOWN_FOR (15).
# SKIP_TPUT=1 or SKIP_CORRECT=1 leaves a phase out. Ports: Redis 17001-17003 (cluster bus
# 18001-18003) and 17010, tansu 17092, HTTP 17898 / 17899. Files: .local/scale/.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh" >/dev/null
TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"
ALERTS="${ALERTS:-200000}"
ALERTS_ONE="${ALERTS_ONE:-$((ALERTS / 4))}"
SILENT="${SILENT:-6000}"
SILENT_RATE="${SILENT_RATE:-100}"
STOP_AT="${STOP_AT:-20}"
DOWN_FOR="${DOWN_FOR:-15}"
PARTS=8
MASTERS=(17001 17002 17003)
RP=17010; KP=17092; HP=(17898 17899)
B="$LOCAL/scale"; rm -rf "$B"; mkdir -p "$B"

cd "$ROOT"
log "building the release binary"
cargo build --release --quiet
FS="$ROOT/target/release/fraud-sla"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# --- servers -------------------------------------------------------------------------------------
for port in "${MASTERS[@]}"; do
    mkdir -p "$B/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$B/redis-$port" --save "" --appendonly no \
        --cluster-enabled yes --cluster-port $((port + 1000)) --cluster-config-file nodes.conf \
        >"$B/redis-$port.log" 2>&1 &
    pids+=($!)
done
mkdir -p "$B/redis-$RP"
redis-server --port $RP --bind 127.0.0.1 --dir "$B/redis-$RP" --save "" --appendonly no >"$B/redis-$RP.log" 2>&1 &
pids+=($!)
"$TANSU" broker --listener-url tcp://127.0.0.1:$KP --advertised-listener-url tcp://127.0.0.1:$KP \
    --storage-engine memory://tansu/ >"$B/tansu.log" 2>&1 &
TANSU_PID=$!; pids+=($TANSU_PID)
for port in "${MASTERS[@]}" $RP; do wait_port "$port" redis-server; done
wait_port $KP tansu
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${MASTERS[@]}") --cluster-replicas 0 --cluster-yes \
    >"$B/cluster-create.log" 2>&1 || { cat "$B/cluster-create.log" >&2; exit 1; }
for port in "${MASTERS[@]}"; do
    for _ in $(seq 1 100); do
        redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' && break
        sleep 0.1
    done
    redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' || { echo "cluster not ok on $port" >&2; exit 1; }
done
echo "RESULT machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start (the machine may be shared)"
log "Redis Cluster of ${#MASTERS[@]} masters on ${MASTERS[*]}, single Redis on $RP, tansu on $KP"

topic() { "$TANSU" topic create "$1" --partitions "$2" --broker tcp://127.0.0.1:$KP >/dev/null 2>&1; }

# config FILE GROUP INPUTS OUTPUTS PREFIX REDIS_PORT CLUSTER HTTP_PORT [SLA]
config() {
    cat >"$1" <<TOML
[kafka]
brokers = "127.0.0.1:$KP"
group_id = "$2"
alerts_topic = "$3.alerts"
dispositions_topic = "$3.dispositions"
escalations_topic = "$4.escalations"
deadletter_topic = "$4.deadletter"
[kafka.client]
"session.timeout.ms" = 6000
"max.poll.interval.ms" = 10000
[redis]
url = "redis://127.0.0.1:$6"
key_prefix = "$5"
cluster = $7
[http]
listen = "127.0.0.1:$8"
${9:-}
TOML
}

scrape() { curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null || true; }   # empty while it starts
metric() { # PORT NAME: the sum of a metric's samples on one processor
    scrape "$1" | awk -v n="$2" '$1 ~ "^"n"({|$)" { s += $2 } END { printf "%d", s }'
}
metric_f() { # PORT NAME, as a decimal
    scrape "$1" | awk -v n="$2" '$1 ~ "^"n"({|$)" { s += $2 } END { printf "%.2f", s }'
}
applied() { # PORT: messages applied (or skipped as duplicates) by one processor
    scrape "$1" | awk '$1 ~ /^fraud_sla_(alerts|dispositions|duplicates)_total({|$)/ { s += $2 } END { printf "%d", s }'
}
now_ms() { date +%s%3N; }
used_memory() { redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }
redis_cpu() { redis-cli -p "$1" info cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.2f", s }'; }
pid_cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
owned_partitions() { # LOG: the partitions the process owns (or owned when it last stopped), from its log
    sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
        /Input topics are co-partitioned\./ { split("", own) }
        /Partition owned\./ { match($0, /partition=[0-9]+/); own[substr($0, RSTART + 10, RLENGTH - 10)] = 1 }
        /Partition released\./ { match($0, /partition=[0-9]+/); delete own[substr($0, RSTART + 10, RLENGTH - 10)] }
        END { for (p in own) print p }' | sort -n | paste -sd, -
}
ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; }

declare -A PROC
start_processor() { # NAME CONFIG (its log: $B/NAME.log, appended to)
    "$FS" run --config "$2" >>"$B/$1.log" 2>&1 &
    PROC[$1]=$!; pids+=($!)
}
stop_processor() { kill -TERM "${PROC[$1]}"; wait "${PROC[$1]}" || true; }

# footprint RUN PORTS…: where the memory is. Alert records by MEMORY USAGE (a sample of up to 300
# per master; closed records carry a TTL of `retention`, open ones none), and every other key of
# the run by kind ({prefix:p}:clock, :open, :outbox, :day:<date> → day, …).
footprint() {
    local run=$1 p; shift
    for p in "$@"; do
        redis-cli -p "$p" --scan --pattern "{$run:*}:a:*" | awk 'NR <= 300 { print "MEMORY USAGE " $0; print "TTL " $0 }' \
            | redis-cli -p "$p" | paste - - | sed 's/^/record /'
        redis-cli -p "$p" --scan --pattern "{$run:*" | grep -v '}:a:' >"$B/keys-$p" || true
        awk '{ print "MEMORY USAGE " $0; print ($0 ~ /}:outbox$/ ? "XLEN " : "TYPE ") $0 }' "$B/keys-$p" \
            | redis-cli -p "$p" | paste - - | paste -d' ' <(sed -E 's/^\{[^}]*\}:([a-z]+).*/\1/' "$B/keys-$p") -
    done | awk -v run="$run" '
        $1 == "record" { if ($3 > 0) { c += $2; nc++ } else { o += $2; no++ } next }
        { bytes[$1] += $2; n[$1]++; if ($1 == "outbox" && $3 ~ /^[0-9]+$/) left += $3 }
        END {
            printf "RESULT %s records: closed %d bytes (mean of %d), open %d bytes (mean of %d); other keys:", run, nc ? c / nc : 0, nc, no ? o / no : 0, no
            for (k in bytes) printf " %s %.1f MiB (%d keys)", k, bytes[k] / 1048576, n[k]
            printf "; outbox entries left %d\n", left
        }'
}

# --- 1. throughput -------------------------------------------------------------------------------
# backlog INPUTS PARTITIONS COUNT: COUNT alerts with their dispositions into INPUTS.alerts /
# INPUTS.dispositions; sets `alerts` and `total` (messages).
backlog() {
    local inputs=$1 parts=$2 count=$3 t0 t1 disps
    for t in alerts dispositions; do topic "$inputs.$t" "$parts"; done
    config "$B/produce-$inputs.toml" produce "$inputs" produce x $RP false "${HP[0]}"
    log "throughput: producing the backlog, $count alerts with their dispositions into $parts partitions"
    t0=$(now_ms)
    "$FS" simulate --config "$B/produce-$inputs.toml" --burst --count "$count" --late 0.2 --missing 0.1 --seed 7 --quiet \
        >"$B/simulate-$inputs.out" 2>&1
    t1=$(now_ms)
    cat "$B/simulate-$inputs.out"
    # The summary line: "alerts N, dispositions M (D duplicates, E before their alert), ..."
    alerts=$(grep -oE 'alerts [0-9]+' "$B/simulate-$inputs.out" | head -1 | grep -oE '[0-9]+')
    disps=$(grep -oE 'dispositions [0-9]+' "$B/simulate-$inputs.out" | head -1 | grep -oE '[0-9]+')
    total=$((alerts + disps))
    echo "RESULT backlog $inputs: $total messages ($alerts alerts, $disps dispositions = $(awk -v d="$disps" -v a="$alerts" 'BEGIN { printf "%.2f", d / a }') per alert)" \
         "produced in $((t1 - t0)) ms = $(( total * 1000 / (t1 - t0) )) messages/s into $parts partition(s)"
}

# tput_run RUN KIND(single|cluster) PROCESSES INPUTS PARTITIONS: a fresh group drains the backlog.
tput_run() {
    local run=$1 kind=$2 n=$3 inputs=$4 parts=$5 ports cluster i
    if [ "$kind" = cluster ]; then ports=("${MASTERS[@]}"); cluster=true; else ports=($RP); cluster=false; fi
    for t in escalations deadletter; do topic "$run.$t" 1; done
    declare -A mem0 cpu0
    for p in "${ports[@]}"; do mem0[$p]=$(used_memory "$p"); cpu0[$p]=$(redis_cpu "$p"); done
    local tansu0; tansu0=$(pid_cpu $TANSU_PID)
    log "throughput $run: $n process(es) on the $kind Redis drain $total messages from $parts partition(s)"
    local t0 t_settled="" applied_settled=0 sum owned t1
    t0=$(now_ms)
    for i in $(seq 0 $((n - 1))); do
        config "$B/$run-$i.toml" "bench-$run" "$inputs" "$run" "$run" "${ports[0]}" $cluster "${HP[$i]}"
        start_processor "$run-$i" "$B/$run-$i.toml"
    done
    while :; do
        sum=0; owned=0; local all_owning=1
        for i in $(seq 0 $((n - 1))); do
            sum=$((sum + $(applied "${HP[$i]}")))
            local o; o=$(metric "${HP[$i]}" fraud_sla_partitions_owned)
            owned=$((owned + o)); [ "$o" -gt 0 ] || all_owning=0
        done
        if [ -z "$t_settled" ] && [ "$all_owning" = 1 ] && [ "$owned" = "$parts" ]; then
            t_settled=$(now_ms); applied_settled=$sum
        fi
        [ "$sum" -ge "$total" ] && break
        [ $(( $(now_ms) - t0 )) -gt 600000 ] && { echo "only $sum of $total applied after 10 min" >&2; break; }
        sleep 0.05
    done
    t1=$(now_ms)
    local cpu_procs=0.00 lines=()
    for i in $(seq 0 $((n - 1))); do
        local c a rss
        c=$(metric_f "${HP[$i]}" process_cpu_seconds_total); a=$(applied "${HP[$i]}")
        rss=$(( $(metric "${HP[$i]}" process_resident_memory_bytes) / 1048576 ))
        cpu_procs=$(awk -v x="$cpu_procs" -v y="$c" 'BEGIN { printf "%.2f", x + y }')
        lines+=("process $i: $a messages applied, ${c} s CPU, ${rss} MiB resident")
    done
    local tansu1; tansu1=$(pid_cpu $TANSU_PID)
    for i in $(seq 0 $((n - 1))); do stop_processor "$run-$i"; done
    for i in $(seq 0 $((n - 1))); do
        echo "RESULT $run split: ${lines[$i]}, partitions owned at the end: $(owned_partitions "$B/$run-$i.log")"
    done
    local elapsed=$((t1 - t0))
    local settled_rate="n/a"
    if [ -n "$t_settled" ] && [ "$t1" -gt "$t_settled" ]; then
        settled_rate="$(( (total - applied_settled) * 1000 / (t1 - t_settled) )) messages/s over the last $((total - applied_settled)) messages (group settled after $((t_settled - t0)) ms)"
    fi
    echo "RESULT $run throughput: $total messages in $elapsed ms = $(( total * 1000 / elapsed )) messages/s from process start; $settled_rate"
    local mem_total=0 cpu_redis=0.00 open=0 keys_total=0 p
    for p in "${ports[@]}"; do
        local m c keys owners
        m=$(( $(used_memory "$p") - mem0[$p] )); mem_total=$((mem_total + m))
        c=$(fsub "$(redis_cpu "$p")" "${cpu0[$p]}")
        cpu_redis=$(awk -v x="$cpu_redis" -v y="$c" 'BEGIN { printf "%.2f", x + y }')
        keys=$(redis-cli -p "$p" --scan --pattern "{$run:*" | wc -l); keys_total=$((keys_total + keys))
        owners=$(redis-cli -p "$p" --scan --pattern "{$run:*}:owner" | sed -E 's/^\{[^:]+:([0-9]+)\}.*/\1/' | sort -n | paste -sd, -)
        echo "RESULT $run redis $p: partitions [${owners}], used_memory +$(( m / 1048576 )) MiB, $keys keys, ${c} s CPU"
    done
    for i in $(seq 0 $((parts - 1))); do
        open=$((open + $(redis-cli -c -p "${ports[0]}" zcard "{$run:$i}:open")))
    done
    echo "RESULT $run footprint: used_memory +$(( mem_total / 1048576 )) MiB for $alerts alerts ($open still open, $((alerts - open)) closed, kept for retention)," \
         "$(( mem_total / alerts )) bytes per alert, $keys_total keys"
    footprint "$run" "${ports[@]}"
    local cpu_tansu; cpu_tansu=$(fsub "$tansu1" "$tansu0")
    echo "RESULT $run cpu: processors ${cpu_procs} s, Redis ${cpu_redis} s, tansu ${cpu_tansu} s" \
         "= $(awk -v p="$cpu_procs" -v t="$total" 'BEGIN { printf "%.1f", p * 1e6 / t }') µs processor," \
         "$(awk -v r="$cpu_redis" -v t="$total" 'BEGIN { printf "%.1f", r * 1e6 / t }') µs Redis per message"
}

if [ "${SKIP_TPUT:-0}" != 1 ]; then
    backlog tput $PARTS "$ALERTS"
    tput_run single1 single 1 tput $PARTS
    tput_run cluster1 cluster 1 tput $PARTS
    tput_run cluster2 cluster 2 tput $PARTS
    # What one partition takes: one partition is owned by one process and is one serial pipeline.
    if [ "$ALERTS_ONE" -gt 0 ]; then
        backlog one 1 "$ALERTS_ONE"
        tput_run one1 single 1 one 1
    fi
fi

# --- 2. correctness: clocks fire while one of two processes is stopped and restarted -------------
if [ "${SKIP_CORRECT:-0}" != 1 ]; then
    SLA='[sla]
visit_within = "20s"
meet_within = "40s"
feedback_within = "60s"
warn_before = "10s"
escalate_after = ["0s", "10s"]
notify = [["station_duty_officer"], ["station_chief"]]
[display]
timezone = "UTC"'
    PER_ALERT=9   # 3 stages x (warning + 2 breach levels), nothing satisfies them
    for t in alerts dispositions; do topic "ok.$t" $PARTS; done
    for t in escalations deadletter; do topic "ok.$t" 1; done
    for i in 0 1; do
        config "$B/ok-$i.toml" bench-ok ok ok ok "${MASTERS[0]}" true "${HP[$i]}" "$SLA"
        start_processor "ok-$i" "$B/ok-$i.toml"
    done
    settled() { [ $(( $(metric "${HP[0]}" fraud_sla_partitions_owned) + $(metric "${HP[1]}" fraud_sla_partitions_owned) )) = $PARTS ] \
        && ready "${HP[0]}" && ready "${HP[1]}"; }
    for _ in $(seq 1 600); do settled && break; sleep 0.1; done
    settled || { echo "the two processors did not share the $PARTS partitions" >&2; tail "$B"/ok-*.log >&2; exit 1; }
    mem0=0; for p in "${MASTERS[@]}"; do mem0=$((mem0 + $(used_memory "$p"))); done
    echo "RESULT correctness start: process 0 owns [$(owned_partitions "$B/ok-0.log")], process 1 owns [$(owned_partitions "$B/ok-1.log")]"
    "$FS" watch --config "$B/ok-0.toml" --from-beginning >"$B/ok-watch.txt" 2>"$B/ok-watch.log" &
    WATCH=$!; pids+=($WATCH)
    from=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
    want=$((SILENT * PER_ALERT))
    log "correctness: $SILENT silent alerts at $SILENT_RATE/s ($want escalations); process 1 stopped at ${STOP_AT}s, back ${DOWN_FOR}s later"
    tc=$(now_ms)
    "$FS" simulate --config "$B/ok-0.toml" --rate "$SILENT_RATE" --count "$SILENT" --missing 1.0 --seed 11 --quiet \
        >"$B/ok-simulate.out" 2>&1 &
    SIM=$!; pids+=($SIM)
    sleep "$STOP_AT"          # the scenario's timeline, not a wait for a condition
    t_stop=$(now_ms)
    stop_processor ok-1
    echo "RESULT correctness stop: process 1 stopped (SIGTERM) at $(( ($(now_ms) - tc) / 1000 )) s with $(wc -l <"$B/ok-watch.txt") escalations published"
    sleep "$DOWN_FOR"
    t_restart=$(now_ms)
    start_processor ok-1 "$B/ok-1.toml"
    echo "RESULT correctness restart: process 1 started again at $(( ($(now_ms) - tc) / 1000 )) s"
    wait "$SIM" || { cat "$B/ok-simulate.out" >&2; exit 1; }
    # Every clock is due by the last alert's issued_at + 70 s; wait for them, with a margin.
    deadline=$(( $(now_ms) + 70000 + 120000 ))
    distinct() { awk -F'  +' '{ print $2, $3, $4 }' "$B/ok-watch.txt" | sort -u | wc -l; }   # kind, stage, alert
    until [ "$(distinct)" -ge "$want" ] || [ "$(now_ms)" -gt "$deadline" ]; do sleep 1; done
    to=$(date -u -d '+1 min' +%Y-%m-%dT%H:%M:%SZ)
    mem1=0; for p in "${MASTERS[@]}"; do mem1=$((mem1 + $(used_memory "$p"))); done
    echo "RESULT correctness footprint: used_memory +$(( (mem1 - mem0) / 1024 )) KiB for $SILENT open alerts (every stage breached)" \
         "= $(( (mem1 - mem0) / SILENT )) bytes per open alert"
    footprint ok "${MASTERS[@]}"
    for i in 0 1; do
        echo "RESULT correctness split: process $i applied $(metric "${HP[$i]}" fraud_sla_alerts_total) alerts since its (re)start," \
             "rollbacks $(metric "${HP[$i]}" fraud_sla_redis_rollbacks_total), owns [$(owned_partitions "$B/ok-$i.log")]"
    done
    # Stopped (SIGTERM: deliveries in flight are flushed), the processors publish nothing more.
    for i in 0 1; do stop_processor "ok-$i"; done
    left=0
    for i in $(seq 0 $((PARTS - 1))); do left=$((left + $(redis-cli -c -p "${MASTERS[0]}" xlen "{ok:$i}:outbox"))); done
    echo "RESULT correctness outbox: $left entries left in the outboxes after both stopped (sent again by the next owner)"
    # A marker after the last escalation: one alert written into the escalations topic (its only
    # partition; no dispositions, so the dead-letter topic named beside it gets nothing), which
    # watch prints as unreadable. Once it does, watch has read everything before it.
    config "$B/marker.toml" marker ok marker marker $RP false "${HP[0]}"
    sed -i 's/^alerts_topic = .*/alerts_topic = "ok.escalations"/; s/^dispositions_topic = .*/dispositions_topic = "ok.deadletter"/' "$B/marker.toml"
    "$FS" simulate --config "$B/marker.toml" --burst --count 1 --missing 1.0 --quiet >"$B/marker.out" 2>&1 \
        || { cat "$B/marker.out" >&2; exit 1; }
    deadline=$(( $(now_ms) + 60000 ))
    until grep -q '^(unreadable escalation' "$B/ok-watch.txt" || [ "$(now_ms)" -gt "$deadline" ]; do sleep 0.2; done
    kill "$WATCH" 2>/dev/null || true
    grep -v '^(unreadable escalation' "$B/ok-watch.txt" >"$B/ok-escalations.txt" || true
    # The topic itself, read again from the start once it is complete: what was published is
    # judged on it; the live reader above gives the lateness, and what it did not see is counted
    # apart (a reader tailing tansu 0.6 has been seen to skip a few records published together).
    "$FS" watch --config "$B/ok-0.toml" --from-beginning >"$B/ok-topic.txt" 2>"$B/ok-topic.log" &
    REREAD=$!; pids+=($REREAD)
    deadline=$(( $(now_ms) + 60000 ))
    until grep -q '^(unreadable escalation' "$B/ok-topic.txt" || [ "$(now_ms)" -gt "$deadline" ]; do sleep 0.2; done
    kill "$REREAD" 2>/dev/null || true
    grep -v '^(unreadable escalation' "$B/ok-topic.txt" >"$B/ok-topic-escalations.txt" || true
    # Lines: "<time, UTC>  <KIND [Ln]>  <label stage>  <alert_id>  <jurisdiction risk>  deadline …"
    ok=0
    python3 - "$B/ok-topic-escalations.txt" "$B/ok-escalations.txt" "$SILENT" "$tc" "$t_stop" "$t_restart" <<'PY' || ok=1
import collections, datetime, re, sys
topic_path, live_path, alerts = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0, t_stop, t_restart = (int(a) / 1000 for a in sys.argv[4:7])
expected_per_alert = {f"{s}:{l}" for s in ("visit", "meet", "feedback") for l in (0, 1, 2)}
def records(path):
    for line in open(path, encoding="utf-8"):
        f = re.split(r"  +", line.rstrip("\n"))
        kind, stage, alert_id = f[1], f[2].split()[-1], f[3]
        level = "0" if kind == "WARNING" else ("resolved" if kind.startswith("RESOLVED") else kind.split("L")[-1])
        yield f, f"{alert_id}:{stage}:{level}", line
ids, lateness, late_at = collections.Counter(), [], collections.Counter()
for _, i, _ in records(topic_path):
    ids[i] += 1
live = collections.Counter()
for f, i, line in records(live_path):
    live[i] += 1
    m = re.search(r"\(\+(-?\d+) ms\)", line)
    if m:
        lateness.append(int(m.group(1)))
        if int(m.group(1)) > 1000:  # when it fired, in whole seconds since the run started ([display] is UTC)
            fired = datetime.datetime.strptime(f[0][:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
            late_at[int(fired.timestamp() - t0)] += 1
unseen = sorted(set(ids) - set(live))
by_alert = collections.defaultdict(set)
for i in ids:
    alert_id, stage, level = i.rsplit(":", 2)
    by_alert[alert_id].add(f"{stage}:{level}")
# The simulator's ids: GA-<region>-<date>-<sequence 1..N>-<run suffix>.
seqs = collections.Counter(int(a.split("-")[3]) for a in by_alert)
suffixes = {a.rsplit("-", 1)[1] for a in by_alert}
expected_alerts = {a for a in by_alert if 1 <= int(a.split("-")[3]) <= alerts and seqs[int(a.split("-")[3])] == 1}
unexpected = [i for i in ids if i.rsplit(":", 2)[0] not in expected_alerts
              or ":".join(i.rsplit(":", 2)[1:]) not in expected_per_alert]
present = sum(len(by_alert[a] & expected_per_alert) for a in expected_alerts)
missing_alerts = alerts - len({s for s in seqs if 1 <= s <= alerts})
want = alerts * len(expected_per_alert)
dups = sum(c - 1 for c in ids.values() if c > 1)
lateness.sort()
pct = lambda p: lateness[min(len(lateness) - 1, (p * len(lateness) + 99) // 100 - 1)] if lateness else 0
print(f"RESULT correctness ids: {present} of {want} expected escalation ids present"
      f" ({want - present} missing; {missing_alerts} alerts with none), {dups} duplicates"
      f" ({sum(ids.values())} records), {len(unexpected)} unexpected ids; run suffixes {len(suffixes)}")
print(f"RESULT correctness live reader: {sum(live.values())} records read as they were published;"
      f" {len(unseen)} ids in the topic it did not see" + (f" ({', '.join(unseen[:6])})" if unseen else ""))
print(f"RESULT correctness lateness over {len(lateness)} records: p50 {pct(50)} ms, p99 {pct(99)} ms,"
      f" max {lateness[-1] if lateness else 0} ms")
spans = []  # runs of seconds with late escalations
for sec in sorted(late_at):
    if spans and sec - spans[-1][1] <= 2:
        spans[-1][1:] = [sec, spans[-1][2] + late_at[sec]]
    else:
        spans.append([sec, sec, late_at[sec]])
print(f"RESULT correctness late > 1 s: {sum(late_at.values())} records, fired at "
      + (", ".join(f"+{a}..+{b} s ({n})" for a, b, n in spans) or "none")
      + f"; process 1 stopped at +{t_stop - t0:.1f} s, started again at +{t_restart - t0:.1f} s")
for i in unexpected[:10]:
    print(f"  unexpected: {i}")
sys.exit(0 if present == want and not unexpected else 1)
PY
    set +e
    "$FS" report --config "$B/ok-0.toml" --from "$from" --to "$to" --audit --format json --out "$B/ok-audit.json" 2>"$B/ok-audit.log"
    audit=$?
    set -e
    python3 - "$B/ok-audit.json" "$audit" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["audit"]
print(f"RESULT correctness audit (fraud-sla report --audit, exit {sys.argv[2]}): {len(a['missed'])} missed,"
      f" {len(a['false'])} false, publish delay p50 {a['publish_delay_ms_p50']} ms, p99 {a['publish_delay_ms_p99']} ms")
PY
    [ "$ok" = 0 ] && [ "$audit" = 0 ] || { echo "correctness check failed" >&2; exit 1; }
fi
