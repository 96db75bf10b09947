#!/usr/bin/env bash
# Create .venv in the repository root, install neurosurrogate and its dependencies,
# and compile the NEURON mechanisms. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
# PyTorch: the local CPU build where its wheel exists (never the multi-GB CUDA build on a CPU machine)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if ! $PIP install -q "torch==2.13.0"; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      $PIP install -q torch
    else
      echo "setup: torch==2.13.0 is not available here and this machine has no GPU." >&2
      echo "setup: install a CPU build of torch (>= 2.1) into .venv from PyTorch's CPU index, then re-run." >&2
      exit 1
    fi
  fi
fi
$PIP install -q -e ".[test]"
.venv/bin/neurosurrogate build-mechanisms
