#!/usr/bin/env bash
# The cost of wschat's store (docs/storage.md), in two tables:
#
# 1. chat messages through `/` with each --durability mode against --memory:
#    10 senders x STORE_RATE msg/s to 10 receivers, STORE_DURATION s each, on
#    a fresh server and a fresh data directory per mode;
# 2. the time from start to serving over a log of STORE_RECORDS messages
#    (default 1,000,000), generated for the run.
#
#   bash bench/store.sh
#   STORE_RECORDS=100000 STORE_DURATION=3 bash bench/store.sh
#
# Loopback only; every loop is bounded. Needs bench/run.sh's tools built
# (it builds them if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${STORE_RATE:-1000}
DURATION=${STORE_DURATION:-5}
RECORDS=${STORE_RECORDS:-1000000}
PORT=${STORE_PORT:-23700}

cargo build --release --quiet
(cd bench && cargo build --release --quiet)
WSCHAT=$PWD/target/release/wschat
WSLOAD=$PWD/bench/target/release/wsload
PIN_SERVER=()
PIN_GEN=()
if command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0)
    PIN_GEN=(taskset -c 1)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wschat-store-bench.XXXXXX")
SERVER=""
cleanup() {
    if [[ -n $SERVER ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

start() { # args... -> SERVER; waits until /healthz answers (at most 600 s):
    # the port listens before the store has been read, so a connect is not enough
    "${PIN_SERVER[@]}" "$WSCHAT" serve --listen "127.0.0.1:$PORT" --rate-limit 0 "$@" >"$TMP/server.log" 2>&1 &
    SERVER=$!
    python3 - "$PORT" <<'PY'
import sys, time, urllib.request
deadline = time.time() + 600
while time.time() < deadline:
    try:
        if urllib.request.urlopen("http://127.0.0.1:%s/healthz" % sys.argv[1], timeout=1).status == 200:
            sys.exit(0)
    except OSError:
        time.sleep(0.01)
sys.exit("wschat did not answer /healthz")
PY
}

stop() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
}

echo "## wschat store benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $(nproc) CPUs, $(uname -sr). Data directory on $(df -T "$TMP" | awk 'NR==2 {print $2}') ($TMP)."
echo
echo "### Chat messages with each durability mode"
echo
echo "10 senders x $RATE msg/s and 10 receivers on /, $DURATION s; one table row per mode, fresh server and data directory each."
echo
first=1
for mode in memory none process fsync; do
    rm -rf "$TMP/data"
    case $mode in
        memory) start --memory ;;
        *) start --data-dir "$TMP/data" --durability "$mode" ;;
    esac
    row=$("${PIN_GEN[@]}" "$WSLOAD" broadcast --port "$PORT" --pid "$SERVER" --receivers 10 --senders 10 \
        --rate "$RATE" --duration "$DURATION" --target "$mode" 2>"$TMP/load.err") || row="| $mode | n/a ($(tail -1 "$TMP/load.err")) |"
    if ((first)); then
        "$WSLOAD" header broadcast
        first=0
    fi
    echo "$row"
    stop
done
echo
echo "### Start over a log of $RECORDS messages"
echo
rm -rf "$TMP/data"
mkdir -p "$TMP/data"
python3 - "$TMP/data/log-00000001.jsonl" "$RECORDS" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(1, n + 1):
        room = "room%d" % (i % 10)
        f.write(json.dumps({"id": i, "room": room, "text": "message number %d, some words of chat" % i,
                            "time": 1763800000000 + i, "type": "chat", "user": {"id": i % 500, "name": "user%d" % (i % 500)}},
                           separators=(",", ":")) + "\n")
PY
size=$(du -h "$TMP/data/log-00000001.jsonl" | cut -f1)
begin=$(date +%s.%N)
start --data-dir "$TMP/data"
end=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
stop
echo "| records | log size | time to serve | RSS after start |"
echo "|---:|---:|---:|---:|"
printf '| %s | %s | %.2f s | %s MiB |\n' "$RECORDS" "$size" "$(python3 -c "print($end - $begin)")" "$((rss / 1024))"
