#!/usr/bin/env bash
# Set up a fresh machine (no GPU, no hub) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-.venv/bin/python}" -m pytest tests -p no:cacheprovider "$@"
