#!/usr/bin/env bash
# Installs trl-lift and its test dependencies into the current Python, offline-friendly:
# torch comes first from the machine's CPU build (a bare `torch` requirement would pull a
# multi-GB CUDA build), then the package.
set -euo pipefail
cd "$(dirname "$0")/.."

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
install_sandbox_tools
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
# A regular install, as a user's: what is tested is what a wheel ships (the hook, the task folder).
"$PY" -m pip install -q ".[test]"
