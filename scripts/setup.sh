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
# A regular install, as a user's: what is tested is what a wheel ships (the hook, the task folder).
"$PY" -m pip install -q ".[test]"
