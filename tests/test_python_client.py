"""Tests of client/python/advjpg.py against live daemons (started by test_python_client.sh).

argv: PLAIN_URL TOKEN_URL TOKEN IMAGES_DIR (a folder with a.ppm, b.png, c.png and labels.txt;
the plain daemon's --data-root holds the same folder as "set").
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client", "python"))
import advjpg  # noqa: E402

PLAIN, TOKENED, TOKEN, IMAGES = sys.argv[1:5]
del sys.argv[1:5]
A, B, C = (os.path.join(IMAGES, n) for n in ("a.ppm", "b.png", "c.png"))
TRANSFORMS = ["x", "JPG(x)", "Adv1(x)", "JPG(Adv1(x))", "JPGnoise(Adv1(x))",
              "Adv2(x)", "JPG(Adv2(x))", "JPGnoise(Adv2(x))"]


def client(test, *args, **kw):
    """A Client closed when the test ends."""
    c = advjpg.Client(*args, **kw)
    test.addCleanup(c.close)
    return c


class Plain(unittest.TestCase):
    def setUp(self):
        os.environ.pop("ADVJPG_TOKEN", None)
        self.c = client(self, PLAIN)

    def test_environment_defaults(self):
        os.environ["ADVJPG_SERVER"] = PLAIN.replace("http://", "")
        try:
            c = client(self)
        finally:
            del os.environ["ADVJPG_SERVER"]
        self.assertEqual(c.url, PLAIN)
        self.assertEqual(client(self, PLAIN + "/").url, PLAIN)

    def test_service(self):
        self.assertEqual(self.c.health(), {"status": "ok"})
        self.assertEqual(self.c.models()["name"], "tiny")
        self.assertIn("# TYPE ", self.c.metrics())

    def test_classify(self):
        r = self.c.classify(A, top_k=3)
        self.assertEqual(len(r["top"]), 3)
        self.assertTrue(0 <= r["label"] < 10)
        # bytes in memory give the same answer as the file
        with open(A, "rb") as f:
            self.assertEqual(self.c.classify(f.read(), top_k=3)["top"], r["top"])

    def test_attack(self):
        a = self.c.attack(A, eps=(1, 2), quality=75, seed=3, images=True)
        self.assertEqual([r["transform"] for r in a["results"]], TRANSFORMS)
        self.assertEqual((a["eps"], a["seed"]), ([1, 2], 3))
        pngs = advjpg.decode_images(a)
        self.assertTrue(pngs["JPG(Adv1(x))"].startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertNotIn("images", self.c.attack(A, eps=5))

    def test_attack_menu(self):
        a = self.c.attack(A, eps=2, attack="pgd", steps=3, step_size=1, adaptive="eot",
                          eot_qualities=(50, 75), images=True)
        self.assertEqual((a["attack"], a["steps"], a["adaptive"], a["eot_qualities"]),
                         ("pgd", 3, "eot", [50, 75]))
        self.assertTrue(a["threat_model"].startswith("adaptive: EOT over qualities 50,75"))
        adv = [r for r in a["results"] if r["transform"] == "Adv2(x)"][0]
        self.assertTrue(0 < adv["linf"] <= 2 and adv["l2"] > 0 and adv["psnr"] > 0)
        # the same seed gives the same PGD image, another seed another one
        same = self.c.attack(A, eps=2, attack="pgd", steps=3, adaptive="eot",
                             eot_qualities=(50, 75), images=True)
        other = self.c.attack(A, eps=2, seed=2, attack="pgd", steps=3, adaptive="eot",
                              eot_qualities=(50, 75), images=True)
        self.assertEqual(same["images"]["Adv2(x)"], a["images"]["Adv2(x)"])
        self.assertNotEqual(other["images"]["Adv2(x)"], a["images"]["Adv2(x)"])
        with self.assertRaises(advjpg.ServerError) as e:
            self.c.attack(A, eps=2, steps=3)  # steps with fgsm
        self.assertEqual(e.exception.status, 400)
        self.assertIn("steps", e.exception.message)

    def test_evaluate_attack(self):
        for kw in ({"dataset": "set", "limit": 2}, {"images": [A, B]}):
            jid = self.c.evaluate(eps=(2,), attack="bim", steps=2, adaptive="bpda", **kw)
            self.c.wait(jid, interval=0.05)
            self.assertEqual(self.c.job(jid)["attack"],
                             {"attack": "bim", "steps": 2, "step_size": 1, "adaptive": "bpda"})
            res = self.c.result(jid)
            self.assertTrue(res["threat_model"].startswith("adaptive: BPDA"))
            self.assertTrue(all(r["attack"] == "bim" for r in res["table"]))
            rows = self.c.rows(jid, as_dataframe=False)
            self.assertTrue(all(0 < int(r["Adv2(x):linf"]) <= 2 for r in rows))

    def test_errors_carry_status_and_message(self):
        with self.assertRaises(advjpg.ServerError) as e:
            self.c.attack(A, eps=(0,))
        self.assertEqual(e.exception.status, 400)
        self.assertTrue(e.exception.message.startswith("eps"), e.exception.message)
        with self.assertRaises(advjpg.ServerError) as e:
            self.c.job("0123456789abcdef")
        self.assertEqual(e.exception.status, 404)
        self.assertIn("no such job", e.exception.message)
        with self.assertRaises(advjpg.ServerError) as e:
            client(self, "http://127.0.0.1:1").health()
        self.assertEqual(e.exception.status, 0)
        with self.assertRaises(ValueError):
            self.c.classify(__file__)

    def test_evaluate_upload_list_with_labels(self):
        jid = self.c.evaluate(images=[C, A], labels={"a.ppm": 7, "c.png": 7}, eps=(1, 2), seed=3)
        self.assertEqual(len(jid), 16)
        seen = []
        st = self.c.wait(jid, interval=0.05, progress=seen.append)
        self.assertEqual(st["status"], "done")
        self.assertTrue(seen and seen[-1]["status"] == "done")
        res = self.c.result(jid)
        self.assertEqual((res["n"], res["eps"]), (2, [1, 2]))
        self.assertEqual([r["transform"] for r in res["table"]], TRANSFORMS)
        rows = self.c.rows(jid, as_dataframe=False)
        self.assertEqual([(r["file"], r["truth"]) for r in rows], [("a.ppm", "7"), ("c.png", "7")])
        self.assertTrue(self.c.rows_csv(jid).startswith("file,truth,label_x,"))
        import urllib.request
        for n in (3, 4):  # the SVG as the server serves it, fetched here without the client
            with urllib.request.urlopen(f"{PLAIN}/jobs/{jid}/figure{n}.svg", timeout=30) as r:
                self.assertEqual(self.c.figure(jid, n), r.read().decode("utf-8"))
            self.assertIn(f"<title>Figure {n}", self.c.figure(jid, n))
        with self.assertRaises(ValueError):
            self.c.figure(jid, 5)

    def test_evaluate_upload_folder_uses_labels_txt(self):
        jid = self.c.evaluate(images=IMAGES, eps=(1,))
        self.c.wait(jid, interval=0.05)
        rows = self.c.rows(jid, as_dataframe=False)
        self.assertEqual([(r["file"], r["truth"]) for r in rows],
                         [("a.ppm", "1"), ("b.png", "2"), ("c.png", "4")])

    def test_evaluate_dataset(self):
        jid = self.c.evaluate(dataset="set", eps=(1,), limit=2)
        self.c.wait(jid, interval=0.05)
        self.assertEqual(self.c.job(jid)["total"], 2)
        self.assertIn(jid, [j["id"] for j in self.c.jobs()["jobs"]])
        self.assertEqual(self.c.cancel(jid)["status"], "done")

    def test_rows_dataframe(self):
        try:
            import pandas  # noqa: F401
        except ImportError:
            self.skipTest("no pandas")
        jid = self.c.evaluate(images=[A, B], eps=(1,))
        self.c.wait(jid, interval=0.05)
        df = self.c.rows(jid)
        self.assertEqual(list(df["file"]), ["a.ppm", "b.png"])
        self.assertIn("JPG(Adv1(x)):prob", df.columns)

    def test_argument_errors(self):
        with self.assertRaises(ValueError):
            self.c.evaluate()
        with self.assertRaises(ValueError):
            self.c.evaluate(dataset="set", images=[A])
        with self.assertRaises(ValueError):
            self.c.evaluate(images=[A, os.path.join(IMAGES, "..", os.path.basename(IMAGES), "a.ppm")])

    def test_wait_raises_job_error_on_a_canceled_job(self):
        c = client(self, PLAIN)
        c.job = lambda jid: {"id": jid, "status": "canceled", "done": 1, "total": 4}
        with self.assertRaises(advjpg.JobError) as e:
            c.wait("0123456789abcdef", interval=0.01)
        self.assertEqual(e.exception.job["status"], "canceled")

    def test_refused_labels(self):
        with self.assertRaises(advjpg.ServerError) as e:
            self.c.evaluate(images=[A], labels="b.png\t1\n")
        self.assertEqual(e.exception.status, 400)
        self.assertIn("no label for 'a.ppm'", e.exception.message)


class Token(unittest.TestCase):
    def test_token_from_the_environment(self):
        os.environ["ADVJPG_TOKEN"] = TOKEN
        try:
            self.assertEqual(client(self, TOKENED).models()["name"], "tiny")
        finally:
            del os.environ["ADVJPG_TOKEN"]

    def test_token_argument_and_401(self):
        self.assertEqual(client(self, TOKENED, token=TOKEN).models()["name"], "tiny")
        with self.assertRaises(advjpg.ServerError) as e:
            client(self, TOKENED, token="").models()
        self.assertEqual(e.exception.status, 401)
        # health needs no token
        self.assertEqual(client(self, TOKENED, token="").health(), {"status": "ok"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
