#!/usr/bin/env bash
# Sets up trl-lift and its test dependencies, with a line per step and its duration.
#
#   bash scripts/setup.sh                   # creates (or reuses) the virtual environment .venv in the repository
#   PYTHON=/path/to/python bash scripts/setup.sh   # installs into that interpreter's environment instead
#
# torch comes first, pinned to the CPU build (a bare `torch` requirement would pull a multi-GB CUDA build),
# then the package itself (a regular install: what is tested is what a wheel ships, hook and tasks included).
# scripts/test.sh and scripts/quickstart.sh then run "${PYTHON:-.venv/bin/python}".
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=4
SECONDS=0
step() { echo "setup: [$1/$STEPS] $2 (${SECONDS}s so far)"; }
# pip's own lines, less the noise: one line per package collected or installed.
pip_progress() { grep --line-buffered -E '^(Collecting|Installing collected|Successfully installed|ERROR|error)' || true; }

# The code sandbox (HumanEval / MBPP grading) needs bubblewrap and libseccomp from the system. Installed
# here when missing and we may (root, or sudo without a password); never fatal: without them grading
# stops with an error that names the fix (trl_lift.evaluation.sandbox).
install_sandbox_tools() {
  local missing=()
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: sandbox tools present: $(bwrap --version), libseccomp"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "setup: WARNING: ${missing[*]} missing and not root: install them (apt-get install ${missing[*]})," \
        "or HumanEval/MBPP grading will refuse to run" >&2
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: WARNING: ${missing[*]} missing and no apt-get: install them with your system's package manager," \
      "or HumanEval/MBPP grading will refuse to run" >&2
    return 0
  fi
  echo "setup: installing ${missing[*]} (apt-get) for the code sandbox"
  if ! { $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; }; }; then
    echo "setup: WARNING: could not install ${missing[*]} (is the package archive reachable?);" \
      "HumanEval/MBPP grading will refuse to run until they are installed" >&2
    return 0
  fi
  echo "setup: installed: $(bwrap --version 2>/dev/null || echo 'bwrap missing')"
}
step 1 "tools for the code sandbox (bubblewrap, libseccomp)"
install_sandbox_tools

if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
  step 2 "using the interpreter PYTHON=$PY ($("$PY" -c 'import sys; print(sys.prefix)'))"
else
  PY=.venv/bin/python
  if [ -x "$PY" ]; then
    step 2 "reusing the virtual environment .venv"
  else
    step 2 "creating the virtual environment .venv (python3 -m venv)"
    if ! python3 -m venv .venv; then
      echo "setup: could not create .venv: install your system's venv package (Debian/Ubuntu: apt-get install" \
        "python3-venv), or name an interpreter to install into with PYTHON=/path/to/python." >&2
      exit 1
    fi
  fi
fi

if "$PY" -c "import torch" 2>/dev/null; then
  step 3 "torch present: $("$PY" -c 'import torch; print(torch.__version__)')"
else
  step 3 "installing torch==2.13.0 (the CPU build; about a minute)"
  "$PY" -m pip install --progress-bar off "torch==2.13.0" 2>&1 | pip_progress
fi
step 4 "installing trl-lift and its dependencies (.[test]; a few minutes on a fresh environment)"
"$PY" -m pip install --progress-bar off ".[test]" 2>&1 | pip_progress
"$PY" -c "import trl_lift" || { echo "setup: the install failed (see pip's errors above)" >&2; exit 1; }
echo "setup: done in ${SECONDS}s: $("$PY" -m trl_lift.cli --version)"
echo "setup: run the tests with  bash scripts/test.sh  (or: $PY -m pytest tests)"
