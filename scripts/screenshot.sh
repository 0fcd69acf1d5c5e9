#!/usr/bin/env bash
# Starts the app binary under Xvfb on a generated fixture library (240 images in 12 prompt
# groups, three checkpoints) scored with the tiny test model, drives it with xdotool, and saves
# PNGs of the welcome screen, the grid, a prompt group, the checkpoint leaderboard, the viewer with
# metadata, a rerank in progress, the export dialog, and a cull review. Fails if the app crashed or a picture is blank.
#
#   BIN=target/debug/rewardlens OUT=target/screenshots scripts/screenshot.sh
#
# Needs: xvfb, xdotool, imagemagick (and a Mesa GL or Vulkan driver for wgpu).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/rewardlens}
OUT=${OUT:-target/screenshots}
mkdir -p "$OUT"
work=$(mktemp -d)
app=""
window=""
xvfb=""
cleanup() {
  [ -n "$app" ] && kill "$app" 2>/dev/null || true
  [ -n "$xvfb" ] && kill "$xvfb" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A private home for everything the app writes: config, caches, data, trash.
export XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache" XDG_DATA_HOME="$work/data"
export XDG_RUNTIME_DIR="$work/run" HOME="$work/home"
mkdir -p "$HOME"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset WAYLAND_DISPLAY
"$BIN" synth "$work/images" --count 240 --groups 12 --px 160 >/dev/null

# Xvfb picks a free display number and writes it to the file (no clash with another X server);
# -noreset keeps it from resetting when one app exits, which refused the next app its connection.
Xvfb -displayfd 3 -screen 0 1400x900x24 -nolisten tcp -noreset 3>"$work/display" >/dev/null 2>&1 &
xvfb=$!
for _ in $(seq 100); do [ -s "$work/display" ] && break; sleep 0.1; done
[ -s "$work/display" ] || { echo "screenshot.sh: Xvfb did not start" >&2; exit 1; }
export DISPLAY=":$(head -1 "$work/display")"

fail() { echo "screenshot.sh: $*" >&2; [ -f "$work/app.log" ] && tail -20 "$work/app.log" >&2; exit 1; }

start_app() {
  "$BIN" "$@" >"$work/app.log" 2>&1 &
  app=$!
  local win=""
  for _ in $(seq 300); do
    win=$(xdotool search --name '^RewardLens$' 2>/dev/null | head -1 || true)
    [ -n "$win" ] && break
    kill -0 "$app" 2>/dev/null || fail "the app exited at start"
    sleep 0.1
  done
  [ -n "$win" ] || fail "no window after 30 s"
  # Neither moved nor resized: under Xvfb with no window manager, either leaves the window
  # showing stale pixels.
  window=$win
  sleep 1.5
}

stop_app() {
  kill "$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
  app=""
}

# Saves the screen as $OUT/$1.png; fails if the app died or the picture is one flat colour.
shot() {
  kill -0 "$app" 2>/dev/null || fail "the app crashed before '$1'"
  # The pointer rests on the title, where it hovers nothing.
  xdotool mousemove 60 12
  sleep 0.3
  import -window "$window" "$OUT/$1.png"
  local spread
  spread=$(convert "$OUT/$1.png" -colorspace Gray -format '%[fx:standard_deviation]' info:)
  awk -v s="$spread" 'BEGIN { exit !(s > 0.02) }' || fail "$1.png is blank (deviation $spread)"
  echo "saved $OUT/$1.png"
}

# Keys go to the focused window; with no window manager nothing keeps the focus, so take it first.
key() { xdotool windowfocus "$window" 2>/dev/null || true; xdotool key --clearmodifiers "$@"; sleep 0.6; }

# 1. Welcome: a new library, no folder, no model.
start_app --db "$work/empty.sqlite3"
shot welcome
stop_app

# 2. The library, scored by the tiny model.
start_app --db "$work/library.sqlite3" --model tests/fixtures/tiny-st "$work/images"
for _ in $(seq 600); do
  total=$("$BIN" list --db "$work/library.sqlite3" --json 2>/dev/null | wc -l)
  unscored=$("$BIN" list --db "$work/library.sqlite3" --unscored --json 2>/dev/null | wc -l)
  [ "$total" -ge 240 ] && [ "$unscored" -eq 0 ] && break
  kill -0 "$app" 2>/dev/null || fail "the app exited while scoring"
  sleep 0.2
done
[ "$unscored" -eq 0 ] || fail "not scored within 120 s ($unscored of $total left)"
sleep 2
shot grid

# 3. The prompt group of the image at the cursor (G), best marked "top 1 of N".
key Right
key g
sleep 1
shot prompt-group
key Escape

# 4. The checkpoint leaderboard (L).
key l
sleep 1
shot leaderboard
key Escape

# 5. The viewer with the metadata beside it (Enter).
key Home
key Return
sleep 1.5
shot viewer
key Escape

# 6. A rerank by a typed prompt, caught while it runs.
key r
xdotool type --delay 5 "a lighthouse on a cliff during a storm"
xdotool key Return
sleep 0.15
shot rerank
sleep 2
shot rerank-done
key Escape

# 7. The export dialog (E), then the cull dialog (X) and its review of the worst images (Enter).
key e
sleep 0.5
shot export
key Escape
key x
sleep 0.5
shot cull
key Return
sleep 1.5
shot cull-review
stop_app
echo "screenshots in $OUT"
