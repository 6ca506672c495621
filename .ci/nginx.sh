#!/usr/bin/env bash
# wschat behind nginx, over ws:// and wss://, with the nginx site of
# docs/deployment.md: the site is taken from that file (between the
# `nginx-site` markers) and only its ports, certificate paths and read
# timeout are changed, so what the docs show is what runs here.
#
#   bash .ci/nginx.sh            # installs nginx and openssl if missing
#   WSCHAT_BIN=path bash .ci/nginx.sh
#
# It makes a throwaway CA and a certificate for 127.0.0.1 and localhost,
# starts its own nginx (own config, pid file, logs and temp paths, loopback
# ports) and a fresh wschat behind it, then runs the Python `websockets`
# client (tests/interop/python_client.py) through nginx over ws:// and over
# wss:// verifying the CA: /healthz and the page, echo of text, binary and
# fragments, ping/pong, close codes, a chat between two clients with clean
# 1000 closes seen by the clients and counted by wschat, and a silent
# connection that outlives nginx's proxy_read_timeout thanks to wschat's
# pings. Then: a client without the CA is refused, /metrics is 403 from
# another address, wschat (with --trust-proxy) names the client's real
# address, and nginx logged no errors. Stops both at the end; prints
# `nginx: N passed, M failed` last.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=nginx
. tests/interop/common.sh
mkdir -p "$interop_work"

# For the run, nginx's read timeout is cut from the docs' 120 s to this,
# and wschat pings every second: a connection held silent longer than the
# timeout must survive on wschat's pings alone.
read_timeout=3
quiet_seconds=5

nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || [ ! -x /usr/sbin/nginx ] || nginx_bin=/usr/sbin/nginx
missing=()
[ -n "$nginx_bin" ] || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  # nginx-light is Debian's small build (it has TLS); newer releases only
  # have nginx.
  apt_install "${missing[@]}" || apt_install "${missing[@]/nginx-light/nginx}"
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -x "$nginx_bin" ] || die "no nginx after installing it"
python=$(interop_python)
wschat=$(wschat_binary)

run=$(mktemp -d "${TMPDIR:-/tmp}/wschat-nginx.XXXXXX")
wschat_pid=
nginx_pid=
cleanup() {
  # QUIT: nginx's graceful stop (TERM would also do).
  if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; fi
  stop_pid "$nginx_pid"
  stop_pid "$wschat_pid"
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a throwaway CA and a server certificate signed by it ------------------
tls="$run/tls"
mkdir -p "$tls"
(
  cd "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 2 -subj "/CN=wschat CI test CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr
  cat >server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 2 -extfile server.ext -out server.pem
  openssl verify -CAfile ca.pem server.pem
) >"$run/openssl.log" 2>&1 || { cat "$run/openssl.log" >&2; die "could not make the test certificates"; }

# --- wschat ---------------------------------------------------------------
wschat_port=$(free_port)
wschat_flags=(--ping-interval 1s)
# The docs run wschat with --trust-proxy 127.0.0.1; use it once wschat has it.
if "$wschat" serve --help | grep -q -- '--trust-proxy'; then
  wschat_flags+=(--trust-proxy 127.0.0.1)
  trust_proxy=1
else
  trust_proxy=
fi
if "$wschat" --help | grep -q 'check-config'; then
  WSCHAT_LISTEN="127.0.0.1:$wschat_port" "$wschat" check-config "${wschat_flags[@]}" \
    >"$run/check-config.log" 2>&1 ||
    { cat "$run/check-config.log" >&2; die "wschat check-config refused the flags"; }
fi
start_wschat "$wschat_port" "$run/wschat" "${wschat_flags[@]}"

# --- nginx, with the site from docs/deployment.md --------------------------
http_port=$(free_port)
https_port=$(free_port)
mkdir -p "$run/nginx/tmp"
"$python" - docs/deployment.md "$run/nginx/wschat-site.conf" <<EOF
import re, sys
doc = open(sys.argv[1], encoding="utf-8").read()
found = re.search(r"<!-- nginx-site: begin[^>]*-->\s*\`\`\`nginx\n(.*?)\`\`\`\s*<!-- nginx-site: end -->", doc, re.S)
if not found:
    sys.exit("docs/deployment.md: no nginx-site block between the markers")
site = found.group(1)
changes = {
    "listen 80;": "listen 127.0.0.1:$http_port;",
    "listen 443 ssl;": "listen 127.0.0.1:$https_port ssl;",
    "/etc/letsencrypt/live/chat.example.com/fullchain.pem": "$tls/server.pem",
    "/etc/letsencrypt/live/chat.example.com/privkey.pem": "$tls/server.key",
    "server 127.0.0.1:3000;": "server 127.0.0.1:$wschat_port;",
    "proxy_read_timeout 120s;": "proxy_read_timeout ${read_timeout}s;",
}
for old, new in changes.items():
    n = site.count(old)
    if n != 1:
        sys.exit(f"docs/deployment.md: the nginx site has {n} times {old!r}, .ci/nginx.sh expects 1")
    site = site.replace(old, new)
open(sys.argv[2], "w", encoding="utf-8").write(site)
EOF
user_line=
if [ "$(id -u)" -eq 0 ]; then user_line='user root;'; fi
cat >"$run/nginx/nginx.conf" <<EOF
# nginx for .ci/nginx.sh: in the foreground, everything under $run/nginx.
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
  die "nginx -t rejected the site from docs/deployment.md"
fi
"$nginx_bin" "${nginx_args[@]}" </dev/null >"$run/nginx/stdout.log" 2>&1 &
nginx_pid=$!
if ! wait_for_port "$http_port" "$nginx_pid" || ! wait_for_port "$https_port" "$nginx_pid"; then
  cat "$run/nginx/error.log" >&2 || true
  die "nginx did not start"
fi
say "$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //') on 127.0.0.1:$http_port (ws://) and :$https_port (wss://), wschat on :$wschat_port"

# --- the clients ------------------------------------------------------------
results="$run/results.txt"
: >"$results"
client() {
  local label=$1 rc=0
  shift
  timeout 300 "$python" tests/interop/python_client.py --label "$label" --http "$@" \
    </dev/null >"$run/$label.out" 2>"$run/$label.err" || rc=$?
  cat "$run/$label.out"
  cat "$run/$label.out" >>"$results"
  if ! grep -q "^$label: [0-9]* passed, [0-9]* failed$" "$run/$label.out"; then
    printf 'FAIL %s: the client ended early (exit %s)\n' "$label" "$rc" | tee -a "$results"
    tail -n 30 "$run/$label.err" | sed 's/^/  | /'
  fi
}
client ws "ws://127.0.0.1:$http_port" --quiet "$quiet_seconds" --source-address 127.0.0.2
client wss "wss://127.0.0.1:$https_port" --ca "$tls/ca.pem" --quiet "$quiet_seconds"

# A client that does not trust the test CA must be refused: proof that the
# wss:// run above really verified the certificate.
if "$python" - "$https_port" <<'EOF' >"$run/untrusted.log" 2>&1; then
import asyncio, ssl, sys
from websockets.asyncio.client import connect
async def main():
    try:
        async with connect(f"wss://127.0.0.1:{sys.argv[1]}/echo", ssl=ssl.create_default_context(),
                           proxy=None, open_timeout=10):
            pass
    except ssl.SSLCertVerificationError as e:
        print(f"refused as it should be: {e.verify_message}")
        return 0
    print("connected without trusting the CA")
    return 1
sys.exit(asyncio.run(main()))
EOF
  echo "PASS nginx: a client without the test CA is refused" | tee -a "$results"
else
  echo "FAIL nginx: a client without the test CA: $(tail -n 1 "$run/untrusted.log")" | tee -a "$results"
fi

# /metrics is for this machine only: from 127.0.0.2, nginx must say 403.
metrics_status=$("$python" - "$http_port" <<'EOF' 2>&1 || true
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10,
                                  source_address=("127.0.0.2", 0))
conn.request("GET", "/metrics")
print(conn.getresponse().status)
EOF
)
if [ "$metrics_status" = 403 ]; then
  echo "PASS nginx: /metrics from another address is refused (403)" | tee -a "$results"
else
  echo "FAIL nginx: /metrics from 127.0.0.2 answered $metrics_status, wanted 403" | tee -a "$results"
fi

# With --trust-proxy, wschat takes the client's address from nginx's
# X-Forwarded-For: the ws:// client connected from 127.0.0.2.
if [ -n "$trust_proxy" ]; then
  if grep -q '127\.0\.0\.2' "$run/wschat/wschat.log"; then
    echo "PASS nginx: wschat logs the client's address from X-Forwarded-For" | tee -a "$results"
  else
    echo "FAIL nginx: wschat's log never names the client 127.0.0.2 (--trust-proxy 127.0.0.1)" | tee -a "$results"
  fi
else
  say "skipped the X-Forwarded-For check: this wschat has no --trust-proxy"
fi

# nginx itself must have had nothing to complain about (but the 403 above).
if grep -E '\[(error|crit|alert|emerg)\]' "$run/nginx/error.log" |
   grep -v 'access forbidden by rule, client: 127\.0\.0\.2,' >"$run/nginx/errors.txt"; then
  echo "FAIL nginx: errors in nginx's log:" | tee -a "$results"
  head -n 20 "$run/nginx/errors.txt" | sed 's/^/  | /'
else
  echo "PASS nginx: no errors in nginx's error log" | tee -a "$results"
fi
for pid_name in nginx_pid wschat_pid; do
  if ! kill -0 "${!pid_name}" 2>/dev/null; then
    echo "FAIL nginx: ${pid_name%_pid} exited during the run" | tee -a "$results"
  fi
done

count_results "$results"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  say "wschat's log (last 30 lines):"
  tail -n 30 "$run/wschat/wschat.log" | sed 's/^/  | /'
  say "nginx's error log (last 30 lines):"
  tail -n 30 "$run/nginx/error.log" | sed 's/^/  | /'
fi
echo "nginx: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
