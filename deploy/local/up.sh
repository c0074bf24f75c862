#!/usr/bin/env bash
# Starts redis-server and the tansu broker on loopback (ports 6379 / 9092 unless overridden by
# FRAUD_SLA_REDIS_PORT / FRAUD_SLA_KAFKA_PORT) and creates the four topics of docs/contract.md §2.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/local/install.sh"
TANSU="${FRAUD_SLA_TANSU:-$BIN/tansu}"

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "redis already answers on 127.0.0.1:$REDIS_PORT"
else
    log "starting redis-server on 127.0.0.1:$REDIS_PORT (AOF on, data in $RUN)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN" --appendonly yes \
        --appendfsync everysec --save "" --daemonize yes --pidfile "$RUN/redis.pid" \
        --hash-max-listpack-value 128 --zset-max-listpack-value 128 \
        --logfile "$RUN/redis.log"   # --daemonize detaches it; listpack: docs/scaling.md
    wait_port "$REDIS_PORT" redis-server
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; then
    log "a broker already listens on 127.0.0.1:$KAFKA_PORT"
else
    log "starting tansu on 127.0.0.1:$KAFKA_PORT (in-memory storage)"
    # setsid: its own session, so a Ctrl-C in the demo's terminal does not stop the broker.
    setsid nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine memory://tansu/ >"$RUN/tansu.log" 2>&1 &
    echo $! >"$RUN/tansu.pid"
    wait_port "$KAFKA_PORT" tansu
    # tansu keeps its log in memory, so offsets start again at 0. The Redis state records the
    # offsets it applied and would skip the new messages as already seen: reset it with the log.
    log "fresh broker log: resetting the local Redis state that referred to the old one"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
fi

create_topic() {
    "$TANSU" topic create "$1" --partitions "$2" --broker "tcp://127.0.0.1:$KAFKA_PORT" \
        >>"$RUN/topics.log" 2>&1 || true   # already exists is fine
}
for t in fraud.alerts fraud.dispositions; do create_topic "$t" "$PARTITIONS"; done
for t in fraud.sla.escalations fraud.sla.deadletter; do create_topic "$t" 1; done
log "up: redis 127.0.0.1:$REDIS_PORT, kafka 127.0.0.1:$KAFKA_PORT, topics with $PARTITIONS input partitions"
