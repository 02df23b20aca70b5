#!/usr/bin/env bash
# Creates .venv and installs the project with its book and test extras.
# TORCH_SPEC picks the torch/torchvision pair; they must match (a lone torch pin breaks
# torchvision). The default pair runs on CPU and on CUDA 13 GPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
python -m pip install --quiet $TORCH_SPEC
python -m pip install --quiet -e ".[dev]"
# This venv's JupyterLab opens book/*.py as notebooks (a settings override inside .venv; the
# user's own JupyterLab settings are not touched).
python -m ihdm_core.book.lab
python - <<'PY'
import torch, torchvision
print(f"[setup] torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"cuda available: {torch.cuda.is_available()}")
PY
