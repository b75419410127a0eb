#!/bin/sh
# Install IVADAS into the current Python environment, for one image kind.
# The Dockerfiles run exactly this, and so does tests/pipeline/test_images.py in a clean virtualenv,
# so an install step that breaks shows up as a failing test before any image is built.
#   training: steps, training and evaluation (CPU torch for the backbone export)
#   endpoint: serving only (no torch)
set -eu
kind=${1:?usage: install.sh training|endpoint}
root=$(cd "$(dirname "$0")/../.." && pwd)
pip="python -m pip"
case "$kind" in
  training)
    # CPU wheels only: the default index would pull several GB of CUDA packages.
    $pip install --no-cache-dir "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
    $pip install --no-cache-dir "$root[train]"
    ;;
  endpoint)
    $pip install --no-cache-dir "$root[serve]"
    ;;
  *)
    echo "unknown image kind: $kind (training|endpoint)" >&2
    exit 2
    ;;
esac
