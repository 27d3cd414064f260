#!/usr/bin/env bash
# test_onnx_serve.sh - advjpgd --model FILE.onnx against PyTorch (test_onnx_serve.py).
# Skipped (77) without python3-torch, python3-torchvision or python3-pil.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-/usr/bin/python3}" "$here/test_onnx_serve.py" "${ADVJPGD:?ADVJPGD: the daemon}" "$tmp"
