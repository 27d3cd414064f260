#!/usr/bin/env python3
"""Exports torchvision models with seeded random weights to ONNX, with an input
batch and PyTorch's probabilities for it (test_torchvision.sh runs this).

    torchvision_export.py OUTDIR N NAME...

For each NAME (a torchvision.models constructor: resnet18, mobilenet_v3_small...,
or one of SMALL's names: vit_small, a 2-layer ViT) writes OUTDIR/NAME.onnx (opset 13, dynamic batch, BatchNormalization kept as
nodes so that advjpg folds them itself), OUTDIR/NAME.input (N x 3 x 224 x 224
float32, standardised pixels), OUTDIR/NAME.probs (N x 1000 float32 softmax
probabilities from PyTorch), OUTDIR/NAME.labels (N int32: image i's top class
for even i, its fifth for odd i) and OUTDIR/NAME.grad (N x 3 x 224 x 224
float64: the gradient of sum_i -log p(labels_i | x_i) with respect to the
input, by autograd on the model converted to double), OUTDIR/NAME.grad32 (the same
gradient by PyTorch in float32, each image in its own scale: how close float32 itself
comes to the double one, the test's baseline), and prints PyTorch's
forward and gradient times per batch. The
weights are torchvision's random initialisation under torch.manual_seed(0),
with random BatchNormalization statistics and a final layer scaled so that
the top classes are well separated.

GoogLeNet and Inception v3 (CALIBRATED) get their BatchNormalization statistics
from their own activations instead: torchvision initialises their convolutions
with a truncated normal of fixed std (0.01 and 0.1) whatever the fan-in, so under
random statistics GoogLeNet's activations shrink until its logits no longer depend
on the image (two images' logits equal to 2e-7, PyTorch's own float32 gradient
then agrees with its double one on 0.79 of the pixels) and Inception v3's grow
until its logits reach 1e13. One pass in training mode over 8 seeded random
images (cumulative averages) sets each layer's running mean and variance to those
of its input, as a trained network's are, so that every layer passes on a
normalised, image-dependent signal (GoogLeNet's logits then span about -10..13
and differ by about 4 between images)."""
import copy
import sys
import time

import numpy as np
import torch
import torchvision

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# small configurations of families whose zoo models are too big for CI
SMALL = {
    "vit_small": lambda: torchvision.models.vision_transformer.VisionTransformer(
        image_size=224, patch_size=16, num_layers=2, num_heads=2, hidden_dim=64,
        mlp_dim=128),
}


CALIBRATED = {"googlenet", "inception_v3"}


def calibrate_bn(m, n=8):
    """m's BatchNormalization running statistics from one training-mode pass over n
    seeded random standardised images (momentum None: the batch's own statistics);
    Inception v3's auxiliary head (training mode only, too small an input at 224)
    is left out of the pass. m is returned in eval mode."""
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 224, 224, generator=g)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    aux = getattr(m, "AuxLogits", None)
    if aux is not None:
        m.AuxLogits = None
    m.train()
    with torch.no_grad():
        m(x)
    if aux is not None:
        m.AuxLogits = aux
    return m.eval()


def seeded_model(name):
    """torchvision.models.NAME (or SMALL[NAME]) with random weights under
    torch.manual_seed(0), random BatchNormalization statistics (CALIBRATED: its
    activations' own, calibrate_bn) and a final layer
    scaled by 20 (drawn first where torchvision zeroes it: ViT's head), in eval mode."""
    torch.manual_seed(0)
    make = SMALL.get(name) or (lambda: getattr(torchvision.models, name)(weights=None))
    m = make().eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
        if name in CALIBRATED:
            calibrate_bn(m)
        last = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)] or \
            [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]  # squeezenet
        last = last[-1]
        if not last.weight.any():
            last.weight.normal_(0.0, 0.05)
        last.weight.mul_(20.0)
    return m


def export(m, x, path, opset=13):
    """m to ONNX at path: opset 13 (or OPSET), dynamic batch, BatchNormalization kept."""
    torch.onnx.export(m, x, path, opset_version=opset,
                      training=torch.onnx.TrainingMode.PRESERVE,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


def loss_direction(z, labels):
    """dL/dz = p - onehot(l) of double logits z [n][K], each row in its own positive scale:
    without cancellation (p_l - 1 is 0 in double once p_l rounds to 1, a confident model,
    so the label's entry is -sum_{k != l} p_k) and scaled by e^(z_k - max_{k != l} z_k) so
    that nothing underflows: the gradient's direction per image, exactly."""
    d = torch.zeros_like(z)
    for i in range(z.shape[0]):
        zo = z[i].clone()
        zo[labels[i]] = -float("inf")
        e = torch.exp(zo - zo.max())
        d[i] = e
        d[i, labels[i]] = -e.sum()
    return d


def main():
    out, n, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    torch.set_num_threads(2)
    for name in names:
        export_one(out, n, name)


def export_one(out, n, name):
    m = seeded_model(name)
    x = torch.rand(n, 3, 224, 224)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    with torch.no_grad():
        m(x)
        t = time.time()
        p = m(x).softmax(1)
        dt = time.time() - t
    export(m, x, f"{out}/{name}.onnx")
    x.numpy().astype(np.float32).tofile(f"{out}/{name}.input")
    p.numpy().astype(np.float32).tofile(f"{out}/{name}.probs")
    # the reference input gradient, in double: the model and the pixels converted
    m64 = copy.deepcopy(m).double()
    x64 = x.double().requires_grad_(True)
    t = time.time()
    z = m64(x64)
    zd = z.detach()
    order = zd.argsort(dim=1, descending=True)
    labels = torch.tensor([int(order[i, 0 if i % 2 == 0 else 4]) for i in range(n)])
    d = loss_direction(zd, labels)
    (g,) = torch.autograd.grad(z, x64, grad_outputs=d)
    dg = time.time() - t
    labels.numpy().astype(np.int32).tofile(f"{out}/{name}.labels")
    g.numpy().astype(np.float64).tofile(f"{out}/{name}.grad")
    x32 = x.clone().requires_grad_(True)  # PyTorch's own float32 gradient: the baseline
    z32 = m(x32)
    (g32,) = torch.autograd.grad(z32, x32, grad_outputs=loss_direction(z32.detach().double(),
                                                                       labels).float())
    g32.numpy().astype(np.float32).tofile(f"{out}/{name}.grad32")
    print(f"{name}: PyTorch {dt:.3f} s per batch of {n}, gradient (double) {dg:.3f} s",
          flush=True)


if __name__ == "__main__":
    main()
