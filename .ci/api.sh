#!/usr/bin/env bash
# The HTTP API's end-to-end example (docs/api-example.sh): curl against a
# started server, no browser.
#
#   bash .ci/api.sh              # builds the release binary if needed
#   WSCHAT_BIN=path bash .ci/api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v curl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
bin=${WSCHAT_BIN:-target/release/wschat}
if [ -z "${WSCHAT_BIN:-}" ]; then
  cargo build --release --quiet
fi
bash docs/api-example.sh "$bin"
