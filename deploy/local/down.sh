#!/usr/bin/env bash
# Stops what up.sh started (only processes whose pid files it wrote).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for name in fraud-sla tansu redis; do
    pidfile="$RUN/$name.pid"
    if [ -f "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        if kill "$pid" 2>/dev/null; then log "stopped $name ($pid)"; fi
        rm -f "$pidfile"
    fi
done
