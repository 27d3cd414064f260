#!/usr/bin/env python3
"""torch_side_by_side.py - advjpg's graph engine against PyTorch on the same ONNX model,
alternating rounds in one run (the machine is shared: only ratios mean something).

    bench/torch_side_by_side.py [--bench build/bench/advjpg-bench-onnx] [--rounds 3]
                                [--batch 16] [--dir DIR] [CASE...]

CASE is MODEL:PASS with PASS forward, gradient (forward + the input gradient of the
cross-entropy; PyTorch by torch.autograd.grad to the input alone) or backward (the same
gradient of ours, against PyTorch computing it as IBM ART's PyTorchClassifier.loss_gradient
does: loss.backward() with the weights requiring gradients, which computes theirs too), or load:MODEL (load time) or rss:MODEL (peak resident memory with the
model loaded and one batch-1 forward, against the .onnx file's size). MODEL
overfeat-fast or overfeat-accurate (issue 19) is OverFeat as docs/overfeat.md gives it,
written here in PyTorch (fully connected layers as nn.Linear) and run by advjpg-bench
--model overfeat-NAME (--bench-layer; random weights, the built-in model's path). Default: issue 12's
table: resnet50:forward resnet50:gradient mobilenet_v2:forward load:resnet50 rss:vgg11_bn.
Each MODEL is torchvision's with the seeded random weights of tests/torchvision_export.py,
exported to DIR/MODEL.onnx (a temporary folder by default) and run by PyTorch (float32,
torch.set_num_threads(2)) and by advjpg-bench-onnx (model_load_onnx, net_forward,
net_backward: the service's path). Every round times one batch of each, in turn, after
one warm-up batch; the table gives medians over the rounds, in ms per image, and the
ratio advjpg / PyTorch (below 1: advjpg is faster)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torchvision_export as tv  # noqa: E402

DEFAULT = ["resnet50:forward", "resnet50:gradient", "mobilenet_v2:forward", "load:resnet50",
           "rss:vgg11_bn"]


def torch_round(m, x, labels, grad):
    """Seconds of one batch through m: forward (grad None), forward + input
    gradient ("gradient": torch.autograd.grad to the input only), or the same
    the way IBM ART's PyTorchClassifier.loss_gradient computes it ("backward":
    zero_grad and loss.backward() with the weights requiring gradients, so
    their gradients are computed too)."""
    t = time.perf_counter()
    if grad:
        xg = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(m(xg), labels)
        if grad == "backward":
            m.zero_grad()
            loss.backward()
        else:
            torch.autograd.grad(loss, xg)
    else:
        with torch.no_grad():
            m(x)
    return time.perf_counter() - t


# OverFeat (docs/overfeat.md): (input size, [(out, kernel, stride, pad, pool)...], [fc...])
OVERFEAT = {
    "overfeat-fast": (231, [(96, 11, 4, 0, 2), (256, 5, 1, 0, 2), (512, 3, 1, 1, 0),
                            (1024, 3, 1, 1, 0), (1024, 3, 1, 1, 2)], [3072, 4096, 1000]),
    "overfeat-accurate": (221, [(96, 7, 2, 0, 3), (256, 7, 1, 0, 2), (512, 3, 1, 1, 0),
                                (512, 3, 1, 1, 0), (1024, 3, 1, 1, 0), (1024, 3, 1, 1, 3)],
                          [4096, 4096, 1000]),
}


def overfeat(name):
    """OverFeat NAME as a PyTorch module, seeded random weights, and its input size."""
    size, convs, fcs = OVERFEAT[name]
    torch.manual_seed(0)
    layers, c, s = [], 3, size
    for out, k, stride, pad, pool in convs:
        layers += [torch.nn.Conv2d(c, out, k, stride, pad), torch.nn.ReLU()]
        c, s = out, (s + 2 * pad - k) // stride + 1
        if pool:
            layers.append(torch.nn.MaxPool2d(pool, pool))
            s //= pool
    layers.append(torch.nn.Flatten())
    n = c * s * s
    for i, out in enumerate(fcs):
        layers.append(torch.nn.Linear(n, out))
        if i + 1 < len(fcs):
            layers.append(torch.nn.ReLU())
        n = out
    return torch.nn.Sequential(*layers).eval(), size


def ours_layer(bench, name, batch, grad):
    """advjpg-bench's ms per image on the built-in model NAME: one round of at least 1 s."""
    out = subprocess.run([bench, "--model", name, "--batch", str(batch), "--seconds", "1"],
                         check=True, capture_output=True, text=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    want = "gradient" if grad else "forward"
    return [x["ms_per_image"] for x in lines if x.get("pass") == want][-1]


def ours(bench, path, *args):
    """advjpg-bench-onnx's JSON lines."""
    out = subprocess.run([bench, path, *args], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default="build/bench/advjpg-bench-onnx")
    ap.add_argument("--bench-layer", default="build/bench/advjpg-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--dir")
    ap.add_argument("cases", nargs="*", default=DEFAULT)
    a = ap.parse_args()
    torch.set_num_threads(2)
    tmp = a.dir or tempfile.mkdtemp(prefix="advjpg-bench-")
    models, rows = {}, []

    def model(name):
        if name not in models:
            m = tv.seeded_model(name)
            path = os.path.join(tmp, name + ".onnx")
            if not os.path.exists(path):
                tv.export(m, torch.zeros(1, 3, 224, 224), path)
            models[name] = (m, path)
        return models[name]

    for case in a.cases:
        kind, name = case.split(":")
        if kind == "load":
            _, path = model(name)
            secs = [ours(a.bench, path, "--batch", "1", "--pass", "")[0]["seconds"]
                    for _ in range(a.rounds)]
            rows.append((f"{name} load time, s", statistics.median(secs), None))
            continue
        if kind == "rss":
            _, path = model(name)
            lines = ours(a.bench, path, "--batch", "1", "--rounds", "1", "--pass", "forward")
            mb = os.path.getsize(path) / 1048576
            rows.append((f"{name} peak RSS loaded (file {mb:.0f} MB), MB",
                         lines[0]["peak_rss_mb"], None))
            rows.append((f"{name} peak RSS after a batch-1 forward, MB", lines[-1]["peak_rss_mb"],
                         None))
            continue
        name, grad = kind, name if name in ("gradient", "backward") else None
        if name in OVERFEAT:
            m, size = overfeat(name)
            x = torch.randn(a.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
            run_ours = lambda: ours_layer(a.bench_layer, name, a.batch, grad)  # noqa: E731
        else:
            m, path = model(name)
            x = tv_input(a.batch)
            run_ours = lambda: ours(a.bench, path, "--batch", str(a.batch), "--rounds",  # noqa
                                    "1", "--pass", "gradient" if grad else "forward"
                                    )[-1]["ms_per_image"][0]
        labels = torch.zeros(a.batch, dtype=torch.long)
        if grad == "backward":  # (the default of a torch module's weights)
            for p in m.parameters():
                p.requires_grad_(True)
        torch_round(m, x, labels, grad)  # warm-up
        t_torch, t_ours = [], []
        for _ in range(a.rounds):
            t_torch.append(torch_round(m, x, labels, grad) * 1e3 / a.batch)
            t_ours.append(run_ours())
        mo, mt = statistics.median(t_ours), statistics.median(t_torch)
        what = {None: "forward", "gradient": "forward + input gradient",
                "backward": "forward + input gradient (PyTorch: loss.backward(), as ART)"}[grad]
        rows.append((f"{name} {what}, batch {a.batch}, ms per image", mo, mt))
        print(f"{case}: advjpg {t_ours}, PyTorch {t_torch}", file=sys.stderr, flush=True)
    print("| case | advjpg | PyTorch 1.13 | ratio |\n|---|---|---|---|")
    for what, mine, theirs in rows:
        ratio = f"{mine / theirs:.2f}x" if theirs else ""
        print(f"| {what} | {mine:.2f} | {'' if theirs is None else f'{theirs:.2f}'} | {ratio} |")


def tv_input(n):
    """n standardised random images (the timing does not depend on the values)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 224, 224, generator=g)
    return (x - torch.tensor(tv.MEAN).view(1, 3, 1, 1)) / torch.tensor(tv.STD).view(1, 3, 1, 1)


if __name__ == "__main__":
    main()
