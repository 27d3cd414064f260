#!/usr/bin/env python3
"""test_onnx_serve.py - advjpgd --model FILE.onnx end to end against PyTorch.

    test_onnx_serve.py ADVJPGD TMPDIR

Exports torchvision's resnet18 with seeded random weights (torchvision_export.py),
starts advjpgd on it with the torchvision default preprocessing, and checks with
a random 224x224 PNG (resize=none, so that both see the same pixels):
- /models reports the ONNX format, the preprocessing, the operators and the
  file's sha256 (against hashlib);
- /classify's top-5 probabilities equal PyTorch's within 1e-4 (same classes);
- /attack (eps 1, images=1): the clean result's probabilities equal PyTorch's;
  the returned Adv1(x) image moves each pixel against the sign of PyTorch's
  input gradient (autograd in double) at >= 99.5% of the pixels where that
  gradient is not negligible (|g| >= 1e-3 max |g|) and the image is not
  clipped; and the daemon's probabilities for Adv1(x) equal PyTorch's on that
  image within 1e-4;
- a sidecar FILE.json with BGR order and a different std is read (probabilities
  equal PyTorch's on the model with that preprocessing);
- /evaluate (eps 1) on the ImageFolder layout (val/<synset>/*.JPEG) and on the
  devkit layout (ILSVRC2012_val_*.JPEG + ground-truth IDs): every row's truth is
  the class an independent mapping gives (config/ilsvrc2012-synsets.txt read here:
  ID -> synset -> index among the sorted synsets, torchvision's order), and the
  job's top-1 of x agrees with PyTorch's on those pixels; /models reports
  classes_order synset_sorted;
- with a spec whose labels are synsets (one replaced by a made-up one): /models
  reports them, a folder of a synset the labels lack and a ground-truth ID whose
  synset they lack are refused (400, named), as is an unknown synset folder;
- a user's own 10-class model (a small convolutional network) with a labels
  file of class names, "crane" twice as in ImageNet's: /evaluate on
  val/<class name>/*.jpg gives every row the truth of its folder's line in the
  labels and PyTorch's top-1 of x; a folder of no class and a folder "crane"
  are refused (400, naming the folder).
Exit 77 (skip) without torch/torchvision/PIL."""
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

try:
    import numpy as np
    import torch
    from PIL import Image
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torchvision_export as tv
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

daemon, tmp = sys.argv[1], sys.argv[2]
failures = 0


def check(cond, msg):
    global failures
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    failures += not cond


def start(model, *extra):
    port_file = os.path.join(tmp, "port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    log = open(os.path.join(tmp, "daemon.log"), "ab")
    p = subprocess.Popen([daemon, "--model", model, "--listen", "127.0.0.1:0", "--port-file",
                          port_file, "--jobs-dir", os.path.join(tmp, "jobs"), *extra],
                         stdout=log, stderr=log)
    for _ in range(600):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        if p.poll() is not None:
            break
        time.sleep(0.1)
    url = f"http://127.0.0.1:{open(port_file).read().strip()}"
    for _ in range(600):  # the model loads in the background
        try:
            with urllib.request.urlopen(url + "/models") as r:
                return p, url, json.load(r)
        except Exception:
            if p.poll() is not None:
                raise RuntimeError("advjpgd exited: " + open(os.path.join(tmp, "daemon.log")).read())
            time.sleep(0.1)
    raise RuntimeError("advjpgd did not load the model")


def post(url, path, body):
    req = urllib.request.Request(url + path, data=body, headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def png(a):
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="PNG")
    return b.getvalue()


def probs_of(m, a, mean, std, bgr=False):
    """PyTorch's probabilities for an HxWx3 uint8 RGB image with that preprocessing."""
    x = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None] / 255.0
    if bgr:
        x = x[:, [2, 1, 0]]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return m(x).softmax(1)[0].numpy()


def grad_of(m, a, label):
    """d(-log p_label)/d pixel (0..255 scale) in double."""
    m64 = m.double()
    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None].requires_grad_(True)
    z = m64(((x / 255.0) - torch.tensor(tv.MEAN, dtype=torch.float64).view(1, 3, 1, 1))
            / torch.tensor(tv.STD, dtype=torch.float64).view(1, 3, 1, 1))
    loss = torch.nn.functional.cross_entropy(z, torch.tensor([label]))
    (g,) = torch.autograd.grad(loss, x)
    m.float()
    return g[0].permute(1, 2, 0).numpy()


def close(result, want, what):
    top = result["top"]
    worst = max(abs(t["prob"] - float(want[t["index"]])) for t in top)
    same = [t["index"] for t in top] == list(np.argsort(-want, kind="stable")[:len(top)])
    check(same and worst <= 1e-4, f"{what}: top-{len(top)} as PyTorch's, max |p - p_torch| "
          f"{worst:.2g}")


torch.set_num_threads(2)
m = tv.seeded_model("resnet18")
onnx = os.path.join(tmp, "resnet18.onnx")
tv.export(m, torch.zeros(1, 3, 224, 224), onnx)
rng = np.random.default_rng(1)
img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
body = png(img)
want = probs_of(m, img, tv.MEAN, tv.STD)

# ---- /evaluate: the ImageFolder and devkit layouts, mapped to torchvision's order
here = os.path.dirname(os.path.abspath(__file__))
table = [line.split() for line in open(os.path.join(here, "..", "config", "ilsvrc2012-synsets.txt"))]
syn_of_id = {int(t[1]): t[0] for t in table}
sorted_syn = sorted(syn_of_id.values())
tv_index = {syn: i for i, syn in enumerate(sorted_syn)}
data = os.path.join(tmp, "data")
ids = [1, 65, 1000]            # a few ILSVRC2012_IDs; their synsets name the folders
files, truth = [], {}
for k, cid in enumerate(ids):
    syn = syn_of_id[cid]
    os.makedirs(os.path.join(data, "val", syn), exist_ok=True)
    a = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    name = f"ILSVRC2012_val_{k + 1:08d}.JPEG"
    Image.fromarray(a).save(os.path.join(data, "val", syn, name), quality=95)
    truth[f"{syn}/{name}"] = tv_index[syn]
os.makedirs(os.path.join(data, "devkit"))
gt_ids = [65, 1000, 2]
for k, cid in enumerate(gt_ids):
    a = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(a).save(os.path.join(data, "devkit", f"ILSVRC2012_val_{k + 1:08d}.JPEG"),
                            quality=95)
with open(os.path.join(data, "gt.txt"), "w") as f:
    f.write("".join(f"{i}\n" for i in gt_ids))
devkit_truth = {f"ILSVRC2012_val_{k + 1:08d}.JPEG": tv_index[syn_of_id[i]]
                for k, i in enumerate(gt_ids)}
os.makedirs(os.path.join(data, "unknown", "n99999999"))
Image.fromarray(img).save(os.path.join(data, "unknown", "n99999999", "a.JPEG"))


def evaluate(url, body):
    """POST /evaluate; (status, answer)."""
    req = urllib.request.Request(url + "/evaluate", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def job_rows(url, jid):
    """Waits for the job; its rows as dicts."""
    for _ in range(3000):
        with urllib.request.urlopen(f"{url}/jobs/{jid}") as r:
            st = json.load(r)
        if st["status"] in ("done", "failed", "canceled"):
            break
        time.sleep(0.1)
    check(st["status"] == "done", f"job {jid}: {st['status']} {st.get('error', '')}")
    import csv
    with urllib.request.urlopen(f"{url}/jobs/{jid}/rows") as r:
        return list(csv.DictReader(io.StringIO(r.read().decode())))


def x_label(path, model=None):
    """PyTorch's top-1 on a file as the daemon prepares it (256 then the centre 224)."""
    im = Image.open(path).convert("RGB").resize((256, 256), Image.BILINEAR)
    return int(np.argmax(probs_of(model or m, np.array(im)[16:240, 16:240], tv.MEAN, tv.STD)))



p, url, models = start(onnx, "--max-batch", "4", "--data-root", data)
try:
    info = models["models"][0] if "models" in models else models
    o = info.get("onnx", {})
    check(o.get("format") == "onnx" and o.get("preprocessing", {}).get("channel_order") == "RGB"
          and o.get("operators", {}).get("Conv") == 20 and info.get("classes") == 1000,
          "/models reports the ONNX format, preprocessing and operators")
    import hashlib
    sha = hashlib.sha256(open(onnx, "rb").read()).hexdigest()
    check(o.get("sha256") == sha, f"/models: sha256 {o.get('sha256')} is the file's ({sha})")
    r = post(url, "/classify?top_k=5&resize=none", body)
    close(r, want, "/classify")
    a = post(url, "/attack?eps=1&top_k=5&resize=none&images=1", body)
    res = {x["transform"]: x for x in a["results"]}
    close(res["x"], want, "/attack x")
    import base64
    adv = np.array(Image.open(io.BytesIO(base64.b64decode(a["images"]["Adv1(x)"]))).convert("RGB"))
    g = grad_of(m, img, a["label"])
    moved = adv.astype(int) - img.astype(int)
    big = np.abs(g) >= 1e-3 * np.abs(g).max()
    free = (img > 0) & (img < 255)
    sel = big & free
    agree = float(np.mean(np.sign(moved[sel]) == np.sign(g[sel])))
    check(agree >= 0.995, f"/attack Adv1(x) follows sign(grad) of PyTorch (double) at {agree:.4f} "
          f"of {int(sel.sum())} pixels")
    close(res["Adv1(x)"], probs_of(m, adv, tv.MEAN, tv.STD), "/attack Adv1(x)")
    info = models["models"][0] if "models" in models else models
    pre = info.get("onnx", {}).get("preprocessing", {})
    check(pre.get("classes_order") == "synset_sorted" and pre.get("labels") is None,
          f"/models: classes_order {pre.get('classes_order')}, labels {pre.get('labels')}")
    for what, request, want, folder in (
            ("ImageFolder", {"dataset": "val", "eps": [1]}, truth, "val"),
            ("devkit", {"dataset": "devkit", "ground_truth": "gt.txt", "eps": [1]}, devkit_truth,
             "devkit")):
        code, ans = evaluate(url, request)
        check(code == 202, f"/evaluate {what}: {code} {ans}")
        rows = job_rows(url, ans.get("id")) if code == 202 else []
        got = {r["file"]: int(r["truth"]) for r in rows}
        check(got == want, f"/evaluate {what}: truth {got} is the Python mapping's {want}")
        agree = sum(int(r["label_x"]) == x_label(os.path.join(data, folder, r["file"]))
                    for r in rows)
        check(rows and agree == len(rows), f"/evaluate {what}: top-1 of x as PyTorch's for "
              f"{agree} of {len(rows)} images")
    code, ans = evaluate(url, {"dataset": "unknown", "eps": [1]})
    check(code == 400 and "n99999999" in ans.get("error", ""),
          f"/evaluate: an unknown synset folder is refused: {code} {ans.get('error')}")
    code, ans = evaluate(url, {"dataset": "val", "ground_truth": "gt.txt", "eps": [1]})
    check(code == 400, f"/evaluate: class folders with a ground_truth file: {code} "
          f"{ans.get('error')}")
finally:
    p.terminate()
    p.wait()

# a sidecar spec: BGR, other std
side = dict(channel_order="BGR", std=[0.25, 0.25, 0.25], mean=0.5)
with open(os.path.join(tmp, "resnet18.json"), "w") as f:
    json.dump(side, f)
p, url, models = start(onnx)
try:
    r = post(url, "/classify?top_k=5&resize=none", body)
    close(r, probs_of(m, img, (0.5,) * 3, (0.25,) * 3, bgr=True), "/classify with a sidecar (BGR)")
finally:
    p.terminate()
    p.wait()
os.unlink(os.path.join(tmp, "resnet18.json"))

# labels of synsets (the model's order), one replaced: that synset is no class of the model
gone = syn_of_id[65]
with open(os.path.join(tmp, "synsets.txt"), "w") as f:
    f.write("".join(("n00000001" if s == gone else s) + "\n" for s in sorted_syn))
with open(os.path.join(tmp, "resnet18.json"), "w") as f:
    json.dump({"labels": "synsets.txt"}, f)
p, url, models = start(onnx, "--data-root", data)
try:
    info = models["models"][0] if "models" in models else models
    pre = info.get("onnx", {}).get("preprocessing", {})
    check(pre.get("classes_order") == "labels" and pre.get("labels", "").endswith("synsets.txt"),
          f"/models with labels of synsets: classes_order {pre.get('classes_order')}, labels "
          f"{pre.get('labels')}")
    code, ans = evaluate(url, {"dataset": "val", "eps": [1]})
    check(code == 400 and gone in ans.get("error", ""),
          f"/evaluate: a folder of a synset not in the labels is refused: {code} {ans.get('error')}")
    code, ans = evaluate(url, {"dataset": "devkit", "ground_truth": "gt.txt", "eps": [1]})
    check(code == 400 and "65" in ans.get("error", ""),
          f"/evaluate: a ground-truth ID whose synset the labels lack is refused: {code} "
          f"{ans.get('error')}")
finally:
    p.terminate()
    p.wait()
# a user's own 10-class model, its labels class names ("crane" twice, as in ImageNet's)
torch.manual_seed(3)
own = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(),
                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                          torch.nn.Linear(8, 10)).eval()
own_onnx = os.path.join(tmp, "own.onnx")
tv.export(own, torch.zeros(1, 3, 224, 224), own_onnx)
names = ["airplane", "automobile", "crane", "cat", "deer", "dog", "frog", "crane", "ship",
         "tabby cat"]
with open(os.path.join(tmp, "names.txt"), "w") as f:
    f.write("".join(n + "\n" for n in names))
with open(os.path.join(tmp, "own.json"), "w") as f:
    json.dump({"labels": "names.txt"}, f)
own_truth = {}
for k, cls in enumerate(["cat", "ship", "tabby cat", "airplane", "cat"]):
    os.makedirs(os.path.join(data, "named", cls), exist_ok=True)
    a = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(a).save(os.path.join(data, "named", cls, f"{k}.jpg"), quality=95)
    own_truth[f"{cls}/{k}.jpg"] = names.index(cls)
for bad in ("crane", "zebra"):
    os.makedirs(os.path.join(data, "named_" + bad, bad))
    Image.fromarray(img).save(os.path.join(data, "named_" + bad, bad, "a.jpg"))
    os.makedirs(os.path.join(data, "named_" + bad, "cat"))
    Image.fromarray(img).save(os.path.join(data, "named_" + bad, "cat", "a.jpg"))
p, url, models = start(own_onnx, "--data-root", data)
try:
    code, ans = evaluate(url, {"dataset": "named", "eps": [1]})
    check(code == 202, f"/evaluate with class-name folders: {code} {ans}")
    rows = job_rows(url, ans.get("id")) if code == 202 else []
    got = {r["file"]: int(r["truth"]) for r in rows}
    check(got == own_truth, f"/evaluate class-name folders: truth {got} is the labels' lines "
          f"{own_truth}")
    agree = sum(int(r["label_x"]) == x_label(os.path.join(data, "named", r["file"]), own)
                for r in rows)
    check(rows and agree == len(rows), f"/evaluate class-name folders: top-1 of x as PyTorch's "
          f"for {agree} of {len(rows)} images")
    for bad, word in (("crane", "two classes"), ("zebra", "not a class")):
        code, ans = evaluate(url, {"dataset": "named_" + bad, "eps": [1]})
        err = ans.get("error", "")
        check(code == 400 and f"'{bad}'" in err and word in err,
              f"/evaluate: a folder '{bad}' is refused: {code} {err}")
finally:
    p.terminate()
    p.wait()
print(f"{failures} failed")
sys.exit(1 if failures else 0)
