#!/usr/bin/env bash
# The cluster's checks, against real redis-servers:
#
# 1. tests/redis.rs (wschat's own RESP2 client and the cluster's
#    primitives) and tests/cluster.rs (wschat nodes started with --redis as
#    child processes, one chat across them), each redis-server started by
#    the test harness (tests/redis_support/) on a free port of 127.0.0.1
#    with a temporary --dir and --appendonly yes, and stopped by its PID.
# 2. The deployment of docs/cluster.md: redis-server with its Redis lines,
#    three nodes of the release binary started as its systemd unit and
#    drop-in say (checked with systemd-analyze verify first), nginx with its
#    site (installed as .ci/nginx.sh does), each taken out of the docs
#    between markers; then tests/interop/cluster_client.py, through nginx
#    only: clients chat across the three nodes, one node is killed, its
#    client resumes on another without gap or repeat. Stopped by PID.
#
#   bash .ci/cluster.sh            # installs Debian's redis-server if missing
#   bash .ci/cluster.sh --install  # only that (.ci/run, before `cargo test`)
#   bash .ci/cluster.sh --deploy   # only step 2
#
# Under CI=true (as .ci/run sets it) a test fails, rather than skips, when
# redis-server is missing. The packaged service is not used: this script
# and the harness start their own servers.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if ! command -v redis-server >/dev/null; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  echo "cluster.sh: installing redis-server"
  "${sudo[@]}" apt-get update -qq </dev/null
  "${sudo[@]}" apt-get install -y -qq redis-server </dev/null >/dev/null
fi
redis-server --version
[ "${1:-}" = --install ] && exit 0

if [ "${1:-}" != --deploy ]; then
  # The harness must not skip here: no redis-server is a failure.
  CI=${CI:-true} cargo test --test redis --test cluster --test cluster_desk -- --test-threads=2
fi

# --- the deployment of docs/cluster.md, through nginx ------------------------
# Redis with the lines of the `redis-conf` block, three nodes as the unit
# and its `cluster-unit` drop-in run them, nginx with the `cluster-nginx`
# site: only addresses, ports and directories are changed, so what the docs
# show is what runs. tests/interop/cluster_client.py then chats through
# nginx across the three nodes, kills one (by PID) and resumes its client on
# another. Everything is stopped by PID at the end.
suite=cluster
. tests/interop/common.sh
mkdir -p "$interop_work"
nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || [ ! -x /usr/sbin/nginx ] || nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
  say "installing nginx-light"
  apt_install nginx-light || apt_install nginx
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -x "$nginx_bin" ] || die "no nginx after installing it"
python=$(interop_python)
wschat=$(wschat_binary)

run=$(mktemp -d "${TMPDIR:-/tmp}/wschat-cluster.XXXXXX")
redis_pid=
nginx_pid=
node_pids=()
cleanup() {
  if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; fi
  stop_pid "$nginx_pid"
  for pid in "${node_pids[@]}"; do stop_pid "$pid"; done
  stop_pid "$redis_pid"
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis_port=$(free_port)
nginx_port=$(free_port)
node_ports=("$(free_port)" "$(free_port)" "$(free_port)")
mkdir -p "$run/redis" "$run/nginx/tmp"

# Takes the three blocks out of docs/cluster.md and writes: the Redis
# configuration, the unit with its drop-in (for systemd-analyze), each
# node's environment (KEY=VALUE lines) and commands, and the nginx site.
"$python" - docs/cluster.md docs/wschat.service "$run" "$wschat" "$redis_port" "$nginx_port" \
  "${node_ports[@]}" <<'EOF'
import re, sys
doc_path, unit_path, run, wschat, redis_port, nginx_port = sys.argv[1:7]
node_ports = sys.argv[7:10]
doc = open(doc_path, encoding="utf-8").read()

def block(name, lang):
    found = re.search(r"<!-- %s: begin[^>]*-->\s*```%s\n(.*?)```\s*<!-- %s: end -->" % (name, lang, name), doc, re.S)
    if not found:
        sys.exit(f"docs/cluster.md: no {name} block between its markers")
    return found.group(1)

def change(text, changes, what):
    for old, new in changes.items():
        n = text.count(old)
        if n != 1:
            sys.exit(f"docs/cluster.md: the {what} has {n} times {old!r}, .ci/cluster.sh expects 1")
        text = text.replace(old, new)
    return text

def write(name, text):
    open(f"{run}/{name}", "w", encoding="utf-8").write(text)

redis = change(block("redis-conf", ""), {
    "bind 10.0.0.10": "bind 127.0.0.1",
    "port 6379": f"port {redis_port}",
}, "Redis configuration")
write("redis/redis.conf", redis + f"dir {run}/redis\nsave \"\"\n")

site = change(block("cluster-nginx", "nginx"), {
    "listen 80;": f"listen 127.0.0.1:{nginx_port};",
    "server 10.0.0.11:3000 ": f"server 127.0.0.1:{node_ports[0]} ",
    "server 10.0.0.12:3000 ": f"server 127.0.0.1:{node_ports[1]} ",
    "server 10.0.0.13:3000 ": f"server 127.0.0.1:{node_ports[2]} ",
}, "nginx site")
write("nginx/wschat-site.conf", site)

dropin = block("cluster-unit", "ini")
unit = open(unit_path, encoding="utf-8").read().replace("/usr/local/bin/wschat", wschat)
# A drop-in's sections add to the unit's: appended, they read the same.
write("wschat.service", unit + "\n" + dropin)

def directives(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]

for i, port in enumerate(node_ports, 1):
    node_dropin = change(dropin, {
        "WSCHAT_LISTEN=10.0.0.11:3000": f"WSCHAT_LISTEN=127.0.0.1:{port}",
        "WSCHAT_REDIS=redis://10.0.0.10:6379": f"WSCHAT_REDIS=redis://127.0.0.1:{redis_port}",
        "WSCHAT_TRUST_PROXY=10.0.0.5": "WSCHAT_TRUST_PROXY=127.0.0.1",
    }, "unit's drop-in")
    env = {}
    for assignment in directives(unit + "\n" + node_dropin, "Environment"):
        key, value = assignment.split("=", 1)
        # %S is systemd's state directory (/var/lib).
        env[key] = value.replace("%S", f"{run}/node{i}/state")
    write(f"node{i}.env", "".join(f"{k}={v}\n" for k, v in env.items()))
    for key in ("ExecStartPre", "ExecStart"):
        commands = directives(unit, key)
        if len(commands) != 1:
            sys.exit(f"docs/wschat.service: {len(commands)} {key}= lines, .ci/cluster.sh expects 1")
        write(f"node{i}.{key}", commands[0] + "\n")
EOF

results="$run/results.txt"
: >"$results"
pass() { echo "PASS cluster: $*" | tee -a "$results"; }
fail() { echo "FAIL cluster: $*" | tee -a "$results"; }

if command -v systemd-analyze >/dev/null; then
  if verify=$(cd "$run" && timeout 60 systemd-analyze verify ./wschat.service 2>&1) && [ -z "$verify" ]; then
    pass "systemd-analyze verify: the unit with the cluster drop-in"
  else
    fail "systemd-analyze verify: ${verify:-exit status $?}"
  fi
else
  say "skipped systemd-analyze verify: not installed"
fi

redis-server "$run/redis/redis.conf" >"$run/redis/redis.log" 2>&1 &
redis_pid=$!
wait_for_port "$redis_port" "$redis_pid" || { cat "$run/redis/redis.log" >&2; die "redis-server did not start"; }

for i in 1 2 3; do
  dir="$run/node$i"
  # systemd's StateDirectory= and WorkingDirectory= (%S/wschat).
  mkdir -p "$dir/state/wschat"
  mapfile -t env_lines <"$run/node$i.env"
  read -r -a pre <"$run/node$i.ExecStartPre"
  read -r -a start <"$run/node$i.ExecStart"
  if ! (cd "$dir/state/wschat" && env -i PATH="$PATH" "${env_lines[@]}" "${pre[@]}") >"$dir/check-config.log" 2>&1; then
    cat "$dir/check-config.log" >&2
    die "node $i: ExecStartPre (check-config) refused the unit's settings"
  fi
  (cd "$dir/state/wschat" && exec env -i PATH="$PATH" "${env_lines[@]}" "${start[@]}") >"$dir/wschat.log" 2>&1 &
  node_pids+=($!)
  wait_for_port "${node_ports[$((i - 1))]}" "$!" || { cat "$dir/wschat.log" >&2; die "node $i did not start"; }
done

user_line=
if [ "$(id -u)" -eq 0 ]; then user_line='user root;'; fi
cat >"$run/nginx/nginx.conf" <<EOF
# nginx for .ci/cluster.sh: in the foreground, everything under $run/nginx.
$user_line
daemon off;
worker_processes 1;
pid $run/nginx/nginx.pid;
error_log $run/nginx/error.log notice;
events {
    worker_connections 256;
}
http {
    access_log $run/nginx/access.log;
    client_body_temp_path $run/nginx/tmp/client_body;
    proxy_temp_path $run/nginx/tmp/proxy;
    fastcgi_temp_path $run/nginx/tmp/fastcgi;
    uwsgi_temp_path $run/nginx/tmp/uwsgi;
    scgi_temp_path $run/nginx/tmp/scgi;
    include $run/nginx/wschat-site.conf;
}
EOF
nginx_args=(-p "$run/nginx/" -c "$run/nginx/nginx.conf" -e "$run/nginx/error.log")
if ! "$nginx_bin" -t "${nginx_args[@]}" >"$run/nginx/test.log" 2>&1; then
  cat "$run/nginx/test.log" >&2
  die "nginx -t rejected the site from docs/cluster.md"
fi
"$nginx_bin" "${nginx_args[@]}" </dev/null >"$run/nginx/stdout.log" 2>&1 &
nginx_pid=$!
wait_for_port "$nginx_port" "$nginx_pid" || { cat "$run/nginx/error.log" >&2; die "nginx did not start"; }
say "redis-server on :$redis_port, nodes on :${node_ports[*]} (PIDs ${node_pids[*]}), nginx on :$nginx_port"

nodes=()
for i in 0 1 2; do nodes+=(--node "${node_ports[$i]}:${node_pids[$i]}"); done
rc=0
timeout 120 "$python" tests/interop/cluster_client.py --url "ws://127.0.0.1:$nginx_port" "${nodes[@]}" \
  </dev/null >"$run/client.out" 2>"$run/client.err" || rc=$?
cat "$run/client.out"
grep -E '^(PASS|FAIL) ' "$run/client.out" >>"$results" || true
if ! grep -q "^cluster-client: [0-9]* passed, [0-9]* failed$" "$run/client.out"; then
  fail "the client ended early (exit $rc)"
  tail -n 30 "$run/client.err" | sed 's/^/  | /'
fi
for i in 0 1 2; do
  # The client killed one node on purpose; the two others must be up.
  if ! kill -0 "${node_pids[$i]}" 2>/dev/null && ! grep -q "killed node ${node_ports[$i]}" "$run/client.out"; then
    fail "node $((i + 1)) exited during the run"
  fi
done
kill -0 "$redis_pid" 2>/dev/null || fail "redis-server exited during the run"

count_results "$results"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  for i in 1 2 3; do
    say "node $i's log (last 15 lines):"
    tail -n 15 "$run/node$i/wschat.log" | sed 's/^/  | /'
  done
  say "nginx's error log (last 15 lines):"
  tail -n 15 "$run/nginx/error.log" | sed 's/^/  | /'
fi
echo "cluster: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
