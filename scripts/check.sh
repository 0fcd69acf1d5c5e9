#!/usr/bin/env bash
# What CI checks, runnable locally before stopping: exactly `.ci/run` (formatting, lints as errors,
# the tests), so a developer sees CI's verdict first.
set -euo pipefail
exec "$(dirname "$0")/../.ci/run"
