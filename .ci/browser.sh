#!/usr/bin/env bash
# Browser tests of the chat page (src/web/chat.html) and of the seeds' own
# client pages, in headless Debian Chromium driven by playwright-core.
#
#   bash .ci/browser.sh                               # everything
#   bash .ci/browser.sh tests/browser/xss.test.mjs    # some test files only
#
# Installs what is missing on a fresh Debian machine (apt: chromium,
# fonts-wqy-zenhei, fonts-noto-color-emoji; npm ci in tests/browser, which pins playwright-core),
# builds the release binary, serves it on a free port above 24000 from a
# fresh temporary directory, and runs the tests with Node's own test runner.
# Screenshots go to target/screenshots/, the server's log to
# target/browser-server.log. Needs Node.js 20 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export DEBIAN_FRONTEND=noninteractive

# --- what the tests need -------------------------------------------------------
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || missing+=(fonts-wqy-zenhei)
# Reactions are emoji: without a colour emoji font they show as boxes.
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || missing+=(fonts-noto-color-emoji)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  echo "browser.sh: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq </dev/null
  "${sudo[@]}" apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
fi
if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "browser.sh: needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
# playwright-core at the version package-lock.json pins (never its browsers).
want=$(node -p 'require("./tests/browser/package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p 'try { require("./tests/browser/node_modules/playwright-core/package.json").version } catch (_) { "" }')
if [ "$want" != "$have" ]; then
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error </dev/null)
fi

# --- the server under test -----------------------------------------------------
cargo build --release --quiet
port=
for _ in $(seq 100); do
  p=$((24000 + RANDOM % 30000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "browser.sh: no free port" >&2; exit 1; }
url="http://127.0.0.1:$port"
data=$(mktemp -d "${TMPDIR:-/tmp}/wschat-browser.XXXXXX")
mkdir -p target
(cd "$data" && exec "$root/target/release/wschat" serve --listen "127.0.0.1:$port" --data-dir "$data/data") \
  >target/browser-server.log 2>&1 </dev/null &
server=$!
# shellcheck disable=SC2317  # called by the EXIT trap
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$data"
}
trap stop EXIT

up=
for _ in $(seq 150); do
  if ! kill -0 "$server" 2>/dev/null; then break; fi
  if node -e 'fetch(process.argv[1] + "/healthz", {signal: AbortSignal.timeout(1000)}).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$url"; then
    up=1; break
  fi
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "browser.sh: wschat did not come up on $url; its log:" >&2
  cat target/browser-server.log >&2
  exit 1
fi

# --- the tests -----------------------------------------------------------------
mkdir -p target/screenshots
if [ "$#" -gt 0 ]; then files=("$@"); else files=(tests/browser/*.test.mjs); fi
status=0
WSCHAT_URL="$url" WSCHAT_BIN="$root/target/release/wschat" \
  node --test --test-concurrency=1 --test-timeout=180000 "${files[@]}" </dev/null || status=$?
if [ "$status" -ne 0 ]; then
  echo "browser.sh: failed (exit $status); the server's log is target/browser-server.log" >&2
fi
exit "$status"
