#!/usr/bin/python3
"""test_dct_job.py - a job's DCT analysis ("dct": true) through a live advjpgd.

A small random model (64x64 input) and a folder of structured images: the job's
GET /jobs/{id}/dct is recomputed independently here, with numpy and
scipy.fft.dctn(norm="ortho"), from the transformed images of POST
/attack?images=1 for the same images (x, JPG(x), Adv_e(x) and JPG(Adv_e(x)) do
not depend on the seed): the energies of eta, kept, JPEG's change and natural
content per channel and frequency, the cross energies (the coefficients'
products), the survival and in-phase ratios and the bands agree;
Parseval holds against the squared pixel differences; the quantisation steps
are libjpeg's (from cjpeg's tables when cjpeg is installed, else annex K by
hand). Then a job killed (SIGKILL) halfway and resumed by a second daemon
gives exactly (bit for bit in the JSON) the analysis of a one-shot job, and
the error answers: 404 for a job without the analysis, 400 for an eps the job
does not have, 400 for a bad "dct" value (JSON, query, form field; an upload
with the form field dct=1 has the analysis); Figure 3's axis and Figure 4's eps
options (xmllint-valid), and their 400s naming the value.

usage: test_dct_job.py ADVJPGD  (exit 0 passed, 1 failed, 77 skipped)
"""
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import numpy as np
    import scipy.fft
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print("SKIP: needs numpy, scipy and PIL (python3-numpy, python3-scipy, python3-pil):", e)
    sys.exit(77)

ADVJPGD = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ADVJPGD", "")
if not ADVJPGD or not os.access(ADVJPGD, os.X_OK):
    print("SKIP: no advjpgd")
    sys.exit(77)

FAILS = []


def check(cond, msg):
    if not cond:
        FAILS.append(msg)
        print("FAIL:", msg)


def http(url, data=None, ctype="application/json", method=None):
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Daemon:
    def __init__(self, tmp, name, args):
        self.port_file = os.path.join(tmp, name + ".port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(os.path.join(tmp, name + ".log"), "wb")
        self.p = subprocess.Popen([ADVJPGD, "--config", os.path.join(tmp, "empty.conf"),
                                   "--listen", "127.0.0.1:0", "--port-file", self.port_file] + args,
                                  stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if os.path.exists(self.port_file) and open(self.port_file).read().strip():
                self.url = "http://127.0.0.1:" + open(self.port_file).read().strip()
                try:
                    if http(self.url + "/health")[0] == 200:
                        return
                except OSError:
                    pass
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit("advjpgd did not start: " + open(self.log.name).read())

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        self.p.wait(30)
        self.log.close()


def wait_done(url, jid, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = json.loads(http(url + "/jobs/" + jid)[1])
        if st["status"] in ("done", "failed", "canceled"):
            return st
        time.sleep(0.05)
    raise SystemExit("job %s not done after %d s" % (jid, timeout))


def xmllint(svg, what):
    if shutil.which("xmllint"):
        p = subprocess.run(["xmllint", "--noout", "-"], input=svg)
        check(p.returncode == 0, "%s is well-formed (xmllint)" % what)


def upload(url, folder, files, fields):
    """POST /evaluate as multipart/form-data: the images and text fields."""
    boundary = "advjpg-dct-boundary"
    parts = []
    for f in files:
        parts.append(('--%s\r\nContent-Disposition: form-data; name="image"; filename="%s"\r\n'
                      'Content-Type: image/png\r\n\r\n' % (boundary, f)).encode() +
                     open(os.path.join(folder, f), "rb").read() + b"\r\n")
    for k, v in fields.items():
        parts.append(('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                      % (boundary, k, v)).encode())
    body = b"".join(parts) + ("--%s--\r\n" % boundary).encode()
    return http(url + "/evaluate", body, "multipart/form-data; boundary=" + boundary)


def evaluate(url, body):
    code, out = http(url + "/evaluate", json.dumps(body).encode())
    check(code == 202, "POST /evaluate: %d %s" % (code, out[:200]))
    return json.loads(out)["id"]


# --------------------------------------------------------------- the recomputation

def to_ycc_420(d):
    """A float RGB difference [h][w][3] to the linear JFIF planes, chroma 2x2 means."""
    r, g, b = d[..., 0], d[..., 1], d[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    h2, w2 = d.shape[0] // 2, d.shape[1] // 2

    def sub(p):
        return p[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    return [y, sub(cb), sub(cr)]


def coefficients(d):
    """Per channel: [blocks][64] orthonormal DCT-II coefficients of the whole 8x8 blocks."""
    out = []
    for p in to_ycc_420(d):
        h8, w8 = p.shape[0] // 8, p.shape[1] // 8
        blocks = p[:8 * h8, :8 * w8].reshape(h8, 8, w8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
        out.append(scipy.fft.dctn(blocks, type=2, norm="ortho", axes=(1, 2)).reshape(-1, 64))
    return out


def energy(d):
    """[3][64]: the mean over the blocks of the squared coefficient."""
    return np.array([(c ** 2).mean(axis=0) for c in coefficients(d)])


def cross(d1, d2):
    """[3][64]: the mean over the blocks of the product of the two coefficients."""
    return np.array([(a * b).mean(axis=0) for a, b in zip(coefficients(d1), coefficients(d2))])


def png(b64):
    import base64
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.float64)


def recompute(url, folder, files, eps):
    """The job's means, from /attack?images=1 of each image."""
    acc = {}
    for f in files:
        code, out = http(url + "/attack?images=1&eps=" + ",".join(map(str, eps)),
                         open(os.path.join(folder, f), "rb").read(), "image/png")
        check(code == 200, "/attack %s: %d" % (f, code))
        im = {k: png(v) for k, v in json.loads(out)["images"].items()}
        x, jx = im["x"], im["JPG(x)"]
        mean = x.reshape(-1, 3).mean(axis=0)
        parts = {"natural": energy(x - mean), "natural_kept": energy(jx - mean),
                 "natural_cross": cross(x - mean, jx - mean)}
        for e in eps:
            adv, jadv = im["Adv%d(x)" % e], im["JPG(Adv%d(x))" % e]
            parts["eta%d" % e] = energy(adv - x)
            parts["kept%d" % e] = energy(jadv - jx)
            parts["cross%d" % e] = cross(adv - x, jadv - jx)
            parts["jpeg%d" % e] = energy(jadv - adv)
            # Parseval: the 64 energies of Y sum to the block's squared Y values
            yd = to_ycc_420(adv - x)[0]
            h8, w8 = yd.shape[0] // 8, yd.shape[1] // 8
            direct = (yd[:8 * h8, :8 * w8] ** 2).sum() / (h8 * w8)
            check(abs(parts["eta%d" % e][0].sum() - direct) <= 1e-9 * max(direct, 1),
                  "Parseval %s eps %d: %g vs %g" % (f, e, parts["eta%d" % e][0].sum(), direct))
        for k, v in parts.items():
            acc[k] = acc.get(k, 0) + v / len(files)
    return acc


def arr(per_channel):
    return np.array([per_channel[c] for c in ("Y", "Cb", "Cr")], dtype=np.float64)


def close(a, b, what, rtol=2e-3):
    """Per frequency, relative to each channel's total (a pixel whose FGSM sign differs
    between the job's batch and /attack's moves the energies by far less than that)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.abs(b).sum(axis=-1, keepdims=True) + 1e-9
    err = (np.abs(a - b) / scale).max()
    check(err <= rtol, "%s: max relative difference %.3g" % (what, err))


def std_steps(quality):
    luma = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
            69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55,
            64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100,
            103, 99]
    chroma = [17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + \
        [99] * 5 + [47, 66] + [99] * 6 + [99] * 32
    s = 5000 // quality if quality < 50 else 200 - 2 * quality
    f = [lambda v: min(255, max(1, (v * s + 50) // 100))]
    return [list(map(f[0], luma)), list(map(f[0], chroma))]


# --------------------------------------------------------------- the test

def make_images(folder, n):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:80, 0:88]
    files = []
    for i in range(n):
        img = np.stack([(xx * (3 + i) + yy) % 256, (yy * (5 + i)) % 256,
                        ((xx - yy) * 3 + 40 * i) % 256], axis=-1).astype(np.float64)
        img += rng.normal(0, 12, img.shape)
        name = "img%03d.png" % i
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(folder, name))
        files.append(name)
    return files


def main():
    tmp = tempfile.mkdtemp(prefix="advjpg-dct-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failures" % len(FAILS))
    return 1 if FAILS else 0


def run(tmp):
    spec = {"name": "dct64", "channels": 3, "input_size": 64, "scale_size": 72, "mean": 118.0,
            "std": 62.0, "classes": 10,
            "layers": [{"type": "conv", "out": 8, "kernel": 3, "stride": 1, "pad": 1},
                       {"type": "relu"}, {"type": "maxpool", "kernel": 2, "stride": 2},
                       {"type": "fc", "out": 10}]}
    json.dump(spec, open(os.path.join(tmp, "spec.json"), "w"))
    n_weights = 8 * 3 * 9 + 8 + 8 * 32 * 32 * 10 + 10
    np.random.default_rng(5).uniform(-0.05, 0.05, n_weights).astype("<f4").tofile(
        os.path.join(tmp, "w.bin"))
    open(os.path.join(tmp, "empty.conf"), "w").close()
    data = os.path.join(tmp, "data")
    os.makedirs(os.path.join(data, "few"))
    os.makedirs(os.path.join(data, "many"))
    files = make_images(os.path.join(data, "few"), 4)
    make_images(os.path.join(data, "many"), 80)
    args = ["--model", os.path.join(tmp, "spec.json"), "--weights", os.path.join(tmp, "w.bin"),
            "--data-root", data, "--jobs-dir", os.path.join(tmp, "jobs"), "--job-batch", "2"]
    d = Daemon(tmp, "a", args)
    url = d.url

    # 1. the analysis against numpy/scipy on /attack's images
    eps = [1, 5]
    jid = evaluate(url, {"dataset": "few", "dct": True, "eps": eps, "quality": 75})
    check(wait_done(url, jid)["status"] == "done", "job done")
    code, out = http(url + "/jobs/%s/dct" % jid)
    check(code == 200, "GET dct: %d %s" % (code, out[:200]))
    got = json.loads(out)
    check(got["n"] == 4 and got["complete"] and got["quality"] == 75, "n, complete, quality")
    want = recompute(url, os.path.join(data, "few"), files, eps)
    close(arr(got["natural"]["content"]["energy"]), want["natural"], "natural content")
    close(arr(got["natural"]["kept"]["energy"]), want["natural_kept"], "natural kept")
    nip = np.array([got["natural"]["in_phase"]["per_frequency"][c] for c in ("Y", "Cb", "Cr")],
                   dtype=float)
    close(nip * arr(got["natural"]["content"]["energy"]), want["natural_cross"], "natural cross")
    for i, e in enumerate(eps):
        g = got["eps"][i]
        check(g["eps"] == e, "eps order")
        close(arr(g["eta"]["energy"]), want["eta%d" % e], "eta eps %d" % e)
        close(arr(g["kept"]["energy"]), want["kept%d" % e], "kept eps %d" % e)
        close(arr(g["jpeg_change"]["energy"]), want["jpeg%d" % e], "JPEG change eps %d" % e)
        w_eta, w_kept = want["eta%d" % e], want["kept%d" % e]
        bands = np.add.outer(np.arange(8), np.arange(8)).reshape(64)
        for c, ch in enumerate(("Y", "Cb", "Cr")):
            tot = g["survival"]["total"][ch]
            check(abs(tot - w_kept[c].sum() / w_eta[c].sum()) <= 5e-3 * tot,
                  "survival total %s eps %d: %g vs %g" % (ch, e, tot, w_kept[c].sum() / w_eta[c].sum()))
            frac = np.array([w_eta[c][bands == b].sum() for b in range(15)]) / w_eta[c].sum()
            check(np.abs(np.array(g["eta"]["band_fraction"][ch]) - frac).max() < 2e-3,
                  "bands %s eps %d" % (ch, e))
            check(abs(sum(g["eta"]["band_fraction"][ch]) - 1) < 1e-9, "band fractions sum to 1")
            ph, wph = g["in_phase"]["total"][ch], want["cross%d" % e][c].sum() / w_eta[c].sum()
            check(abs(ph - wph) <= 5e-3 * max(abs(wph), 0.05),
                  "in phase %s eps %d: %g vs %g" % (ch, e, ph, wph))
        ip = np.array([g["in_phase"]["per_frequency"][ch] for ch in ("Y", "Cb", "Cr")], dtype=float)
        close(ip * arr(g["eta"]["energy"]), want["cross%d" % e], "cross eps %d" % e)
        ns = arr(g["noise"]["energy"])
        check(ns.min() >= 0 and ns.sum() > 0, "the control's change has energy")
    steps = std_steps(75)
    check(got["quant_steps"]["Y"] == steps[0] and got["quant_steps"]["Cb"] == steps[1] and
          got["quant_steps"]["Cr"] == steps[1], "quantisation steps at 75")

    code, svg = http(url + "/jobs/%s/dct.svg?eps=5" % jid)
    check(code == 200 and svg.startswith(b"<?xml"), "dct.svg: %d" % code)
    xmllint(svg, "dct.svg")
    code, out = http(url + "/jobs/%s/dct.svg?eps=7" % jid)
    check(code == 400 and b"no eps 7" in out and b"1, 5" in out, "eps 7: %d %s" % (code, out))
    code, out = http(url + "/jobs/%s/dct.svg?eps=x" % jid)
    check(code == 400 and b"eps" in out, "eps x: %d %s" % (code, out))

    # the figures' options: Figure 3's axis, Figure 4's eps; bad values are 400s naming them
    for q in ("axis=log1mp", "axis=logit", "axis=linear"):
        code, svg = http(url + "/jobs/%s/figure3.svg?%s" % (jid, q))
        check(code == 200 and ('data-axis="%s"' % q[5:]).encode() in svg, "figure3 %s: %d" % (q, code))
        xmllint(svg, "figure3 " + q)
    code, svg = http(url + "/jobs/%s/figure4.svg?eps=5" % jid)
    check(code == 200 and b"eps = 5" in svg, "figure4 eps 5: %d" % code)
    xmllint(svg, "figure4 eps 5")
    for path, bad in (("figure3.svg?axis=log", b"'log'"), ("figure4.svg?eps=7", b"no eps 7"),
                      ("figure4.svg?eps=256", b"'256'"), ("figure3.svg?eps=5", b"eps")):
        code, out = http(url + "/jobs/%s/%s" % (jid, path))
        check(code == 400 and bad in out, "%s: %d %s" % (path, code, out[:200]))

    # 2. errors: no analysis, a bad "dct"
    plain = evaluate(url, {"dataset": "few", "eps": [1]})
    wait_done(url, plain)
    code, out = http(url + "/jobs/%s/dct" % plain)
    check(code == 404 and b"no DCT analysis" in out, "a job without dct: %d %s" % (code, out))
    code, out = http(url + "/evaluate", json.dumps({"dataset": "few", "dct": 1}).encode())
    check(code == 400 and b"dct" in out, "dct: 1 in JSON: %d %s" % (code, out))
    code, out = http(url + "/evaluate?dct=2", json.dumps({"dataset": "few"}).encode())
    check(code == 400 and b"dct" in out, "?dct=2: %d %s" % (code, out))
    # an upload's form field
    code, out = upload(url, os.path.join(data, "few"), files[:2], {"eps": "1", "dct": "1"})
    check(code == 202, "upload with dct=1: %d %s" % (code, out[:200]))
    if code == 202:
        up = json.loads(out)["id"]
        st = wait_done(url, up)
        check(st["dct"] is True and st["status"] == "done", "the upload's job has the analysis")
        code, out = http(url + "/jobs/%s/dct" % up)
        check(code == 200 and json.loads(out)["n"] == 2, "the upload's dct: %d" % code)
    code, out = upload(url, os.path.join(data, "few"), files[:1], {"dct": "yes"})
    check(code == 400 and b"dct" in out, "dct=yes in a form: %d %s" % (code, out[:200]))

    # 3. a resumed job's analysis equals a one-shot job's, exactly
    body = {"dataset": "many", "dct": True, "eps": [1, 5, 10]}
    one = evaluate(url, body)
    wait_done(url, one)
    ref = json.loads(http(url + "/jobs/%s/dct" % one)[1])
    resumed = None
    for attempt in range(6):
        jid = evaluate(d.url, body)
        while True:
            st = json.loads(http(d.url + "/jobs/" + jid)[1])
            if st["done"] >= 2 or st["status"] == "done":
                break
            time.sleep(0.002)
        d.stop(signal.SIGKILL)
        d = Daemon(tmp, "b%d" % attempt, args)
        if st["status"] != "done" and st["done"] < st["total"]:
            resumed = jid
            break
    check(resumed is not None, "a job was killed halfway")
    if resumed:
        check(wait_done(d.url, resumed)["status"] == "done", "the resumed job ends")
        again = json.loads(http(d.url + "/jobs/%s/dct" % resumed)[1])
        for k in ("id",):
            ref.pop(k), again.pop(k)
        check(again == ref, "a resumed job's dct equals a one-shot job's")
    d.stop()


if __name__ == "__main__":
    sys.exit(main())
