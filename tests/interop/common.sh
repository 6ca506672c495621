# shellcheck shell=bash
# Helpers shared by .ci/interop.sh and .ci/nginx.sh (sourced, not run).
# They expect to be sourced from the repository root with `set -euo pipefail`.

# A failure inside $(...) fails the assignment too.
shopt -s inherit_errexit

interop_dir=tests/interop
# Everything these checks install lives under target/, which git ignores
# and `cargo clean` removes.
interop_work=${WSCHAT_INTEROP_WORK:-target/interop}

say() { printf '%s: %s\n' "${suite:-interop}" "$*"; }
die() { say "$*" >&2; exit 1; }

# Run apt-get as root (directly) or fail with what to install.
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    die "missing $*: install it (apt-get install $*) or run as root"
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Debian's maintainer scripts start an installed service at once (nginx
  # on port 80); keep them from doing so unless the machine already has a
  # policy of its own.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"; } \
    </dev/null >"$interop_work/apt.log" 2>&1 || rc=$?
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$interop_work/apt.log" >&2
    return "$rc"
  fi
}

# The wschat binary to test: $WSCHAT_BIN, or a release build brought up to
# date (a no-op when nothing changed).
wschat_binary() {
  if [ -n "${WSCHAT_BIN:-}" ]; then
    [ -x "$WSCHAT_BIN" ] || die "WSCHAT_BIN=$WSCHAT_BIN is not executable"
    printf '%s\n' "$WSCHAT_BIN"
    return
  fi
  cargo build --release --quiet --bin wschat >&2 || die "cargo build --release failed"
  printf '%s\n' "$PWD/target/release/wschat"
}

# A Python venv with tests/interop/requirements.txt installed; prints its
# python. Reinstalls only when the requirements change.
interop_python() {
  local venv="$interop_work/venv" req="$interop_dir/requirements.txt"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2 || die "python3 -m venv failed (apt-get install python3-venv)"
  fi
  if ! cmp -s "$req" "$venv/requirements.installed"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --no-input -r "$req" >&2
    cp "$req" "$venv/requirements.installed"
  fi
  printf '%s\n' "$venv/bin/python"
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Wait until 127.0.0.1:$1 accepts connections (10 s at most), while process
# $2 is alive.
wait_for_port() {
  local port=$1 pid=$2
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Start $wschat (the binary) on 127.0.0.1:$1 in its own fresh directory $2
# (working directory and data directory), extra flags after. Sets
# wschat_pid.
start_wschat() {
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir/data"
  (cd "$dir" && WSCHAT_DATA_DIR="$dir/data" RUST_LOG="${RUST_LOG:-wschat=info}" \
    exec "${wschat:?}" serve --listen "127.0.0.1:$port" "$@") >"$dir/wschat.log" 2>&1 &
  wschat_pid=$!
  if ! wait_for_port "$port" "$wschat_pid"; then
    cat "$dir/wschat.log" >&2 || true
    die "wschat did not start on 127.0.0.1:$port"
  fi
}

# Stop a process this script started: TERM, then KILL after 5 s.
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Count the PASS/FAIL lines the clients printed into $1: sets passed and
# failed.
# shellcheck disable=SC2034
count_results() {
  passed=$(grep -c '^PASS ' "$1" || true)
  failed=$(grep -c '^FAIL ' "$1" || true)
}
