#!/usr/bin/env bash
# Run the Autobahn TestSuite (Autobahn's own case files, through the PyPI
# runner `kosoku`) against wschat's echo endpoint, and fail on any case that
# does not end OK, NON-STRICT or INFORMATIONAL, or if a full run has fewer
# cases than expected.
#
#   bash .ci/autobahn.sh            # all 517 cases: 301, and the 216
#                                   # permessage-deflate cases 12.* and 13.*
#   bash .ci/autobahn.sh -i '6.*'   # extra kosoku arguments select cases
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${WSCHAT_VENV:-.venv}
if [ ! -x "$venv/bin/kosoku" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kosoku
fi

cargo build --release --quiet
port=${AUTOBAHN_PORT:-9001}
out=${AUTOBAHN_OUT:-target/autobahn}
rm -rf "$out"
# Autobahn's 9.* cases send messages of up to 16 MiB: raise the limits for
# this run only (the defaults are chat-sized, see docs/security.md).
# --deflate-min-size 0 compresses every echo: kosoku's runner takes an
# uncompressed text message on a compressed connection for an error of the
# server (RFC 7692 §6 allows it), see docs/framing.md.
./target/release/wschat serve --listen "127.0.0.1:$port" --echo-everywhere \
  --max-frame-size 16M --max-message-size 16M --deflate-min-size 0 \
  >"$out.server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

timeout 1200 "$venv/bin/kosoku" "$@" -o "$out" "127.0.0.1:$port"

# A run without case selection must have run every case: 301 + 216.
expected=517
if [ "$#" -gt 0 ]; then expected=0; fi

python3 - "$out/index.json" "$expected" <<'PY'
import collections, json, sys
results = json.load(open(sys.argv[1]))
expected = int(sys.argv[2])
counts = collections.Counter()
bad = []
for agent, cases in results.items():
    for case, r in sorted(cases.items()):
        for key in ("behavior", "behaviorClose"):
            counts[(key, r[key])] += 1
        if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL") or \
           r["behaviorClose"] not in ("OK", "NON-STRICT", "INFORMATIONAL"):
            bad.append(f"{case}: {r['behavior']} / close {r['behaviorClose']}")
total = sum(v for (k, _), v in counts.items() if k == "behavior")
print(f"autobahn: {total} cases")
for (key, value), n in sorted(counts.items()):
    print(f"  {key:14} {value:14} {n}")
if bad:
    print("autobahn: failed cases:")
    print("\n".join("  " + b for b in bad))
    print(f"autobahn: {total - len(bad)} passed, {len(bad)} failed")
    sys.exit(1)
if expected and total != expected:
    print(f"autobahn: {total} cases ran, {expected} expected")
    print(f"autobahn: {total} passed, {expected - total} failed")
    sys.exit(1)
print(f"autobahn: {total} passed, 0 failed")
PY
