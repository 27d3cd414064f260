#!/bin/sh
# Retrains the embedded default model (advjpg-shapes) from scratch: generates
# the standard procedural image set (24000 training, 2000 validation images)
# and trains on it, writing config/advjpg-shapes.{weights,json,labels}.
#   tools/train-default.sh [BUILD_DIR] [DATA_DIR]
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DATA=${2:-data/shapes}
"$BUILD/tools/advjpg-gen" --standard "$DATA"
"$BUILD/tools/advjpg-train" --train "$DATA/train" --val "$DATA/val" \
  --out config/advjpg-shapes --epochs 8 --lr 0.02 --seed 1
