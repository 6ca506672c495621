#!/usr/bin/env bash
# The HTTP API from start to end, with curl and no browser (docs/api.md):
# start wschat on a free port with a fresh data directory and a key, then
# publish as a bot, read rooms and history, send a private message to a
# user who has never signed in, delete a message, and check every answer
# and the errors (no key, a wrong key, bad JSON, an unknown room, a body
# past the limit). CI runs it (.ci/api.sh).
#
#   bash docs/api-example.sh [path/to/wschat]     # default: target/release/wschat
set -euo pipefail

wschat=${1:-target/release/wschat}
key=example-key-$RANDOM$RANDOM
data=$(mktemp -d "${TMPDIR:-/tmp}/wschat-api-example.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

WSCHAT_API_KEY=$key "$wschat" serve --listen "127.0.0.1:$port" --data-dir "$data" \
  --api-max-body 1K >"$data/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

API=http://127.0.0.1:$port/api
AUTH="Authorization: Bearer $key"
failures=0

# expect STATUS PATTERN -- curl arguments: run curl, check the status and
# that the body contains PATTERN; print the body.
expect() {
  local status=$1 pattern=$2
  shift 3
  local out got body
  out=$(curl -s -w '\n%{http_code}' "$@")
  got=${out##*$'\n'}
  body=${out%$'\n'*}
  body=${body%$'\n'}
  if [ "$got" = "$status" ] && [[ "$body" == *"$pattern"* ]]; then
    printf 'ok   %s %s\n' "$got" "$body"
  else
    printf 'FAIL wanted %s with %s, got %s %s (curl %s)\n' "$status" "$pattern" "$got" "$body" "$*"
    failures=$((failures + 1))
  fi
  LAST=$body
}

echo "== publish to the lobby as a bot"
expect 200 '"id":' -- -H "$AUTH" -d '{"room":"lobby","text":"Maintenance at 22:00","name":"Ops"}' "$API/publish"
id=$(printf '%s' "$LAST" | tr -dc '0-9')

echo "== rooms, and the history holds the bot's message"
expect 200 '"room":"lobby"' -- -H "$AUTH" "$API/rooms"
expect 200 '"bot":true' -- -H "$AUTH" "$API/rooms/lobby/history?limit=10"
expect 200 '"complete":true' -- -H "$AUTH" "$API/rooms/lobby/history?limit=10"
expect 200 '"members":[]' -- -H "$AUTH" "$API/rooms/lobby/members"

echo "== a private message to someone who has not signed in yet"
expect 200 '"id":' -- -H "$AUTH" -d '{"sub":"customer-881","text":"Your order has shipped","name":"Shop"}' "$API/private"

echo "== delete the bot's message"
expect 200 "\"deleted\":$id" -- -H "$AUTH" -X DELETE "$API/messages/$id"
expect 404 '"unknown_message"' -- -H "$AUTH" -X DELETE "$API/messages/$id"

echo "== the desk: no conversations yet"
expect 200 '"conversations":[]' -- -H "$AUTH" "$API/desk/conversations?state=queued"

echo "== errors"
expect 401 '"unauthorized"' -- "$API/rooms"
expect 401 '"unauthorized"' -- -H "Authorization: Bearer wrong" "$API/rooms"
expect 400 '"bad_json"' -- -H "$AUTH" -d '{"room":' "$API/publish"
expect 404 '"unknown_room"' -- -H "$AUTH" -d '{"room":"nowhere","text":"x"}' "$API/publish"
expect 404 '"unknown_user"' -- -H "$AUTH" -d '{"user":999999}' "$API/kick"
big=$(head -c 2000 /dev/zero | tr '\0' x)
expect 413 '"too_large"' -- -H "$AUTH" -d "{\"room\":\"lobby\",\"text\":\"$big\"}" "$API/publish"

echo "== the access log names no key"
if grep -q "$key" "$data/log"; then
  echo "FAIL the key is in the log"
  failures=$((failures + 1))
fi
echo "api log lines: $(grep -c ' api 127.0.0.1' "$data/log" || true)"

if [ "$failures" -gt 0 ]; then
  echo "api example: $failures failed"
  exit 1
fi
echo "api example: all passed"
