#!/usr/bin/env bash
# Redis's instructions for a backlog drain, counted exactly (valgrind --tool=callgrind), so that a
# change to the scripts is measured to the percent on a machine whose timings vary by ±25% and
# whose virtual CPU has no hardware counters for `perf stat`. BENCHMARKS.md (Profiles) has
# what it found. Nothing here runs in `cargo test`.
#
#   1. capture  bench.sh's drain at a small size (ALERTS alerts with their dispositions, produced
#               before the release build starts) on a plain redis-server, every client command
#               recorded with MONITOR;
#   2. replay   the recorded commands, in order on one connection, on a fresh redis-server under
#               callgrind: the same writes, so the same instructions whatever the timing was;
#               prints instructions per message and the functions that took the most.
#
# Two replays of one capture agree to 0.02%; two captures of one tree differ by up to 10% (the
# drain's messages fall into batches differently), so compare scripts on one capture
# (LUA_FROM) and trees that send the scripts different arguments over several captures each.
#
#   3. shape    the recorded commands again, on a plain redis-server: how the bucketed indexes
#               came out (buckets, entries a bucket, deadlines a bucket), which decides what an
#               entry costs (a listpack is searched entry by entry).
#
# Knobs: ALERTS (5000), MISSING (0.52, the share of alerts with no disposition: 0.52 is
# bench.sh's drain, 1.0 its open phase of silent alerts), CAPTURE (a capture to replay instead of
# running step 1, with its message count in CAPTURE.messages as step 1 writes it),
# LUA_FROM (a directory of scripts replayed in place of the captured ones, composed as
# src/store/mod.rs composes them: what a change to a script saves, with no rebuild and on the
# very same batches), REDIS_SERVER (a redis-server to replay on: one built with symbols names
# the Lua interpreter's functions, which Debian's package strips), TOP (25).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh" >/dev/null
command -v valgrind >/dev/null || {
    log "installing valgrind"
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind >/dev/null
}
TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"
ALERTS="${ALERTS:-5000}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
B="$LOCAL/redis-profile"; mkdir -p "$B"
RP=16479; RRP=16480; KP=19192; HP=19198
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
redis_opts=(--bind 127.0.0.1 --save "" --appendonly no --hash-max-listpack-value 128 --zset-max-listpack-value 128)
cd "$ROOT"

if [ -z "${CAPTURE:-}" ]; then
    log "building the release binary"
    cargo build --release --quiet
    FS="$ROOT/target/release/fraud-sla"
    rm -rf "$B/run"; mkdir -p "$B/run"
    redis-server --port $RP --dir "$B/run" "${redis_opts[@]}" >"$B/run/redis.log" 2>&1 &
    pids+=($!)
    "$TANSU" broker --listener-url tcp://127.0.0.1:$KP --advertised-listener-url tcp://127.0.0.1:$KP \
        --storage-engine memory://tansu/ >"$B/run/tansu.log" 2>&1 &
    pids+=($!)
    wait_port $RP redis-server; wait_port $KP tansu
    for t in alerts dispositions; do
        "$TANSU" topic create "drain.$t" --partitions 8 --broker tcp://127.0.0.1:$KP >/dev/null 2>&1
    done
    for t in escalations deadletter; do
        "$TANSU" topic create "drain.$t" --partitions 1 --broker tcp://127.0.0.1:$KP >/dev/null 2>&1
    done
    cat >"$B/run/drain.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$KP"
group_id = "redis-profile"
alerts_topic = "drain.alerts"
dispositions_topic = "drain.dispositions"
escalations_topic = "drain.escalations"
deadletter_topic = "drain.deadletter"
[redis]
url = "redis://127.0.0.1:$RP"
key_prefix = "drain"
[http]
listen = "127.0.0.1:$HP"
$(shipped_policy)
TOML
    log "1. capture: $ALERTS alerts with their dispositions (bench.sh's drain mix), processor stopped"
    out=$("$FS" simulate --config "$B/run/drain.toml" --burst --count "$ALERTS" --late 0.2 --missing "${MISSING:-0.52}" --seed 7 --quiet 2>&1)
    echo "   $out"
    total=$(( $(grep -oE 'alerts [0-9]+' <<<"$out" | head -1 | grep -oE '[0-9]+') \
            + $(grep -oE 'dispositions [0-9]+' <<<"$out" | head -1 | grep -oE '[0-9]+') ))
    CAPTURE="$B/capture.txt"
    redis-cli -p $RP monitor >"$CAPTURE" &
    pids+=($!)
    until grep -q '"ping"\|"PING"' "$CAPTURE" 2>/dev/null; do redis-cli -p $RP ping >/dev/null; sleep 0.1; done
    "$FS" run --config "$B/run/drain.toml" >"$B/run/processor.log" 2>&1 &
    PROC=$!; pids+=($PROC)
    until [ "$(messages_applied $HP)" -ge "$total" ]; do sleep 0.2; done
    kill -TERM "$PROC"; wait "$PROC" || true
    echo "messages $total" >"$CAPTURE.messages"
    cleanup; pids=()
fi
messages=$(awk '{ print $2 }' "$CAPTURE.messages")

log "2. replay: $(wc -l <"$CAPTURE") monitored lines on $REDIS_SERVER under callgrind"
rm -rf "$B/replay"; mkdir -p "$B/replay"
out="$B/callgrind.out"
valgrind --tool=callgrind --callgrind-out-file="$out" "$REDIS_SERVER" --port $RRP --dir "$B/replay" \
    "${redis_opts[@]}" >"$B/replay/valgrind.log" 2>&1 &
V=$!; pids+=($V)
for _ in $(seq 1 300); do redis-cli -p $RRP ping >/dev/null 2>&1 && break; sleep 0.2; done
LUA_FROM="${LUA_FROM:-}" python3 "$ROOT/deploy/local/redis-replay.py" $RRP "$CAPTURE"
# Redis counts the commands a script calls too: what each message costs, call by call.
log "calls a message, by command (the scripts' calls included)"
redis-cli -p $RRP info commandstats | tr -d '\r' \
    | awk -F'[:=,]' -v m="$messages" '/^cmdstat_/ { printf "   %-16s %7.2f\n", substr($1, 9), $3 / m }' \
    | sort -k2 -nr | head -n 12
redis-cli -p $RRP shutdown nosave >/dev/null 2>&1 || true
wait $V || true
report=$(callgrind_annotate "$out" 2>/dev/null)
total_ir=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' <<<"$report")
echo "RESULT redis instructions: $total_ir for $messages messages = $((total_ir / messages)) a message"
awk -v top="${TOP:-25}" '/^-+$/ { n++; next } n >= 4 && NF && shown++ < top' <<<"$report"

log "3. shape: the replay again, on a plain $REDIS_SERVER"
SRP=$((RRP + 1))
rm -rf "$B/shape"; mkdir -p "$B/shape"
"$REDIS_SERVER" --port $SRP --dir "$B/shape" "${redis_opts[@]}" >"$B/shape/redis.log" 2>&1 &
pids+=($!)
wait_port $SRP redis-server
LUA_FROM="${LUA_FROM:-}" python3 "$ROOT/deploy/local/redis-replay.py" $SRP "$CAPTURE" >/dev/null
# A bucket is `<index>:<id>`; `<index>:dir` and `<index>:n` are the index's own.
shape='local n, e, one, scores, lp = 0, 0, 0, 0, 0
for _, k in ipairs(KEYS) do
  local rows, seen, c = redis.call("ZRANGE", k, 0, -1, "WITHSCORES"), {}, 0
  for j = 2, #rows, 2 do
    if not seen[rows[j]] then seen[rows[j]] = true; c = c + 1 end
  end
  n, e, scores = n + 1, e + #rows / 2, scores + c
  if c == 1 then one = one + 1 end
  if redis.call("OBJECT", "ENCODING", k) == "listpack" then lp = lp + 1 end
end
return { n, e, one, scores, lp }'
# The indexes: `due`, each `due:+<after>…` of shared entries (apart: one entry there is an
# alert's stages), `late`, `clock`, each line over every partition's buckets of it.
buckets=$(redis-cli -p $SRP --scan --pattern '*}:*' | grep -E '\}:(due|late|clock):' \
    | grep -vE ':(dir|n|shared)$' | sed -E 's/^(.*\}:)((due|late|clock)(:\+[0-9+]+)?):[^:]+$/\2 \0/' || true)
for index in $({ printf '%s\n' due late clock; awk '{ print $1 }' <<<"$buckets"; } | sort -u); do
    mapfile -t keys < <(awk -v i="$index" '$1 == i { print $2 }' <<<"$buckets")
    [ "${#keys[@]}" -gt 0 ] || { printf "   %-6s no buckets\n" "$index"; continue; }
    redis-cli -p $SRP eval "$shape" "${#keys[@]}" "${keys[@]}" | paste -sd' ' \
        | awk -v i="$index" '{ printf "   %-6s %d buckets, %d entries, %.1f a bucket; %.1f deadlines a bucket, %d%% of the buckets one deadline; %d%% listpacks\n", i, $1, $2, $2 / $1, $4 / $1, 100 * $3 / $1, 100 * $5 / $1 }'
done
redis-cli -p $SRP shutdown nosave >/dev/null 2>&1 || true
