#!/usr/bin/env bash
# Benchmark wschat beside its peers. One command on a fresh machine:
#
#     bash bench/run.sh                      # everything (about 15 minutes)
#     BENCH_QUICK=1 bash bench/run.sh        # short runs, 1,000 idle connections
#     BENCH_TARGETS="wschat tungstenite" BENCH_SCENARIOS="echo idle" bash bench/run.sh
#
# It builds wschat and bench/ (cargo build --release), installs the Node peers
# (npm ci in bench/peers), then runs each scenario for each target on a freshly
# started server (in a fresh temporary directory), the server pinned to one
# CPU and the load generator to the other with taskset, and prints one markdown
# table per scenario. A target that fails gets "n/a (error ...)" in its row and
# the run goes on. The tables are also written to bench/results/.
#
# Settings (environment variables, defaults in brackets):
#   BENCH_TARGETS      targets, in order [wschat tungstenite uws ws nodejs-websocket];
#                      also wschat-deflate and uws-deflate (uWS with SHARED_COMPRESSOR):
#                      the generator's raw connections (broadcast receivers, idle
#                      connections) then offer permessage-deflate and must get it
#   BENCH_SCENARIOS    scenarios, in order
#                      [codec echo broadcast broadcast-light broadcast-10k idle idle-chat join-storm api-publish];
#                      also broadcast-deflate (broadcast with the bytes on the wire per
#                      delivery, probes padded with words), history (wschat only:
#                      a 50-message history page, plain and compressed) and cluster
#                      (nodes on one redis-server; its own runs, BENCH_CLUSTER_RUNS,
#                      not BENCH_TARGETS)
#   BENCH_CLUSTER_RUNS the cluster scenario's runs, TARGET:NODES:RECEIVERS each, TARGET
#                      one of wschat (one node, no Redis), wschat-redis (wschat serve
#                      --redis), socketio-redis (socket.io 4 + @socket.io/redis-adapter)
#                      [wschat:1:500 wschat-redis:1:500 wschat-redis:3:500
#                      wschat-redis:3:250 socketio-redis:1:500 socketio-redis:3:500
#                      socketio-redis:3:250]
#   BENCH_CLUSTER_RATE messages/s per sender, cluster [20]
#   BENCH_REDIS_FSYNC  the cluster's redis-server --appendfsync: always (docs/cluster.md's
#                      "confirmed means kept"), everysec or no [always]
#   BENCH_QUICK        1: duration 3 s, 1,000 idle connections, 2,000 broadcast-10k
#                      receivers, 150 ms codec cells [0]
#   BENCH_DURATION     seconds of load per echo/broadcast run [10; quick 3]
#   BENCH_ECHO_CONNS   echo connections [50]
#   BENCH_SIZE         message size in bytes, echo and broadcast [32]
#   BENCH_RECEIVERS    broadcast receivers [500]
#   BENCH_SENDERS      broadcast senders [5]
#   BENCH_RATE         messages/s per sender, broadcast [100]
#   BENCH_LIGHT_RATE   messages/s per sender, broadcast-light [10]
#   BENCH_DEFLATE_RATE messages/s per sender, broadcast-deflate [20]
#   BENCH_DEFLATE_SIZE message size in bytes, broadcast-deflate and history [120]
#   BENCH_10K_RECEIVERS  broadcast-10k receivers [10000; quick 2000]
#   BENCH_10K_RATE     messages/s per sender, broadcast-10k [2]
#                      (broadcast-10k uses BENCH_SENDERS senders and gives wschat
#                      --max-connections max(10000, receivers + senders + 100))
#   BENCH_IDLE_CONNS   idle connections [5000; quick 1000]
#   BENCH_IDLE_CONCURRENCY  handshakes in flight while opening them [64]
#   BENCH_IDLE_PATH    path the idle connections open [/echo]; idle-chat opens /
#   BENCH_STORM_USERS  users joining one room in join-storm, one run each [2500 5000 10000]
#                      (wschat gets --max-connections max(10000, users + 100))
#   BENCH_STORM_CONCURRENCY  handshakes in flight while they join [64]
#   BENCH_CODEC_CELL_MS  time per codec cell in ms [500; quick 150]
#   BENCH_ROUNDS       rounds of echo, broadcast and broadcast-light [3; quick 1]:
#                      the targets take turns round by round, and the table
#                      gives each target's per-column median (lost: the worst
#                      round), followed by every round's row
#   BENCH_PORT         first port; each server start takes the next one [23400]
#   BENCH_PIN          1: pin with taskset; 0: don't [1]
#   BENCH_SERVER_CPU / BENCH_GEN_CPU  CPUs for the server and the generator [0 / 1]
#   BENCH_BUILD        0: skip cargo builds and npm (use what is built) [1]
#   BENCH_WSCHAT       the wschat binary to run [target/release/wschat]; another
#                      path (say, a build of an older commit) is run as it is,
#                      and this checkout's wschat is then not built
#   BENCH_OUT          file to write the tables to [bench/results/run-DATE.md]
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PEERS="$BENCH_DIR/peers"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    q_dur=3 q_idle=1000 q_10k=2000 q_cell=150 q_rounds=1
else
    q_dur=10 q_idle=5000 q_10k=10000 q_cell=500 q_rounds=3
fi
TARGETS=${BENCH_TARGETS:-wschat tungstenite uws ws nodejs-websocket}
SCENARIOS=${BENCH_SCENARIOS:-codec echo broadcast broadcast-light broadcast-10k idle idle-chat join-storm api-publish}
DURATION=${BENCH_DURATION:-$q_dur}
ECHO_CONNS=${BENCH_ECHO_CONNS:-50}
SIZE=${BENCH_SIZE:-32}
RECEIVERS=${BENCH_RECEIVERS:-500}
SENDERS=${BENCH_SENDERS:-5}
RATE=${BENCH_RATE:-100}
LIGHT_RATE=${BENCH_LIGHT_RATE:-10}
DEFLATE_RATE=${BENCH_DEFLATE_RATE:-20}
DEFLATE_SIZE=${BENCH_DEFLATE_SIZE:-120}
TENK_RECEIVERS=${BENCH_10K_RECEIVERS:-$q_10k}
TENK_RATE=${BENCH_10K_RATE:-2}
# wschat refuses connections past --max-connections (default 10000) with 503:
# broadcast-10k raises it to fit its receivers and senders, never lowers it.
TENK_MAX_CONNS=$((TENK_RECEIVERS + SENDERS + 100))
((TENK_MAX_CONNS >= 10000)) || TENK_MAX_CONNS=10000
CLUSTER_RUNS=${BENCH_CLUSTER_RUNS:-wschat:1:500 wschat-redis:1:500 wschat-redis:3:500 wschat-redis:3:250 socketio-redis:1:500 socketio-redis:3:500 socketio-redis:3:250}
CLUSTER_RATE=${BENCH_CLUSTER_RATE:-20}
REDIS_FSYNC=${BENCH_REDIS_FSYNC:-always}
[[ $REDIS_FSYNC =~ ^(always|everysec|no)$ ]] || { echo "run.sh: BENCH_REDIS_FSYNC must be always, everysec or no" >&2; exit 1; }
IDLE_CONNS=${BENCH_IDLE_CONNS:-$q_idle}
IDLE_CONCURRENCY=${BENCH_IDLE_CONCURRENCY:-64}
IDLE_PATH=${BENCH_IDLE_PATH:-/echo}
STORM_USERS=${BENCH_STORM_USERS:-2500 5000 10000}
STORM_CONCURRENCY=${BENCH_STORM_CONCURRENCY:-64}
STORM_MAX=0
for n in $STORM_USERS; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_STORM_USERS must be numbers" >&2; exit 1; }
    ((n > STORM_MAX)) && STORM_MAX=$n
done
STORM_N=0
CODEC_CELL_MS=${BENCH_CODEC_CELL_MS:-$q_cell}
ROUNDS=${BENCH_ROUNDS:-$q_rounds}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_ROUNDS must be a positive number" >&2; exit 1; }
PORT=${BENCH_PORT:-23400}
PIN=${BENCH_PIN:-1}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
GEN_CPU=${BENCH_GEN_CPU:-1}
BUILD=${BENCH_BUILD:-1}
mkdir -p "$BENCH_DIR/results"
OUT=${BENCH_OUT:-$BENCH_DIR/results/run-$(date -u +%Y%m%d-%H%M%S).md}

WSCHAT=${BENCH_WSCHAT:-$ROOT/target/release/wschat}
BIN="$BENCH_DIR/target/release"
WSLOAD="$BIN/wsload"

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }
# Everything printed to stdout also goes to the results file.
emit() { printf '%s\n' "$*" | tee -a "$OUT"; }

# ------------------------------------------------------------------ checks
command -v cargo >/dev/null || die "cargo is missing (install Rust with rustup)"
if [[ $PIN == 1 ]]; then
    command -v taskset >/dev/null ||
        die "taskset is missing: apt-get install util-linux (or run with BENCH_PIN=0)"
    ncpu=$(nproc)
    ((ncpu >= 2)) || { log "only $ncpu CPU: not pinning"; PIN=0; }
fi
if [[ $PIN == 1 ]]; then
    PIN_SERVER=(taskset -c "$SERVER_CPU")
    PIN_GEN=(taskset -c "$GEN_CPU")
else
    PIN_SERVER=()
    PIN_GEN=()
fi
command -v timeout >/dev/null || die "timeout (coreutils) is missing"

needs_node=0
for t in $TARGETS; do
    case $t in
        wschat | wschat-deflate | tungstenite) ;;
        uws | uws-deflate | ws | nodejs-websocket) needs_node=1 ;;
        *) die "unknown target $t (known: wschat wschat-deflate tungstenite uws uws-deflate ws nodejs-websocket)" ;;
    esac
done
for s in $SCENARIOS; do
    case $s in
        codec | echo | broadcast | broadcast-light | broadcast-deflate | broadcast-10k | idle | idle-chat | join-storm | api-publish | history) ;;
        cluster)
            for run in $CLUSTER_RUNS; do
                [[ $run =~ ^(wschat|wschat-redis|socketio-redis):[1-9][0-9]?:[1-9][0-9]*$ ]] ||
                    die "BENCH_CLUSTER_RUNS: $run is not TARGET:NODES:RECEIVERS"
                [[ $run == socketio-redis:* ]] && needs_node=1
                [[ $run == wschat:* && $run != wschat:1:* ]] && die "BENCH_CLUSTER_RUNS: $run: wschat without Redis is one node"
            done
            command -v redis-server >/dev/null ||
                die "redis-server is missing (apt-get install redis-server, or bash .ci/cluster.sh --install)"
            ;;
        *) die "unknown scenario $s (known: codec echo broadcast broadcast-light broadcast-deflate broadcast-10k idle idle-chat join-storm api-publish history cluster)" ;;
    esac
done
NODE_ERROR=""
if ((needs_node)); then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        NODE_ERROR="node and npm are not installed"
        log "run.sh: $NODE_ERROR: the Node peers will be n/a"
    fi
fi

# Servers and the generator need a descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < IDLE_CONNS + 200)); then
    log "run.sh: open-file limit $(ulimit -n) is below the $IDLE_CONNS idle connections"
fi
if [[ " $SCENARIOS " == *" broadcast-10k "* ]] && (($(ulimit -n) < TENK_RECEIVERS + SENDERS + 200)); then
    log "run.sh: open-file limit $(ulimit -n) is below broadcast-10k's $TENK_RECEIVERS receivers and $SENDERS senders"
fi
if [[ " $SCENARIOS " == *" join-storm "* ]] && (($(ulimit -n) < STORM_MAX + 200)); then
    log "run.sh: open-file limit $(ulimit -n) is below join-storm's $STORM_MAX users"
fi

# ------------------------------------------------------------------ build
if [[ $BUILD == 1 ]]; then
    if [[ -z ${BENCH_WSCHAT:-} ]]; then
        log "==> cargo build --release (wschat)"
        cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin wschat >&2 ||
            die "wschat did not build"
    fi
    log "==> cargo build --release (bench)"
    cargo build --release --manifest-path "$BENCH_DIR/Cargo.toml" >&2 ||
        die "bench/ did not build"
    if ((needs_node)) && [[ -z $NODE_ERROR ]]; then
        if [[ ! -f $PEERS/node_modules/.package-lock.json ||
            $PEERS/package-lock.json -nt $PEERS/node_modules/.package-lock.json ]]; then
            log "==> npm ci (bench/peers)"
            (cd "$PEERS" && npm ci --no-audit --no-fund >&2) || NODE_ERROR="npm ci failed"
        fi
    fi
fi
[[ -x $WSLOAD ]] || die "$WSLOAD is missing: run with BENCH_BUILD=1"

# ------------------------------------------------------------------ servers
SERVER_PID=""
SERVER_TMP=""
WSCHAT_EXTRA=()
NOTES=()

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 30); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
    if [[ -n $SERVER_TMP ]]; then
        rm -rf "$SERVER_TMP"
        SERVER_TMP=""
    fi
}
# The cluster scenario's processes: nodes first, redis-server last.
CLUSTER_PIDS=()
CLUSTER_TMP=""
stop_cluster() {
    local pid
    for pid in "${CLUSTER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${CLUSTER_PIDS[@]}"; do
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    CLUSTER_PIDS=()
    if [[ -n $CLUSTER_TMP ]]; then
        rm -rf "$CLUSTER_TMP"
        CLUSTER_TMP=""
    fi
}
trap 'stop_server; stop_cluster' EXIT
trap 'stop_server; stop_cluster; exit 130' INT TERM

server_command() { # target port -> SERVER_CMD (wschat also gets WSCHAT_EXTRA)
    local target=$1 port=$2
    case $target in
        wschat | wschat-deflate) SERVER_CMD=("$WSCHAT" serve --listen "127.0.0.1:$port" --rate-limit 0 --max-connections-per-ip 0 "${WSCHAT_EXTRA[@]}") ;;
        tungstenite) SERVER_CMD=("$BIN/tungstenite-peer" "$port") ;;
        uws) SERVER_CMD=(node "$PEERS/uws-server.js" "$port") ;;
        uws-deflate) SERVER_CMD=(node "$PEERS/uws-server.js" "$port" compress) ;;
        ws) SERVER_CMD=(node "$PEERS/ws-server.js" "$port") ;;
        nodejs-websocket) SERVER_CMD=(node "$PEERS/nodejs-websocket-server.js" "$port") ;;
    esac
}

# Start SERVER_CMD in a fresh temporary directory (wschat's data directory
# goes there too), pinned, and wait until it listens. Sets SERVER_PID, or
# SERVER_ERROR and returns 1.
launch() {
    local port=$1
    SERVER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/wschat-bench.XXXXXX")
    (cd "$SERVER_TMP" && WSCHAT_DATA_DIR="$SERVER_TMP/data" exec "${PIN_SERVER[@]}" "${SERVER_CMD[@]}") \
        >"$SERVER_TMP/server.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=""
            SERVER_ERROR="the server exited: $(grep -v '^\s*$' "$SERVER_TMP/server.log" | tail -1 | cut -c1-200)"
            return 1
        fi
        if "$WSLOAD" wait-port --port "$port" --timeout 0.2 2>/dev/null; then
            sleep 0.3 # let the probe connection go away before measuring
            return 0
        fi
    done
    SERVER_ERROR="nothing listened on port $port within 20 s"
    stop_server
    return 1
}

start_server() { # target port [extra wschat flags...]
    local target=$1 port=$2
    WSCHAT_EXTRA=("${@:3}")
    SERVER_ERROR=""
    if [[ $target == uws || $target == uws-deflate || $target == ws || $target == nodejs-websocket ]] && [[ -n $NODE_ERROR ]]; then
        SERVER_ERROR=$NODE_ERROR
        return 1
    fi
    server_command "$target" "$port"
    if launch "$port"; then return 0; fi
    if [[ $target == wschat || $target == wschat-deflate ]]; then
        # An older wschat without these flags: run without them, and say so.
        local first_error=$SERVER_ERROR
        rm -rf "$SERVER_TMP"
        SERVER_TMP=""
        SERVER_CMD=("$WSCHAT" serve --listen "127.0.0.1:$port" "${WSCHAT_EXTRA[@]}")
        if launch "$port"; then
            local note="wschat refused \`--rate-limit 0 --max-connections-per-ip 0\` (${first_error#the server exited: }); it ran without them."
            [[ " ${NOTES[*]-} " == *"refused"* ]] || NOTES+=("$note")
            return 0
        fi
    fi
    return 1
}

PORT_NEXT=$PORT
run_one() { # scenario target
    local scenario=$1 target=$2
    # Skip ports someone else listens on: the generator must reach our server.
    while "$WSLOAD" wait-port --port "$PORT_NEXT" --timeout 0 2>/dev/null; do
        PORT_NEXT=$((PORT_NEXT + 1))
    done
    local port=$PORT_NEXT
    PORT_NEXT=$((PORT_NEXT + 1))
    local wschat_flags=()
    [[ $scenario == broadcast-10k ]] && wschat_flags=(--max-connections "$TENK_MAX_CONNS")
    if [[ $scenario == join-storm ]]; then
        local storm_conns=$((STORM_N + 100))
        ((storm_conns >= 10000)) || storm_conns=10000
        wschat_flags=(--max-connections "$storm_conns")
    fi
    if [[ $scenario == history && $target != wschat* ]]; then
        ROW="| $target | n/a (the peers keep no history) |"
        return
    fi
    if [[ $scenario == api-publish ]]; then
        if [[ $target != wschat ]]; then
            ROW="| $target | n/a (the HTTP API is wschat's own) |"
            return
        fi
        wschat_flags=(--api-key bench --api-rate 0)
    fi
    if ! start_server "$target" "$port" "${wschat_flags[@]}"; then
        ROW="| $target | n/a (error: ${SERVER_ERROR//|/\\|}) |"
        stop_server
        return
    fi
    local args=(--port "$port" --pid "$SERVER_PID" --target "$target")
    # The *-deflate targets: the generator's raw connections offer
    # permessage-deflate and fail without it.
    [[ $target == *-deflate ]] && args+=(--deflate 1)
    case $scenario in
        echo) args=(echo "${args[@]}" --conns "$ECHO_CONNS" --size "$SIZE" --duration "$DURATION") ;;
        broadcast | broadcast-light)
            local rate=$RATE
            [[ $scenario == broadcast-light ]] && rate=$LIGHT_RATE
            args=(broadcast "${args[@]}" --receivers "$RECEIVERS" --senders "$SENDERS"
                --rate "$rate" --size "$SIZE" --duration "$DURATION")
            ;;
        broadcast-deflate)
            args=(broadcast "${args[@]}" --receivers "$RECEIVERS" --senders "$SENDERS"
                --rate "$DEFLATE_RATE" --size "$DEFLATE_SIZE" --duration "$DURATION" --words 1 --wire 1)
            ;;
        history) args=(history "${args[@]}" --messages 50 --size "$DEFLATE_SIZE") ;;
        broadcast-10k)
            args=(broadcast "${args[@]}" --receivers "$TENK_RECEIVERS" --senders "$SENDERS"
                --rate "$TENK_RATE" --size "$SIZE" --duration "$DURATION" --report-memory 1 --hold 1)
            ;;
        idle) args=(idle "${args[@]}" --conns "$IDLE_CONNS" --concurrency "$IDLE_CONCURRENCY"
            --path "$IDLE_PATH" --hold 1) ;;
        idle-chat) args=(idle "${args[@]}" --conns "$IDLE_CONNS" --concurrency "$IDLE_CONCURRENCY"
            --path / --hold 1) ;;
        api-publish) args=(api-publish "${args[@]}" --receivers "$RECEIVERS" --duration "$DURATION") ;;
        join-storm) args=(join-storm "${args[@]}" --users "$STORM_N" --concurrency "$STORM_CONCURRENCY"
            --path / --quiet 1.5) ;;
    esac
    local err="$SERVER_TMP/generator.err" row limit=$((DURATION * 3 + 90))
    # Opening thousands of receivers may take up to wsload's 45 s setup limit.
    [[ $scenario == broadcast-10k || $scenario == join-storm ]] && limit=$((limit + 60))
    # Bounded in time whatever happens.
    if row=$(timeout --kill-after=5 "$limit" "${PIN_GEN[@]}" "$WSLOAD" "${args[@]}" 2>"$err"); then
        ROW=$row
    else
        local why
        why=$(grep -v '^\s*$' "$err" | tail -1 | sed 's/^error: //' | cut -c1-200)
        [[ -n $why ]] || why="the generator failed or timed out"
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then why="$why; the server died: $(tail -1 "$SERVER_TMP/server.log" | cut -c1-120)"; fi
        ROW="| $target | n/a (error: ${why//|/\\|}) |"
    fi
    stop_server
}

next_port() { # -> PORT_NEXT's next free port, in CLUSTER_PORT
    while "$WSLOAD" wait-port --port "$PORT_NEXT" --timeout 0 2>/dev/null; do
        PORT_NEXT=$((PORT_NEXT + 1))
    done
    CLUSTER_PORT=$PORT_NEXT
    PORT_NEXT=$((PORT_NEXT + 1))
}

# Start one process of the cluster scenario, pinned with the servers, and
# wait until it listens on $1. Returns 1 (with CLUSTER_ERROR) if it does not.
cluster_start() { # port log command...
    local port=$1 log=$2
    shift 2
    (cd "$CLUSTER_TMP" && exec "${PIN_SERVER[@]}" "$@") >"$log" 2>&1 &
    local pid=$!
    CLUSTER_PIDS+=("$pid")
    if ! "$WSLOAD" wait-port --port "$port" --timeout 20 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; then
        CLUSTER_ERROR="$(basename "$log" .log) did not listen on $port: $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-160)"
        return 1
    fi
}

# One run of the cluster scenario: redis-server (with docs/cluster.md's
# settings), NODES servers on it, the generator spreading RECEIVERS
# receivers and the senders over them. Sets ROW and CLUSTER_NOTE.
run_cluster() { # target nodes receivers
    local target=$1 nodes=$2 receivers=$3
    CLUSTER_NOTE=""
    CLUSTER_ERROR=""
    if [[ $target == socketio-redis && -n $NODE_ERROR ]]; then
        ROW="| $target | $nodes | $receivers | n/a (error: $NODE_ERROR) |"
        return
    fi
    CLUSTER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/wschat-bench-cluster.XXXXXX")
    local ports=() pids=() redis_args=() label port i
    if [[ $target != wschat ]]; then
        next_port
        local redis_port=$CLUSTER_PORT
        # docs/cluster.md's "confirmed means kept" settings; no RDB snapshots.
        if ! cluster_start "$redis_port" "$CLUSTER_TMP/redis-server.log" redis-server --bind 127.0.0.1 \
            --port "$redis_port" --dir "$CLUSTER_TMP" --appendonly yes --appendfsync "$REDIS_FSYNC" \
            --maxmemory-policy noeviction --save ""; then
            ROW="| $target | $nodes | $receivers | n/a (error: ${CLUSTER_ERROR//|/\\|}) |"
            stop_cluster
            return
        fi
        redis_args=(--redis-port "$redis_port")
    fi
    for ((i = 1; i <= nodes; i++)); do
        next_port
        port=$CLUSTER_PORT
        case $target in
            wschat) set -- "$WSCHAT" serve --listen "127.0.0.1:$port" --rate-limit 0 --max-connections-per-ip 0 ;;
            wschat-redis) set -- "$WSCHAT" serve --listen "127.0.0.1:$port" --rate-limit 0 --max-connections-per-ip 0 \
                --redis "redis://127.0.0.1:$redis_port" ;;
            socketio-redis) set -- node "$PEERS/socketio-redis-server.js" "$port" "redis://127.0.0.1:$redis_port" ;;
        esac
        mkdir -p "$CLUSTER_TMP/node$i"
        if ! WSCHAT_DATA_DIR="$CLUSTER_TMP/node$i" cluster_start "$port" "$CLUSTER_TMP/node$i.log" "$@"; then
            ROW="| $target | $nodes | $receivers | n/a (error: ${CLUSTER_ERROR//|/\\|}) |"
            stop_cluster
            return
        fi
        ports+=("$port")
    done
    sleep 0.3 # let the probe connections go away before measuring
    # CPU: every node, then redis-server (started first).
    pids=("${CLUSTER_PIDS[@]:1}" "${CLUSTER_PIDS[0]}")
    [[ $target == wschat ]] && pids=("${CLUSTER_PIDS[@]}")
    case $target in
        wschat) label="wschat alone" ;;
        wschat-redis) label="wschat --redis" ;;
        socketio-redis) label="socket.io + redis-adapter" ;;
    esac
    local args=(broadcast --ports "$(IFS=,; echo "${ports[*]}")" --pids "$(IFS=,; echo "${pids[*]}")"
        --target "$label" --receivers "$receivers" --senders "$SENDERS" --rate "$CLUSTER_RATE"
        --size "$SIZE" --duration "$DURATION" "${redis_args[@]}")
    [[ $target == socketio-redis ]] && args+=(--socketio 1)
    local err="$CLUSTER_TMP/generator.err" row
    if row=$(timeout --kill-after=5 $((DURATION * 3 + 90)) "${PIN_GEN[@]}" "$WSLOAD" "${args[@]}" 2>"$err"); then
        ROW=$row
        CLUSTER_NOTE=$(grep '^redis commands per message:' "$err" | tail -1 || true)
    else
        local why
        why=$(grep -v '^\s*$' "$err" | tail -1 | sed 's/^error: //' | cut -c1-200)
        ROW="| $label | $nodes | $receivers | n/a (error: ${why:-the generator failed or timed out}) |"
    fi
    stop_cluster
}

describe() { # scenario -> one line
    case $1 in
        codec) echo "In-process codec, payload GB/s (decode: masked client binary frames, read in 128 KiB pieces; encode: unmasked server frames); ~${CODEC_CELL_MS} ms per cell." ;;
        echo) echo "$ECHO_CONNS connections to /echo, $SIZE-byte text messages, closed loop, ${DURATION} s. CPU = server utime+stime per message." ;;
        broadcast | broadcast-light)
            local rate=$RATE
            [[ $1 == broadcast-light ]] && rate=$LIGHT_RATE
            echo "$RECEIVERS receivers and $SENDERS senders on /, each sender ${rate} msg/s of $SIZE bytes, ${DURATION} s. Deliveries/s counts receiver deliveries inside the send window; lost = sent × receivers − delivered after up to 5 s of draining; CPU = server utime+stime per delivery."
            ;;
        broadcast-deflate) echo "$RECEIVERS receivers and $SENDERS senders on /, each sender ${DEFLATE_RATE} msg/s of $DEFLATE_SIZE bytes of words (not dots: text that compresses like chat text), ${DURATION} s. The *-deflate targets' receivers offer permessage-deflate (as Chromium does) and inflate what comes compressed; the senders never compress. Wire bytes/delivery = every byte the receivers read during the window and the drain (frame headers included) ÷ deliveries. Deliveries/s, lost and CPU as in broadcast." ;;
        history) echo "wschat only: 50 chat messages of $DEFLATE_SIZE bytes of words go to a fresh room, then one member joins without permessage-deflate and one with it: the bytes on the wire of the history message each gets on joining (frame header included)." ;;
        broadcast-10k)
            local offered
            offered=$(awk -v s="$SENDERS" -v r="$TENK_RATE" -v n="$TENK_RECEIVERS" 'BEGIN { printf "%.0f", s * r * n }')
            echo "$TENK_RECEIVERS receivers and $SENDERS senders on / ($offered deliveries/s offered), each sender ${TENK_RATE} msg/s of $SIZE bytes, ${DURATION} s; wschat runs with --max-connections $TENK_MAX_CONNS. The receivers open with 64 handshakes in flight and read from the moment they open. Connection errors = receivers that did not open + connections the server closed during the run. Server RSS (VmRSS) and threads are read before the first connection and 1 s after the last, before the first send; KiB/conn = RSS growth ÷ (receivers + senders). Deliveries/s, lost and CPU as in broadcast: deliveries inside the send window; lost = sent × receivers − delivered after up to 5 s of draining; CPU = server utime+stime per delivery."
            ;;
        idle) echo "$IDLE_CONNS connections to $IDLE_PATH opened with $IDLE_CONCURRENCY handshakes in flight, then held; RSS (VmRSS) and threads read 1 s after the last handshake." ;;
        idle-chat) echo "$IDLE_CONNS connections to / (wschat: chat users joining the lobby; the peers: members of their broadcast room) opened with $IDLE_CONCURRENCY handshakes in flight, then held, never read from; RSS (VmRSS) and threads read 1 s after the last handshake." ;;
        api-publish) echo "One publisher, one message at a time, to the lobby with $RECEIVERS receivers for ${DURATION} s: first a WebSocket client (it sends, then waits for its own message back), then the HTTP API (POST /api/publish with a key, one TCP connection per request as curl makes, waiting for the 200). Messages/s = what the one publisher got through; deliveries/s = the chat messages the receivers counted; server CPU = utime+stime over the window ÷ deliveries. wschat only (the peers have no HTTP API)." ;;
        cluster) echo "A room spread over NODES servers (receivers and $SENDERS senders on /, or socket.io's room, round-robin over the nodes), each sender ${CLUSTER_RATE} msg/s of $SIZE bytes, ${DURATION} s; every node and redis-server pinned to CPU $SERVER_CPU, the generator to CPU $GEN_CPU. One redis-server per run with docs/cluster.md's settings (appendonly yes, appendfsync $REDIS_FSYNC, noeviction). wschat alone: one node, its embedded log, no Redis. CPU = utime+stime of every node plus redis-server ÷ deliveries; redis-server CPU = its own ÷ messages sent. Redis commands/message: INFO commandstats (commands called by scripts counted too, the generator's INFO not) at the start of the send window and after the drain, ÷ messages sent; it includes what the nodes do meanwhile whatever the traffic (heartbeats, pings). Redis bytes in/out: total_net_input_bytes and total_net_output_bytes over the same span ÷ messages sent. Deliveries/s, latency and lost as in broadcast." ;;
        join-storm) echo "Users joining one room (/, the lobby; the peers' broadcast room) with $STORM_CONCURRENCY handshakes in flight, one run per size ($STORM_USERS), each user reading from the moment it opens; the run ends 1.5 s after the last byte arrived. Bytes to clients = every byte the users read (what the server sent them: 101 responses, frames); bytes/user = that ÷ users: flat as the room grows means O(n). Server wchar = /proc/PID/io wchar over the run: bytes given to write(2)/writev(2), so the Node peers' and tungstenite's socket writes, but for wschat only its store's records and its log lines (it sends frames, and a chat connection's 101 with them, with send(2)/sendmsg(2), which wchar does not count). CPU = server utime+stime over the run." ;;
    esac
}

# ------------------------------------------------------------------ run
cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
wschat_size=$(stat -c %s "$WSCHAT" 2>/dev/null || echo "?")
if [[ -n ${BENCH_WSCHAT:-} ]]; then
    # Another build: its commit is the one of the checkout it was built in.
    commit=$(git -C "$(dirname "$WSCHAT")" rev-parse --short HEAD 2>/dev/null || echo "?")
    commit="$commit ($WSCHAT)"
else
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
fi
emit "## wschat benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
emit ""
emit "Machine: $(nproc) CPUs (${cpu_model:-unknown CPU}), $(uname -sr). wschat at commit $commit (working tree as built), release binary $wschat_size bytes."
if [[ $PIN == 1 ]]; then
    emit "Server pinned to CPU $SERVER_CPU, generator to CPU $GEN_CPU (taskset)."
else
    emit "Not pinned."
fi
[[ $QUICK == 1 ]] && emit "Quick run (BENCH_QUICK=1): shorter and smaller than the full run."
emit ""

for scenario in $SCENARIOS; do
    NOTES=()
    emit "### $scenario"
    emit ""
    emit "$(describe "$scenario")"
    emit ""
    if [[ $scenario == codec ]]; then
        if table=$("${PIN_GEN[@]}" "$BIN/codec" --cell-ms "$CODEC_CELL_MS" 2>&1); then
            emit "$table"
        else
            emit "n/a (error: $(tail -1 <<<"$table"))"
        fi
        emit ""
        continue
    fi
    header=$("$WSLOAD" header "$scenario")
    emit "$header"
    if [[ $scenario == cluster ]]; then
        notes=()
        for run in $CLUSTER_RUNS; do
            IFS=: read -r c_target c_nodes c_receivers <<<"$run"
            log "==> cluster: $c_target, $c_nodes nodes, $c_receivers receivers"
            run_cluster "$c_target" "$c_nodes" "$c_receivers"
            emit "$ROW"
            [[ -z $CLUSTER_NOTE ]] ||
                notes+=("$c_target, $c_nodes nodes, $c_receivers receivers: ${CLUSTER_NOTE#redis commands per message: }")
        done
        emit ""
        emit "Redis commands per chat message, by name:"
        emit ""
        for note in "${notes[@]}"; do emit "- $note"; done
        emit ""
        continue
    fi
    rounds=1 max_col=()
    case $scenario in
        echo) rounds=$ROUNDS ;;
        broadcast | broadcast-light | broadcast-deflate) rounds=$ROUNDS max_col=(--max-col 6) ;;
    esac
    # Round by round, every target in turn: a slow spell of the machine
    # falls on all of them, not on one.
    declare -A rows=()
    all_rows=()
    for ((round = 1; round <= rounds; round++)); do
        for target in $TARGETS; do
            if ((rounds > 1)); then
                log "==> $scenario: $target (round $round of $rounds)"
            else
                log "==> $scenario: $target"
            fi
            if [[ $scenario == join-storm ]]; then
                for STORM_N in $STORM_USERS; do
                    log "==> $scenario: $target, $STORM_N users"
                    run_one "$scenario" "$target"
                    rows[$target]+="$ROW"$'\n'
                done
                continue
            fi
            run_one "$scenario" "$target"
            rows[$target]+="$ROW"$'\n'
            all_rows+=("${ROW/| $target |/| $target ($round) |}")
        done
    done
    for target in $TARGETS; do
        if ((rounds > 1)); then
            emit "$(printf '%s' "${rows[$target]}" | "$WSLOAD" median "${max_col[@]}")"
        else
            emit "${rows[$target]%$'\n'}"
        fi
    done
    unset rows
    if ((rounds > 1)); then
        emit ""
        emit "Each row above: the median of $rounds rounds, column by column (lost: the worst round). The rounds:"
        emit ""
        emit "$header"
        for row in "${all_rows[@]}"; do emit "$row"; done
    fi
    emit ""
    for note in "${NOTES[@]}"; do emit "Note: $note"; done
    ((${#NOTES[@]} == 0)) || emit ""
done
log "tables written to $OUT"
