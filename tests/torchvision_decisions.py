#!/usr/bin/env python3
"""Where a float32 input gradient's signs part from the double reference: the ReLU
and max-pool decisions (which input is positive, which input is a window's largest)
that float32's forward takes otherwise than double's. A diagnostic of
torchvision_export.py's files, not a test:

    torchvision_decisions.py DIR NAME

DIR holds NAME.input, NAME.labels and NAME.grad (torchvision_export.py DIR N NAME).
Prints how many ReLU and max-pool decisions of
PyTorch's float32 forward differ from its double forward's (each max pool's apart,
with the double values and gaps of the windows that differ), then the test's sign
agreement (|g| >= 1e-3 of the image's largest) and the relative error of the gradient:
PyTorch float32 as it is; double arithmetic taking float32's decisions; float32
arithmetic taking double's. If the last is 1 and the second is float32's figure, the
decisions are the whole difference. Covers what goes through torch.nn.functional's
relu and max_pool2d (nn.ReLU, nn.MaxPool2d and the functional calls: Inception v3,
GoogLeNet, ResNet, VGG ...)."""
import copy
import sys

import numpy as np
import torch
import torch.nn.functional as F

import torchvision_export as te

RELU, MAX_POOL = F.relu, F.max_pool2d


class Decisions:
    """Records a forward's ReLU masks and max-pool argmax (record), or replays recorded
    ones (replay) in a forward of the same model in another precision: F.relu and
    F.max_pool2d replaced while in use (a context manager)."""

    def __init__(self):
        self.relu, self.pool, self.mode, self.at = [], [], "record", [0, 0]

    def replay(self):
        self.mode, self.at = "replay", [0, 0]
        return self

    def _relu(self, t, inplace=False):
        if self.mode == "record":
            self.relu.append(t.detach() > 0)
            return RELU(t)
        mask = self.relu[self.at[0]]
        self.at[0] += 1
        return t * mask.to(t.dtype)

    def _pool(self, t, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
              return_indices=False):
        if self.mode == "record":
            y, idx = MAX_POOL(t, kernel_size, stride, padding, dilation, ceil_mode, True)
            self.pool.append((t.detach(), idx))
            return (y, idx) if return_indices else y
        idx = self.pool[self.at[1]][1]
        self.at[1] += 1
        return t.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)

    def __enter__(self):
        F.relu, F.max_pool2d = self._relu, self._pool
        return self

    def __exit__(self, *exc):
        F.relu, F.max_pool2d = RELU, MAX_POOL


def gradient(m, x, labels):
    """The export's input gradient of m at x (its precision), as float64 [n][pixels]."""
    x = x.clone().requires_grad_(True)
    z = m(x)
    (g,) = torch.autograd.grad(z, x, grad_outputs=te.loss_direction(
        z.detach().double(), labels).to(z.dtype))
    return g.double().numpy().reshape(x.shape[0], -1)


def report(what, g, want):
    """The test's sign agreement of g with want, and g's relative error."""
    counted = agree = 0
    for gi, wi in zip(g, want):
        mask = np.abs(wi) >= 1e-3 * np.abs(wi).max()
        counted += mask.sum()
        agree += (mask & (np.sign(gi) == np.sign(wi))).sum()
    err = np.linalg.norm(g - want) / np.linalg.norm(want)
    print(f"{what:44s} sign agreement {agree / counted:.4f} of {counted} pixels, "
          f"gradient error {err:.4f} of its norm")


def main():
    d, name = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    want = np.fromfile(f"{d}/{name}.grad", np.float64)
    x = torch.from_numpy(np.fromfile(f"{d}/{name}.input", np.float32)).view(-1, 3, 224, 224)
    labels = torch.from_numpy(np.fromfile(f"{d}/{name}.labels", np.int32).astype(np.int64))
    want = want.reshape(x.shape[0], -1)
    m32 = te.seeded_model(name)
    m64 = copy.deepcopy(m32).double()
    with Decisions() as f32, torch.no_grad():
        m32(x)
    with Decisions() as f64, torch.no_grad():
        m64(x.double())
    flips = sum(int(((a > 0) != (b > 0)).sum()) for a, b in zip(f32.relu, f64.relu))
    print(f"{name}: {flips} of {sum(a.numel() for a in f64.relu)} ReLU decisions in "
          f"{len(f64.relu)} ReLUs differ in float32")
    for k, ((t32, i32), (t64, i64)) in enumerate(zip(f32.pool, f64.pool)):
        diff = i32 != i64
        flat = t64.flatten(2)
        best = flat.gather(2, i64.flatten(2)).view(i64.shape)[diff]
        gap = best - flat.gather(2, i32.flatten(2)).view(i32.shape)[diff]
        rel = float((t32.double() - t64).norm() / t64.norm())
        print(f"max pool {k} {list(t64.shape)}: {int(diff.sum())} of {i64.numel()} windows "
              f"take another input (input's relative error {rel:.1e}); double values "
              f"{np.round(best.numpy()[:6], 4).tolist()}, gaps {np.round(gap.numpy()[:6], 7).tolist()}")
    report("PyTorch float32", gradient(m32, x, labels), want)
    with f32.replay():
        report("double arithmetic, float32's decisions", gradient(m64, x.double(), labels), want)
    with f64.replay():
        report("float32 arithmetic, double's decisions", gradient(m32, x, labels), want)


if __name__ == "__main__":
    main()
