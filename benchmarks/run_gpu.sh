#!/usr/bin/env bash
# The GPU benchmark, one short script for a lent accelerator (one H100/H200, no network; about 6 minutes):
#   bash benchmarks/run_gpu.sh [OUT_DIR]
# 1. LLaDA-8B-architecture model (random weights) in 4-bit + LoRA r=128 + gradient checkpointing: peak GPU
#    memory at 2048 and 4096 tokens (target < 20 GB at 4096), bf16 training tokens/s vanilla vs LIFT, and the
#    sampler's tokens/s per mode at gen 256, batch 8 (benchmarks/bench_gpu.py).
# 2. Packed vs padded training tokens/s on a length-skewed data set (benchmarks/bench_packing.py).
# 3. Peak memory of the loss at 4k tokens, chunked vs full logits, in bf16 (benchmarks/bench_loss_memory.py).
# 4. LIFT vs vanilla step time at a 0.5B size (benchmarks/bench_lift.py).
# Each step writes JSON and text to OUT_DIR; a failing step does not stop the others (the exit code says).
# CPU smoke run of step 1's Python: python benchmarks/bench_gpu.py --size tiny --device cpu --no-4bit
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-benchmarks/out}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY="${PYTHON:-python}"
status=0
run() {  # run NAME SECONDS COMMAND...: one step under a time limit, its output kept
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1 || { echo "   $name failed (exit $?)" | tee -a "$OUT/summary.txt"; status=1; }
  grep -E "^(L=|sampler|model:|\||peak|time ratio|padded|same)" "$OUT/$name.txt" | tee -a "$OUT/summary.txt"
}
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; } | tee "$OUT/gpu.txt"
run qlora_8b 270 "$PY" benchmarks/bench_gpu.py --json "$OUT/qlora_8b.json"
run packing 90 "$PY" benchmarks/bench_packing.py --device cuda --hidden 1024 --layers 8 --heads 16 --max-length 4096
run loss_memory 45 "$PY" benchmarks/bench_loss_memory.py --device cuda --hidden 4096 --layers 2 --json "$OUT/loss_memory.json"
run lift 60 "$PY" benchmarks/bench_lift.py --device cuda --dtype bfloat16 --hidden 2048 --layers 16 --heads 16 \
  --intermediate 5504 --seq-len 2048 --rounds 6 --json "$OUT/lift.json"
exit $status
