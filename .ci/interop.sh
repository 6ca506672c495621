#!/usr/bin/env bash
# Interop: wschat against the WebSocket clients people use, the Python
# `websockets` library and Node's `ws` (tests/interop/). Each sends text,
# binary and fragmented messages to /echo and checks the exact echo, pings
# with a payload and checks the pong, closes with 4000 and checks the code
# it gets back, and on the chat (/ and /chat) checks the welcome, a
# broadcast to both of two clients, the leave notice and clean 1000 closes.
#
#   bash .ci/interop.sh          # builds the release binary if needed
#   WSCHAT_BIN=path bash .ci/interop.sh
#
# Installs what is missing (a venv under target/interop/, `npm ci` in
# tests/interop/); prints `interop: N passed, M failed` last.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=interop
. tests/interop/common.sh
mkdir -p "$interop_work"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
python=$(interop_python)
if [ ! -d "$interop_dir/node_modules/ws" ] ||
   ! cmp -s "$interop_dir/package-lock.json" "$interop_dir/node_modules/.package-lock.installed"; then
  (cd "$interop_dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null >&2)
  cp "$interop_dir/package-lock.json" "$interop_dir/node_modules/.package-lock.installed"
fi
wschat=$(wschat_binary)

run=$(mktemp -d "${TMPDIR:-/tmp}/wschat-interop.XXXXXX")
wschat_pid=
cleanup() {
  stop_pid "$wschat_pid"
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
start_wschat "$port" "$run/server"
say "wschat $("$wschat" --version | cut -d' ' -f2) on 127.0.0.1:$port"

results="$run/results.txt"
: >"$results"
# Each client prints PASS/FAIL lines; a client that dies before printing
# its summary counts as one more failure.
run_client() {
  local name=$1 rc=0
  shift
  timeout 300 "$@" </dev/null >"$run/$name.out" 2>"$run/$name.err" || rc=$?
  cat "$run/$name.out"
  cat "$run/$name.out" >>"$results"
  if ! grep -q "^$name: [0-9]* passed, [0-9]* failed$" "$run/$name.out"; then
    printf 'FAIL %s: the client ended early (exit %s)\n' "$name" "$rc" | tee -a "$results"
    sed 's/^/  | /' "$run/$name.err" | tail -n 30
  elif [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$run/$name.out"; then
    printf 'FAIL %s: exit %s with no failed check\n' "$name" "$rc" | tee -a "$results"
  fi
}

run_client python "$python" "$interop_dir/python_client.py" "ws://127.0.0.1:$port" --http
run_client node node "$interop_dir/node_client.mjs" "ws://127.0.0.1:$port"

if ! kill -0 "$wschat_pid" 2>/dev/null; then
  echo "FAIL interop: wschat exited during the run" | tee -a "$results"
fi
count_results "$results"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  say "wschat's log (last 30 lines):"
  tail -n 30 "$run/server/wschat.log" | sed 's/^/  | /'
fi
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
