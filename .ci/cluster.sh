#!/usr/bin/env bash
# The cluster's Redis tests: tests/redis.rs (wschat's own RESP2 client and
# the cluster's primitives) and tests/cluster.rs (wschat nodes started with
# --redis as child processes, one chat across them), against real
# redis-servers, each started by the
# test harness (tests/redis_support/) on a free port of 127.0.0.1 with a
# temporary --dir and --appendonly yes, and stopped by its PID.
#
#   bash .ci/cluster.sh            # installs Debian's redis-server if missing
#   bash .ci/cluster.sh --install  # only that (.ci/run, before `cargo test`)
#
# Under CI=true (as .ci/run sets it) a test fails, rather than skips, when
# redis-server is missing. The packaged service is not used: the harness
# starts its own servers, and this script starts none.
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

# The harness must not skip here: no redis-server is a failure.
CI=${CI:-true} cargo test --test redis --test cluster --test cluster_desk -- --test-threads=2
