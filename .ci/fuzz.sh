#!/usr/bin/env bash
# Run every cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS seconds
# each, one after the other, on a copy of the seed corpus, and fail on any
# crash, hang or out-of-memory. See fuzz/README.md.
#
#   bash .ci/fuzz.sh                       # every target, 60 s each
#   FUZZ_SECONDS=300 bash .ci/fuzz.sh frame utf8
#
# Works on stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the
# nightly-only sanitizer flags (-Zsanitizer=address). Needs a C++ compiler
# (libfuzzer-sys builds libFuzzer). The repository's corpus is only read:
# what the fuzzer finds goes to a temporary copy; crash inputs go to
# fuzz/artifacts/<target>/ (ignored by git), where CI can pick them up.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build

work=$(mktemp -d "${TMPDIR:-/tmp}/wschat-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
marker="$work/started"
touch "$marker"

hexdump_file() {
  if command -v xxd >/dev/null; then xxd "$1"; else od -A x -t x1z -v "$1"; fi
}

summary=()
failed=0
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  if [ -d "fuzz/corpus/$target" ]; then
    cp -R "fuzz/corpus/$target/." "$corpus/"
  fi
  flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
  case "$target" in
    frame) flags+=(-dict=fuzz/dict/frame.dict) ;;
    handshake) flags+=(-dict=fuzz/dict/http.dict) ;;
  esac

  echo "=== fuzz $target for ${seconds}s"
  log="$work/$target.log"
  status=0
  cargo fuzz run "$target" "$corpus" -- "${flags[@]}" 2>&1 | tee "$log" | grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' || status=${PIPESTATUS[0]}
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ "$status" -ne 0 ]; then
    failed=1
    summary+=("$target: FAILED (exit $status) after ${runs:-?} executions")
    while IFS= read -r artifact; do
      echo "--- $target artifact: $artifact"
      hexdump_file "$artifact"
      echo "--- reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact"
    done < <(find "fuzz/artifacts/$target" -type f -newer "$marker")
  else
    summary+=("$target: ok, ${runs:-?} executions in ${seconds}s")
  fi
done

echo "=== fuzz summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
