#!/bin/sh
# Retrains the embedded default model (advjpg-shapes) from scratch, in one
# command: generates the standard procedural image set (advjpg-gen
# --standard: train, val = the held-out 2000, demo) and trains the
# architecture of config/advjpg-shapes.json (compiled into the build: the
# model's one spec) on it, writing config/advjpg-shapes.{weights,json,labels}.
# Reproducible for its seeds (the same build gives the same weights).
# Rebuild afterwards (ninja -C BUILD) if you changed the architecture.
#   tools/train-default.sh [BUILD_DIR] [DATA_DIR]
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DATA=${2:-data/shapes}
"$BUILD/tools/advjpg-gen" --standard "$DATA"
"$BUILD/tools/advjpg-train" --train "$DATA/train" --val "$DATA/val" \
  --out config/advjpg-shapes --epochs 5 --stop-after 3 --batch 32 --lr 0.025 --smoothing 0.1 --seed 1
