#!/bin/sh
# table1-attacks.sh - Table 1 on the embedded model's held-out set for three
# attackers: FGSM (the paper's), PGD-10 (non-adaptive) and BPDA-PGD-10 (an
# adaptive attacker that knows JPEG at quality 75 follows), at eps 1, 5, 10,
# from two jobs: FGSM, and BPDA-PGD-10, whose rows hold its twin PGD-10's
# beside its own (the same PGD without BPDA, the same numbers as a PGD-10 job).
#
# usage: tools/table1-attacks.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR  the meson build folder (default: build)
#   OUT_DIR    one folder per attack with its result.json, rows.csv and
#              figures (default: out/table1-attacks)
#
# DATASET (environment, default shapes/val: the 2000 held-out images of
# `advjpg-gen --standard data/shapes`; generated alone if missing, the same
# bytes as --standard's val: 2000 images, seed 2) is the folder
# under data/; LIMIT (default: all) takes its first LIMIT images. Each
# job is one evaluation job of tools/demo.sh (its own advjpgd, the
# embedded model advjpg-shapes from config/). Prints one
# Markdown table: per transform, top-1 and mean top-label probability under
# each attack, and the mean L2 of the perturbation for the Adv rows.
# Needs curl and python3. Exit status: 0, or 1 when a job fails.
set -eu

cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-out/table1-attacks}
DATASET=${DATASET:-shapes/val}
export DATASET
if [ "$DATASET" = shapes/val ] && [ ! -f data/shapes/val/labels.txt ]; then
    "$build/tools/advjpg-gen" --out data/shapes/val --count 2000 --seed 2
fi

# name:attack object ("" = the paper's FGSM); the BPDA job also runs PGD-10, its twin
for setting in 'fgsm:' 'bpda-pgd-10:{"attack": "pgd", "steps": 10, "adaptive": "bpda"}'; do
    name=${setting%%:*}
    mkdir -p "$out"
    ATTACK=${setting#*:} tools/demo.sh "$build" "$out/$name" >"$out/$name.log" 2>&1 ||
        { cat "$out/$name.log" >&2; exit 1; }
    grep '^job ' "$out/$name.log" | tail -1 >&2
done

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
res = {n: json.load(open("%s/%s/result.json" % (out, n))) for n in ("fgsm", "bpda-pgd-10")}
rows = {n: {r["transform"]: r for r in res[n]["table"]} for n in res}
# the columns: (header, job, the transform's name in that job's table)
twin = lambda t: t + " PGD-10" if "Adv" in t else t
cols = [("FGSM (non-adaptive)", "fgsm", lambda t: t),
        ("PGD-10 (non-adaptive, the BPDA job's twin)", "bpda-pgd-10", twin),
        ("BPDA-PGD-10 (adaptive)", "bpda-pgd-10", lambda t: t)]
fmt = lambda v: "n/a" if v is None else "%.2f" % v
first = res["fgsm"]
print("Table 1: model %s, %s, %d images, JPEG quality %d; top-1 / mean top-label probability"
      % (first["model"], first["dataset"], first["n"], first["quality"]))
print()
print("| transform | " + " | ".join(c[0] for c in cols) + " | mean L2 of Adv - x |")
print("|---|" + "---|" * len(cols) + "---|")
for row in first["table"]:
    t = row["transform"]
    got = [rows[job][name(t)] for _, job, name in cols]
    cells = ["%s / %s" % (fmt(r["top1"]), fmt(r["mean_top_label_prob"])) for r in got]
    l2 = " / ".join("%.0f" % r["l2"] for r in got) if t.startswith("Adv") else ""
    print("| %s | %s | %s |" % (t, " | ".join(cells), l2))
print()
for n in res:
    print("- %s: %s" % (n.upper(), res[n]["threat_model"]))
tests = [t for t in res["bpda-pgd-10"]["tests"] if t["pair"] in ("adv_jpg", "jpg_adaptive")]
print()
print("Paired tests of the BPDA job (top-1: right->wrong / wrong->right, McNemar p):")
for t in tests:
    print("- %s, eps %d: %s -> %s: %s / %s, p %.3g" % (t["pair"], t["eps"], t["a"], t["b"],
          t["right_to_wrong"], t["wrong_to_right"], t["mcnemar_p"]))
PY
