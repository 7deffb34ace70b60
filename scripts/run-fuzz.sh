#!/usr/bin/env bash
# Runs every libFuzzer target in build dir $1 for $2 seconds each, on its corpus.
set -euo pipefail
dir=$1
secs=$2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/fuzz/artifacts"
for bin in "$dir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  target=${name#fuzz_}
  corpus="$root/fuzz/corpus/$target"
  mkdir -p "$corpus"
  work=$(mktemp -d)
  dict=()
  [ -f "$root/fuzz/dict/http.dict" ] && dict=(-dict="$root/fuzz/dict/http.dict")
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="$root/fuzz/artifacts/" \
    "${dict[@]}" "$work" "$corpus" >"$work.log" 2>&1 || { tail -50 "$work.log"; exit 1; }
  rm -rf "$work" "$work.log"
done
