"""The quality grid, intervals, paired tests, a job's images and provenance (test_grid.sh).

argv: URL IMAGES_DIR WEIGHTS. The daemon's --data-root holds IMAGES_DIR as "set" (PNG
images and labels.txt). Independent references: SciPy (binomtest, wilcoxon), a bootstrap
re-implemented here (xoshiro256** as common/rng.c, numpy's linear quantiles), hashlib,
xmllint, and single-quality jobs for the grid.
"""
import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

import numpy as np
from scipy import stats

URL, IMAGES, WEIGHTS = sys.argv[1:4]
del sys.argv[1:4]
QS = [50, 75, 90]
EPS = [1, 5]


def call(method, path, body=None, ctype=None):
    """(status, bytes) of a request."""
    req = urllib.request.Request(URL + path, data=body, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(path):
    st, b = call("GET", path)
    assert st == 200, (path, st, b[:300])
    return json.loads(b)


def evaluate(body):
    st, b = call("POST", "/evaluate", json.dumps(body).encode(), "application/json")
    assert st == 202, (st, b)
    jid = json.loads(b)["id"]
    for _ in range(1200):
        s = get_json("/jobs/" + jid)
        if s["status"] in ("done", "failed", "canceled"):
            assert s["status"] == "done", s
            return jid
        time.sleep(0.1)
    raise AssertionError("job %s did not end" % jid)


def upload(files, fields):
    """A multipart/form-data body of image files and text fields."""
    bnd = "grid-boundary-7d3f"
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                   % (bnd, k, v)).encode())
    for path in files:
        out.write(("--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"%s\"\r\n"
                   "Content-Type: image/png\r\n\r\n" % (bnd, os.path.basename(path))).encode())
        with open(path, "rb") as f:
            out.write(f.read() + b"\r\n")
    out.write(("--%s--\r\n" % bnd).encode())
    return out.getvalue(), "multipart/form-data; boundary=" + bnd


def rows_of(jid):
    st, b = call("GET", "/jobs/%s/rows" % jid)
    assert st == 200
    r = list(csv.reader(io.StringIO(b.decode())))
    return r[0], r[1:]


def single_to_grid(name, q):
    """A single-quality job's transform name as the grid spells it."""
    return name.replace("JPGnoise(", "JPGnoise%d(" % q).replace("JPG(", "JPG%d(" % q)


def f32(s):
    return float(np.float32(float(s)))


# ---- the bootstrap, independently: xoshiro256** seeded by splitmix64 (common/rng.c)
M64 = (1 << 64) - 1


def rng_stream(seed):
    s = []
    for _ in range(4):
        seed = (seed + 0x9E3779B97F4A7C15) & M64
        z = seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        s.append(z ^ (z >> 31))

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    while True:
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        yield result


def bootstrap_indices(n, seed, resamples=2000):
    g = rng_stream(seed)
    thr = ((1 << 64) - n) % n
    idx = np.empty((resamples, n), dtype=np.int64)
    for b in range(resamples):
        for i in range(n):
            while True:
                x = next(g)
                if x >= thr:
                    idx[b, i] = x % n
                    break
    return idx


def ci(values, idx):
    means = np.sort(np.asarray(values)[idx].mean(axis=1))
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def check_tests(tc, jid, tests):
    """A job's paired tests against its rows: the counts, SciPy's binomtest and wilcoxon."""
    h, rows = rows_of(jid)
    col = {k: i for i, k in enumerate(h)}
    self = tc  # the checks as the Grid test wrote them
    for t in tests:
        a = np.array([f32(r[col[t["a"] + ":prob"]]) for r in rows])
        b = np.array([f32(r[col[t["b"] + ":prob"]]) for r in rows])
        ra = np.array([r[col[t["a"] + ":label"]] == r[1] for r in rows])
        rb = np.array([r[col[t["b"] + ":label"]] == r[1] for r in rows])
        rw, wr = int((ra & ~rb).sum()), int((~ra & rb).sum())
        self.assertEqual((t["right_to_wrong"], t["wrong_to_right"]), (rw, wr), t)
        p = 1.0 if rw + wr == 0 else stats.binomtest(rw, rw + wr, 0.5).pvalue
        self.assertAlmostEqual(t["mcnemar_p"], p, places=12, msg=str(t))
        if np.any(a != b):
            w = stats.wilcoxon(b, a, zero_method="wilcox", correction=False, method="approx")
            self.assertAlmostEqual(t["wilcoxon"]["p"], w.pvalue, places=9, msg=str(t))
            self.assertAlmostEqual(t["wilcoxon"]["w"], w.statistic, places=6, msg=str(t))
        else:
            self.assertEqual(t["wilcoxon"]["p"], 1.0)


class Grid(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.grid = evaluate({"dataset": "set", "eps": EPS, "quality": QS, "seed": 3})
        cls.single = {q: evaluate({"dataset": "set", "eps": EPS, "quality": q, "seed": 3})
                      for q in QS}
        cls.result = get_json("/jobs/%s/result" % cls.grid)

    def test_union_of_single_quality_jobs(self):
        gh, grows = rows_of(self.grid)
        want = ["file", "truth", "label_x", "x:prob", "x:label"]
        for q in QS:
            want += ["JPG%d(x):prob" % q, "JPG%d(x):label" % q]
        for e in EPS:
            want += ["Adv%d(x):prob" % e, "Adv%d(x):label" % e]
            for q in QS:
                for t in ("JPG%d(Adv%d(x))", "JPGnoise%d(Adv%d(x))"):
                    want += [t % (q, e) + ":prob", t % (q, e) + ":label"]
        for e in EPS:  # the perturbation's size per eps (the attack menu's columns)
            want += ["Adv%d(x):%s" % (e, k) for k in ("linf", "l2", "psnr")]
        self.assertEqual(gh, want, "the grid's header follows the transform list")
        gcol = {h: i for i, h in enumerate(gh)}
        for q in QS:
            sh, srows = rows_of(self.single[q])
            self.assertIn("JPG(Adv5(x)):prob", sh, "one quality keeps the paper's names")
            self.assertEqual(len(srows), len(grows))
            for sr, gr in zip(srows, grows):
                for k, h in enumerate(sh):
                    self.assertEqual(sr[k], gr[gcol[single_to_grid(h, q)]],
                                     "%s, %s of quality %d: the grid's value" % (sr[0], h, q))
            st = get_json("/jobs/%s/result" % self.single[q])["table"]
            gt = {r["transform"]: r for r in self.result["table"]}
            for row in st:
                g = gt[single_to_grid(row["transform"], q)]
                for k in ("top1", "mean_top_label_prob", "box", "top1_ci", "mean_top_label_prob_ci",
                          "kind", "eps"):
                    self.assertEqual(row.get(k), g.get(k), (row["transform"], k))

    def test_table_describes_transforms(self):
        t = self.result["table"]
        self.assertEqual(len(t), 1 + 3 + 2 * (1 + 2 * 3))
        self.assertEqual(self.result["quality"], QS)
        by = {r["transform"]: r for r in t}
        self.assertEqual((by["x"]["kind"], "eps" in by["x"], "quality" in by["x"]), ("x", False, False))
        self.assertEqual((by["JPG90(x)"]["kind"], by["JPG90(x)"]["quality"]), ("jpg", 90))
        self.assertEqual((by["Adv5(x)"]["kind"], by["Adv5(x)"]["eps"], "quality" in by["Adv5(x)"]),
                         ("adv", 5, False))
        r = by["JPGnoise50(Adv1(x))"]
        self.assertEqual((r["kind"], r["eps"], r["quality"]), ("noise_adv", 1, 50))
        self.assertEqual(by["JPG75(Adv1(x))"]["kind"], "jpg_adv")

    def test_intervals_are_the_seeded_bootstrap(self):
        h, rows = rows_of(self.grid)
        idx = bootstrap_indices(len(rows), 3)
        col = {k: i for i, k in enumerate(h)}
        for row in self.result["table"]:
            name = row["transform"]
            p = [f32(r[col[name + ":prob"]]) for r in rows]
            right = [float(r[col[name + ":label"]] == r[1]) for r in rows]
            for got, want in ((row["mean_top_label_prob_ci"], ci(p, idx)),
                              (row["top1_ci"], ci(right, idx))):
                self.assertAlmostEqual(got[0], want[0], places=9, msg=name)
                self.assertAlmostEqual(got[1], want[1], places=9, msg=name)
            self.assertLessEqual(row["top1_ci"][0], row["top1"])
            self.assertLessEqual(row["top1"], row["top1_ci"][1])

    def test_paired_tests_agree_with_scipy(self):
        tests = self.result["tests"]
        self.assertEqual(len(tests), 3 + 2 * 3 * 2, "x/JPG per quality, two pairs per eps and quality")
        kinds = {(t["pair"], t.get("eps"), t["quality"]) for t in tests}
        self.assertIn(("jpg_noise", 5, 90), kinds)
        self.assertIn(("x_jpg", None, 50), kinds)
        check_tests(self, self.grid, tests)

    def test_provenance(self):
        p = self.result["provenance"]
        self.assertEqual(p["model"], "tiny")
        with open(WEIGHTS, "rb") as f:
            self.assertEqual(p["weights_sha256"], hashlib.sha256(f.read()).hexdigest())
        self.assertTrue(p["advjpg_version"])
        prm = p["parameters"]
        self.assertEqual((prm["eps"], prm["quality"], prm["seed"], prm["dataset"]), (EPS, QS, 3, "set"))
        with open(os.path.join(IMAGES, "im00.png"), "rb") as f:
            st, b = call("POST", "/attack?eps=2&quality=60,80", f.read(), "image/png")
        self.assertEqual(st, 200, b)
        a = json.loads(b)
        self.assertEqual(a["provenance"]["weights_sha256"], p["weights_sha256"])
        self.assertEqual(a["provenance"]["parameters"]["quality"], [60, 80])
        self.assertEqual(a["provenance"]["parameters"]["top_k"], 5, "defaults filled in")
        self.assertEqual([r["transform"] for r in a["results"]],
                         ["x", "JPG60(x)", "JPG80(x)", "Adv2(x)", "JPG60(Adv2(x))",
                          "JPGnoise60(Adv2(x))", "JPG80(Adv2(x))", "JPGnoise80(Adv2(x))"])

    def test_python_client_takes_a_grid(self):
        try:
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client", "python"))
            import advjpg
        except ImportError as e:  # requests missing
            self.skipTest(str(e))
        c = advjpg.Client(URL)
        self.addCleanup(c.close)
        a = c.attack(os.path.join(IMAGES, "im06.png"), eps=(3,), quality=(40, 70))
        self.assertEqual(a["quality"], [40, 70])
        self.assertEqual([r["transform"] for r in a["results"]][:3], ["x", "JPG40(x)", "JPG70(x)"])
        jid = c.evaluate(dataset="set", eps=(3,), quality=(40, 70), limit=2)
        self.assertEqual(get_json("/jobs/" + jid)["quality"], [40, 70])

    def test_refusals(self):
        with open(os.path.join(IMAGES, "im01.png"), "rb") as f:
            png = f.read()
        for q in ("75,75", ",".join(str(q) for q in range(50, 67)), "0,50"):
            st, b = call("POST", "/attack?quality=" + q, png, "image/png")
            self.assertEqual(st, 400, (q, b))
            self.assertIn("quality", json.loads(b)["error"])
        st, b = call("POST", "/recompress?quality=50,75", png, "image/png")
        self.assertEqual(st, 400, b)
        st, b = call("POST", "/evaluate", json.dumps({"dataset": "set", "quality": [50, 50]}).encode(),
                     "application/json")
        self.assertEqual((st, "twice" in json.loads(b)["error"]), (400, True), b)

    def test_images_of_a_job_equal_its_row(self):
        h, rows = rows_of(self.grid)
        col = {k: i for i, k in enumerate(h)}
        row = rows[4]
        a = get_json("/jobs/%s/images/%s" % (self.grid, row[0]))
        self.assertTrue(a["same_as_row"])
        self.assertEqual(sorted(a["images"]), sorted(r["transform"] for r in a["results"]))
        for r in a["results"]:
            self.assertEqual(f32(r["top_label_prob"]), f32(row[col[r["transform"] + ":prob"]]), r["transform"])
            self.assertEqual(str(r["label"]), row[col[r["transform"] + ":label"]])
        st, _ = call("GET", "/jobs/%s/images/none.png" % self.grid)
        self.assertEqual(st, 404)

    def test_images_of_an_upload_equal_attack(self):
        files = [os.path.join(IMAGES, n) for n in ("im02.png", "im03.png")]
        body, ct = upload(files, {"eps": "1,5", "quality": "75,50", "seed": "9"})
        st, b = call("POST", "/evaluate", body, ct)
        self.assertEqual(st, 202, b)
        jid = json.loads(b)["id"]
        while get_json("/jobs/" + jid)["status"] not in ("done", "failed"):
            time.sleep(0.1)
        j = get_json("/jobs/%s/images/im03.png" % jid)
        self.assertTrue(j["same_as_row"])
        with open(files[1], "rb") as f:
            st, b = call("POST", "/attack?images=1&eps=1,5&quality=75,50&seed=%s" % j["seed"],
                         f.read(), "image/png")
        self.assertEqual(st, 200, b)
        a = json.loads(b)
        self.assertEqual(a["images"], j["images"], "the job's images are /attack's with the image's seed")
        self.assertEqual(a["results"], j["results"])
        for name, png in j["images"].items():
            self.assertTrue(base64.b64decode(png).startswith(b"\x89PNG"), name)

    def compare(self, a, b):
        p = subprocess.run([os.environ["ADVJPG"], "--server", URL, "compare", a, b],
                           capture_output=True, text=True, env=dict(os.environ, ADVJPG_TOKEN=""))
        return p.returncode, p.stdout, p.stderr

    def test_compare(self):
        rc, out, err = self.compare(self.grid, self.single[75])
        self.assertEqual(rc, 0, err)
        self.assertIn("paired tests on the 14 images", out)
        lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.strip()}
        self.assertIn("JPG75(Adv5(x)) = JPG(Adv5(x))", out, "rows matched by kind, eps and quality")
        row = lines["JPG75(Adv5(x))"]  # the same values on both sides: nothing changes
        self.assertEqual(row[1:4], ["0", "0", "1"], out)
        # two different settings: the counts against the rows, McNemar against SciPy
        rc, out, err = self.compare(self.single[50], self.single[90])
        self.assertEqual(rc, 0, err)
        ha, ra = rows_of(self.single[50])
        hb, rb = rows_of(self.single[90])
        pa, pb = ha.index("JPG(Adv1(x)):label"), hb.index("JPG(Adv1(x)):label")
        by_b = {r[0]: r for r in rb}
        rw = sum(r[pa] == r[1] and by_b[r[0]][pb] != r[1] for r in ra)
        wr = sum(r[pa] != r[1] and by_b[r[0]][pb] == r[1] for r in ra)
        got = [ln.split() for ln in out.split("paired tests")[1].splitlines()
               if ln.startswith("JPG(Adv1(x)) ")][0]
        self.assertEqual((int(got[1]), int(got[2])), (rw, wr), out)
        p = 1.0 if rw + wr == 0 else stats.binomtest(rw, rw + wr, 0.5).pvalue
        self.assertAlmostEqual(float(got[3]), p, places=3)
        # different images: the tables, and the paired part refused
        body, ct = upload([os.path.join(IMAGES, "im05.png")], {"eps": "1,5"})
        st, b = call("POST", "/evaluate", body, ct)
        jid = json.loads(b)["id"]
        while get_json("/jobs/" + jid)["status"] not in ("done", "failed"):
            time.sleep(0.1)
        rc, out, err = self.compare(self.single[75], jid)
        self.assertEqual(rc, 1, out)
        self.assertIn("different images", err)
        self.assertIn("top-1 A", out)

    def test_quality_figure(self):
        st, svg = call("GET", "/jobs/%s/quality.svg" % self.grid)
        self.assertEqual(st, 200, svg[:200])
        x = subprocess.run(["xmllint", "--noout", "-"], input=svg, capture_output=True)
        self.assertEqual(x.returncode, 0, x.stderr.decode())
        text = svg.decode()
        for e in EPS:
            for lbl in ("Adv%d(x)" % e, "JPG(Adv%d(x))" % e, "JPGnoise(Adv%d(x))" % e):
                self.assertIn(lbl, text)
        self.assertEqual(text.count('class="curve"'), 2 * (1 + 2 * len(EPS)), "top-1 and mean, per line")
        for fig in ("figure3.svg", "figure4.svg"):
            st, svg = call("GET", "/jobs/%s/%s" % (self.grid, fig))
            self.assertEqual(st, 200)
            x = subprocess.run(["xmllint", "--noout", "-"], input=svg, capture_output=True)
            self.assertEqual(x.returncode, 0, fig + x.stderr.decode())


def twin_name(name, label):
    """A non-adaptive job's transform name as an adaptive job's twin spells it."""
    return name + " " + label if "Adv" in name else name


class Adaptive(unittest.TestCase):
    """An adaptive job's twin rows are the separate non-adaptive job's, byte for byte."""

    ATTACK = {"attack": "pgd", "steps": 2}
    SETTINGS = [("bpda", 75, {"adaptive": "bpda"}),
                ("eot", [50, 90], {"adaptive": "eot", "eot_qualities": [50, 90]})]

    @classmethod
    def setUpClass(cls):
        cls.jobs = {}
        for name, q, adapt in cls.SETTINGS:
            body = {"dataset": "set", "eps": EPS, "quality": q, "seed": 3}
            cls.jobs[name] = (evaluate(dict(body, attack=dict(cls.ATTACK, **adapt))),
                              evaluate(dict(body, attack=cls.ATTACK)))

    def test_twin_rows_equal_the_non_adaptive_job(self):
        for name, (ja, jn) in self.jobs.items():
            ha, ra = rows_of(ja)
            hn, rn = rows_of(jn)
            self.assertEqual(ha[:len(hn)], hn, "%s: the non-adaptive job's columns come first" % name)
            twin = ["%s:%s" % (twin_name(h.rsplit(":", 1)[0], "PGD-2"), h.rsplit(":", 1)[1])
                    for h in hn if "Adv" in h]
            self.assertEqual(sorted(ha[len(hn):]), sorted(twin), "%s: then the twin's" % name)
            col = {h: i for i, h in enumerate(ha)}
            differ = 0
            for a, n in zip(ra, rn):
                for k, h in enumerate(hn):
                    t, field = h.rsplit(":", 1) if ":" in h else (h, None)
                    tw = "%s:%s" % (twin_name(t, "PGD-2"), field) if field else h
                    self.assertEqual(a[col[tw]], n[k], "%s, %s: %s" % (name, a[0], tw))
                    differ += "Adv" in h and a[k] != n[k]
            self.assertGreater(differ, 0, "%s: the adaptive attack's own rows differ" % name)

    def test_table_and_tests(self):
        for name, (ja, jn) in self.jobs.items():
            ta = {r["transform"]: r for r in get_json("/jobs/%s/result" % ja)["table"]}
            rn = get_json("/jobs/%s/result" % jn)
            for row in rn["table"]:
                tw = ta[twin_name(row["transform"], "PGD-2")]
                for k in ("top1", "mean_top_label_prob", "box", "top1_ci", "mean_top_label_prob_ci",
                          "kind", "eps", "quality", "linf", "l2", "psnr", "attack", "steps"):
                    self.assertEqual(tw.get(k), row.get(k), (name, row["transform"], k))
                own = ta[row["transform"]]
                self.assertEqual(tw["display_name"], tw["transform"])
                if "Adv" in row["transform"]:
                    self.assertEqual((tw["adaptive"], own["adaptive"]), ("none", name))
                    self.assertEqual(own["display_name"],
                                     "%s %s-PGD-2" % (row["transform"], name.upper()))
            res = get_json("/jobs/%s/result" % ja)
            nq = len(res["quality"]) if isinstance(res["quality"], list) else 1
            pairs = [t for t in res["tests"] if t["pair"] == "jpg_adaptive"]
            self.assertEqual(len(pairs), len(EPS) * nq, name)
            self.assertEqual(len(res["tests"]), nq + 5 * len(EPS) * nq, name)
            for t in pairs:
                self.assertEqual(t["a"], twin_name(t["b"], "PGD-2"))
                self.assertEqual(t["adaptive"], name)
            check_tests(self, ja, res["tests"])

    def test_images_of_an_adaptive_job_equal_its_row(self):
        ja = self.jobs["bpda"][0]
        h, rows = rows_of(ja)
        col = {k: i for i, k in enumerate(h)}
        a = get_json("/jobs/%s/images/%s" % (ja, rows[2][0]))
        self.assertTrue(a["same_as_row"])
        self.assertEqual(len(a["results"]), 2 + 2 * 3 * len(EPS))
        for r in a["results"]:
            self.assertEqual(f32(r["top_label_prob"]), f32(rows[2][col[r["transform"] + ":prob"]]))
            self.assertEqual(r["adaptive"], "none" if r["transform"].endswith("PGD-2") else "bpda")

    def test_figures(self):
        ja = self.jobs["bpda"][0]
        for fig in ("figure3.svg", "figure4.svg", "quality.svg"):
            st, svg = call("GET", "/jobs/%s/%s" % (ja, fig))
            self.assertEqual(st, 200)
            x = subprocess.run(["xmllint", "--noout", "-"], input=svg, capture_output=True)
            self.assertEqual(x.returncode, 0, fig + x.stderr.decode())
        st, svg = call("GET", "/jobs/%s/figure3.svg" % ja)
        self.assertIn("JPG(Adv5(x)) PGD-2", svg.decode(), "figure 3: a box for the twin")
        st, svg = call("GET", "/jobs/%s/quality.svg" % self.jobs["eot"][0])  # EOT over a grid
        text = svg.decode()
        self.assertEqual(text.count('class="curve"'), 2 * (1 + 2 * 2 * len(EPS)),
                         "top-1 and mean: JPG(x), and JPG, JPGnoise per eps for the attack and its twin")
        for e in EPS:
            self.assertIn("JPGnoise(Adv%d(x)) PGD-2" % e, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
