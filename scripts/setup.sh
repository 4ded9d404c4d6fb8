#!/usr/bin/env bash
# Installs trl-lift and its test dependencies into the current Python, offline-friendly:
# torch comes first from the machine's CPU build (a bare `torch` requirement would pull a
# multi-GB CUDA build), then the package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
# A regular (not editable) install: it places the lm-eval start-up hook in site-packages, so the stock
# `lm_eval --model lift_dlm` command works; setuptools editable installs do not ship it.
"$PY" -m pip install -q ".[test]"
