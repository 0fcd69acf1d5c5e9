#!/usr/bin/env bash
# What CI checks, runnable locally before stopping: formatting, lints as errors, the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
