#!/usr/bin/python3
"""table1-ci.py - paired bootstrap 95% intervals for an evaluation's rows CSV.

    tools/table1-ci.py rows.csv [--resamples 10000] [--seed 1] [--quality 75]

For each eps E of the job (the Adv<E>(x) columns) prints, over the images:
top-1 of x, of Adv<E>(x) and of JPG(Adv<E>(x)); the attack's drop
top1(x) - top1(Adv) and JPEG's recovery top1(JPG(Adv)) - top1(Adv), each
with a percentile bootstrap 95% interval that resamples images (the same
resample for both terms of a difference, i.e. paired). A quality grid's
rows name JPG<Q>(...): --quality chooses Q (default 75). Needs numpy.
"""
import argparse
import csv
import re

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows")
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quality", type=int, default=75)
    a = ap.parse_args()
    with open(a.rows, newline="") as f:
        rows = list(csv.DictReader(f))
    truth = np.array([int(r["truth"]) for r in rows])

    def right(t):
        return (np.array([int(r[t + ":label"]) for r in rows]) == truth).astype(float)

    eps = sorted({int(m.group(1)) for k in rows[0] for m in [re.fullmatch(r"Adv(\d+)\(x\):label", k)] if m})
    rng = np.random.default_rng(a.seed)
    idx = rng.integers(0, len(rows), size=(a.resamples, len(rows)))

    def ci(v):
        m = v[idx].mean(axis=1)
        return v.mean(), np.percentile(m, 2.5), np.percentile(m, 97.5)

    x = right("x")
    print("n = %d images, %d paired bootstrap resamples" % (len(rows), a.resamples))
    print("top-1 x: %.4f [%.4f, %.4f]" % ci(x))
    for e in eps:
        jpg = "JPG(Adv%d(x))" % e  # one quality's name, else the grid's
        if jpg + ":label" not in rows[0]:
            jpg = "JPG%d(Adv%d(x))" % (a.quality, e)
        adv, jadv = right("Adv%d(x)" % e), right(jpg)
        print("eps %d: top-1 Adv %.4f [%.4f, %.4f]" % ((e,) + ci(adv)), end="")
        print("  JPG(Adv) %.4f [%.4f, %.4f]" % ci(jadv))
        print("        drop x - Adv %.4f [%.4f, %.4f]" % ci(x - adv), end="")
        print("  JPEG recovery JPG(Adv) - Adv %+.4f [%+.4f, %+.4f]" % ci(jadv - adv))


if __name__ == "__main__":
    main()
