#!/usr/bin/env bash
# torchvision_all.sh - issue 12's every family through test_torchvision.sh, one model
# at a time (so that only one model's files are on disk), printing each model's
# lines and a last summary line per model (PASS or FAIL). CI runs a few of them
# (tests/meson.build); this is the documented command for all:
#
#   TEST_TORCHVISION=build/tests/test_torchvision tests/torchvision_all.sh [MODEL...]
#
#   TORCHVISION_BATCH  images per batch (default 2)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet18 resnet50 resnext50_32x4d wide_resnet50_2 vgg11_bn
  alexnet squeezenet1_0 densenet121 googlenet inception_v3 mobilenet_v2 mobilenet_v3_small
  mobilenet_v3_large mnasnet1_0 shufflenet_v2_x1_0 efficientnet_b0 regnet_y_400mf
  convnext_tiny vit_small)
export TORCHVISION_BATCH=${TORCHVISION_BATCH:-2}
fails=0
for m in "${models[@]}"; do
  if TORCHVISION_MODELS=$m "$here/test_torchvision.sh"; then
    echo "== $m: PASS"
  else
    echo "== $m: FAIL"
    fails=$((fails + 1))
  fi
done
echo "== ${#models[@]} models, $fails failed"
[ "$fails" -eq 0 ]
