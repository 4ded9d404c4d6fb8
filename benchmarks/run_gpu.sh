#!/usr/bin/env bash
# The GPU benchmark, as one short script for a lent accelerator (about 5 minutes on an H100/H200):
#   bash benchmarks/run_gpu.sh [OUT_DIR]
# Runs the sampler modes and LIFT vs vanilla on CUDA at a size where the GPU is busy, and writes JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-benchmarks/out}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python benchmarks/bench_sampler.py --device cuda | tee "$OUT/sampler.txt"
python benchmarks/bench_lift.py --device cuda --hidden 2048 --layers 16 --heads 16 --intermediate 5504 \
  --seq-len 2048 --json "$OUT/lift.json" | tee "$OUT/lift.txt"
