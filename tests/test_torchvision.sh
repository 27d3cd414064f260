#!/usr/bin/env bash
# test_torchvision.sh - advjpg's graph engine against PyTorch on torchvision
# models with seeded random weights (torchvision_export.py, test_torchvision.c):
# top-5 identical, max |p - p_torch| <= 1e-4, batch invariance; the input
# gradient's signs against PyTorch's autograd in double.
#
#   TORCHVISION_MODELS  models to check (default: resnet18)
#   TORCHVISION_BATCH   images per batch (default 4)
#   TORCHVISION_VERBOSE set: per-image gradient sign agreement, and the gradient
#                       written to DIR/NAME.ours (float32)
#   PYTHON              a python3 with torch and torchvision (default /usr/bin/python3;
#                       Debian: python3-torch python3-torchvision)
# Skipped (exit 77) when that python has no torch or torchvision (run.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import torch, torchvision' 2>/dev/null; then
  echo "SKIP: $py has no torch or torchvision (python3-torch python3-torchvision)"
  exit 77
fi
models=${TORCHVISION_MODELS:-resnet18}
n=${TORCHVISION_BATCH:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
"$py" "$here/torchvision_export.py" "$tmp" "$n" $models 2> "$tmp/export.log" || { cat "$tmp/export.log"; exit 1; }
# shellcheck disable=SC2086
"${TEST_TORCHVISION:?TEST_TORCHVISION: the test_torchvision program}" "$tmp" "$n" $models
