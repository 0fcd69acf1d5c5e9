#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: score the parity fixtures with a CUDA build in f32/f16/bf16,
# compare each with the reference's CPU f32 rewards (same ranking, max |Δ|), then time the model.
#   scripts/gpu-check.sh BINARY OUTDIR
set -uo pipefail
bin="$1"; out="$2"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
n=$(python3 -c 'import json;print(len(json.load(open("tests/fixtures/expected/expected.json"))["prompts"]))')
for dtype in f32 f16 bf16; do
  for ((j = 0; j < n; j++)); do
    prompt=$(python3 -c "import json,sys;print(json.load(open('tests/fixtures/expected/expected.json'))['prompts'][$j]['text'])")
    "$bin" score --device cuda --dtype "$dtype" --json --batch 16 --no-store --no-cache --model tests/fixtures/tiny-st \
      --prompt "$prompt" tests/fixtures/images > "$out/score_${dtype}_$j.jsonl" 2> "$out/score_${dtype}_$j.err" \
      || { echo "score failed: $dtype prompt $j"; cat "$out/score_${dtype}_$j.err"; }
  done
done
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
e = json.load(open("tests/fixtures/expected/expected.json"))
files = [i["file"] for i in e["images"]]
for dtype in ("f32", "f16", "bf16"):
    worst, worst_nojpeg, same_rank = 0.0, 0.0, True
    for j in range(len(e["prompts"])):
        rows = [json.loads(l) for l in open(os.path.join(out, f"score_{dtype}_{j}.jsonl"))]
        got = {}
        for r in rows:
            i = next(k for k, f in enumerate(files) if r["path"].endswith(f))
            got[i] = r["score"]
        want = [row[j] for row in e["rewards"]]
        for i, g in got.items():
            d = abs(g - want[i])
            worst = max(worst, d)
            if not files[i].endswith(".jpg"):
                worst_nojpeg = max(worst_nojpeg, d)
        order_got = sorted(got, key=lambda i: -got[i])
        order_want = sorted(range(len(want)), key=lambda i: -want[i])
        same_rank &= order_got == order_want
    print(f"{dtype}: max |reward - reference CPU f32| = {worst:.2e} (non-JPEG {worst_nojpeg:.2e}); same ranking for every prompt: {same_rank}")
PY
for dtype in f32 bf16 f16; do
  "$bin" bench --device cuda --dtype "$dtype" --batch-sizes 1,8,32,128 --reps 10 2>&1 | tee "$out/bench_$dtype.txt"
done
