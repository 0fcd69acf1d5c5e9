#!/usr/bin/env bash
# Fuzzes the metadata parsers (fuzz/fuzz_targets/metadata.rs) for SECONDS (default 600).
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); not part of CI.
# Seeds: every fixture image, prefixed with the selector byte that routes it to its container parser.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
corpus=fuzz/corpus/metadata
mkdir -p "$corpus"
for f in tests/fixtures/images/* tests/fixtures/bad/*; do
  [ -f "$f" ] || continue
  case "$f" in
    *.png) sel='\x00' ;;
    *.jpg|*.jpeg) sel='\x01' ;;
    *.webp) sel='\x02' ;;
    *) continue ;;
  esac
  { printf "$sel"; head -c 65000 "$f"; } > "$corpus/seed-$(basename "$f")"
done
cargo +nightly fuzz run --sanitizer none metadata "$corpus" -- \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
