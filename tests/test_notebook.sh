#!/bin/sh
# test_notebook.sh - runs client/notebooks/advjpg.ipynb top to bottom against a
# live advjpgd with a tiny random model; fails if any cell raises.
#
# Three runs: (1) with a bearer token and the notebook's generated images,
# (2) without a token, on a folder of images (PPM, PNG and, with cjpeg, JPEG)
# with a labels.txt, (3) a data set on the server (ADVJPG_DATASET, its
# labels.txt there) seen from here through ADVJPG_DATA_ROOT, with class names
# (--labels). After each run the executed notebook must hold the panel
# figure, Figure 3 and Figure 4 (three PNG outputs at least), Table 1 and a
# started evaluation job, and its OUT_DIR the saved files (panels, figures,
# Table 1, rows, result, the server's SVGs); with labels, Table 1 has top-1;
# run 3 attacks the data set's own images (no generated ones) and titles
# them with class names; with panels, the adaptive comparison (non-adaptive
# and BPDA threat models, the norms, adaptive.csv) is there. The notebook itself must have a cell tagged
# "parameters", no outputs and no "no /evaluate yet".
#
# Environment (set by tests/meson.build):
#   ADVJPGD   the daemon (required)
#   PYTHON    a python3 with nbclient (or nbconvert), ipykernel, requests,
#             pandas, matplotlib (default: the first of /usr/bin/python3,
#             python3 that has them; Debian: jupyter-nbconvert
#             python3-ipykernel python3-requests python3-pandas python3-matplotlib)
#   KEEP_NOTEBOOK  if set, a path where the last executed notebook is copied
#
# Exit status: 0 when both runs passed, 1 otherwise, 77 (meson: skipped) when
# the daemon or a Python package is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
notebook="$here/../client/notebooks/advjpg.ipynb"
ADVJPGD=${ADVJPGD:-}

if [ -z "$ADVJPGD" ] || [ ! -x "$ADVJPGD" ]; then
    echo "test_notebook: SKIP: no advjpgd (set ADVJPGD)" >&2
    exit 77
fi

# A python that can run the notebook.
modules="nbclient, nbformat, ipykernel, requests, pandas, matplotlib"
if [ -z "${PYTHON:-}" ]; then
    for p in /usr/bin/python3 python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c "import $modules" 2>/dev/null; then
            PYTHON=$p
            break
        fi
    done
fi
if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c "import $modules" 2>/dev/null; then
    echo "test_notebook: SKIP: no python3 with $modules" \
        "(Debian: jupyter-nbconvert python3-ipykernel python3-requests python3-pandas" \
        "python3-matplotlib)" >&2
    exit 77
fi

# the notebook imports the Python client, client/python/advjpg.py
PYTHONPATH="$here/../client/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH

# shellcheck source=tests/lib.sh
. "$here/lib.sh"
lib_tmp advjpg-notebook
# stop_daemon: stops the daemon lib_daemon started last
stop_daemon() {
    kill "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
}

# ---- a tiny random model and test images ------------------------------------

cp "$here/specs/tiny.json" "$tmp/spec.json"
mkdir "$tmp/images"
"$PYTHON" - "$tmp" <<'EOF' || exit 1
import random, struct, sys, zlib
d = sys.argv[1]
rng = random.Random(7)
# conv 8x3x3x3 + 8, fc 10x(8*16*16) + 10: 20714 little-endian float32
w = [rng.uniform(-0.1, 0.1) for _ in range(8 * 3 * 3 * 3 + 8 + 10 * 8 * 16 * 16 + 10)]
assert len(w) == 20714
open(d + "/w.bin", "wb").write(struct.pack("<%df" % len(w), *w))

def picture(W, H, k):
    px = bytearray()
    for y in range(H):
        for x in range(W):
            px += bytes(((x * (3 + k) + y) % 256, (y * (5 + k)) % 256, ((x - y) * 3 + 40 * k) % 256))
    return px

def png(W, H, px):
    raw = b"".join(b"\0" + bytes(px[y * W * 3:(y + 1) * W * 3]) for y in range(H))
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

for k, (W, H) in enumerate([(48, 40), (40, 56), (64, 64), (50, 37)]):
    px = picture(W, H, k)
    ppm = b"P6\n%d %d\n255\n" % (W, H) + px
    if k % 2:
        open("%s/images/img%d.png" % (d, k), "wb").write(png(W, H, px))
    else:
        open("%s/images/img%d.ppm" % (d, k), "wb").write(ppm)
    open("%s/src%d.ppm" % (d, k), "wb").write(ppm)
    with open(d + "/images/labels.txt", "a") as f:
        f.write("img%d.%s\t%d\n" % (k, "png" if k % 2 else "ppm", (2 * k + 1) % 10))
# the class names of run 3 (--labels): one per class of the tiny model
open(d + "/names.txt", "w").write("".join("class-name-%d\n" % i for i in range(10)))
EOF
# run 3's data set: the same images, under a data root
if command -v cjpeg >/dev/null 2>&1; then
    cjpeg -quality 90 "$tmp/src0.ppm" >"$tmp/images/img4.jpg" || exit 1
    printf 'img4.jpg\t9\n' >>"$tmp/images/labels.txt"
else
    echo "test_notebook: note: no cjpeg, no JPEG among the test images" >&2
fi
mkdir -p "$tmp/root"
cp -r "$tmp/images" "$tmp/root/set"

# ---- the daemon ----------------------------------------------------------------

# ---- running the notebook -------------------------------------------------------

failures=0
# run_notebook NAME: executes the notebook with the current ADVJPG_* environment
run_notebook() {
    name=$1
    out="$tmp/$name.ipynb"
    # nbclient raises CellExecutionError (naming the cell) if any cell raises.
    if ! "$PYTHON" - "$notebook" "$out" "$tmp" >"$tmp/$name.out" 2>&1 <<'EOF'; then
import sys
import nbclient
import nbformat

src, out, cwd = sys.argv[1:4]
nb = nbformat.read(src, as_version=4)
client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                 resources={"metadata": {"path": cwd}})
try:
    client.execute()
finally:
    nbformat.write(nb, out)
EOF
        failures=$((failures + 1))
        echo "FAIL: $name: a cell raised:" >&2
        tail -n 30 "$tmp/$name.out" >&2
        echo "--- advjpgd log:" >&2
        tail -n 20 "$tmp/$name.log" >&2
        return
    fi
    # What the executed notebook must show.
    if ! "$PYTHON" - "$out" "$ADVJPG_OUT" "${EXPECT:-}" <<'EOF' >"$tmp/$name.check" 2>&1; then
import csv, json, os, sys
nb = json.load(open(sys.argv[1]))
out_dir, expect = sys.argv[2], sys.argv[3].split(",") if sys.argv[3] else []
pngs, text = 0, []
for c in nb["cells"]:
    for o in c.get("outputs", []):
        if o.get("output_type") == "error":
            sys.exit("error output: %s: %s" % (o.get("ename"), o.get("evalue")))
        data = o.get("data", {})
        pngs += "image/png" in data
        t = o.get("text") or data.get("text/plain") or ""
        text.append(t if isinstance(t, str) else "".join(t))
text = "\n".join(text)
problems = []
if pngs < 3:
    problems.append("%d PNG figures (want >= 3: panels, Figure 3, Figure 4)" % pngs)
if "health: ok" not in text:
    problems.append("no 'health: ok'")
if "model: tiny" not in text:
    problems.append("no 'model: tiny'")
if "started job" not in text:
    problems.append("no evaluation job was started")
if "panels" in expect and ("non-adaptive" not in text or "adaptive: BPDA through JPG_q" not in text
                          or "PSNR dB" not in text):
    problems.append("no adaptive comparison (non-adaptive and BPDA threat models, the norms)")
if "JPG(Adv1(x))" not in text or "paper mean" not in text:
    problems.append("no Table 1 with the paper's columns")
for f in ["figure3.png", "figure4.png", "table1.csv", "rows.csv", "result.json",
          "server-figure3.svg", "server-figure4.svg"] + (["panels.png", "adaptive.csv"] if "panels" in expect else []):
    p = os.path.join(out_dir, f)
    if not os.path.isfile(p) or os.path.getsize(p) == 0:
        problems.append("OUT_DIR has no " + f)
if "top1" in expect and os.path.isfile(os.path.join(out_dir, "table1.csv")):
    rows = list(csv.DictReader(open(os.path.join(out_dir, "table1.csv"))))
    if not rows or rows[0].get("top-1") in (None, "", "nan"):
        problems.append("Table 1 has no top-1 although the images have labels")
if "dataset" in expect:
    if "generated-" in text:
        problems.append("a data-set run attacked generated images")
    if "img0.ppm l_x = class-name-" not in text:
        problems.append("no panel of the data set's img0.ppm titled with a class name")
if problems:
    sys.exit("; ".join(problems))
print("ok: %d figures" % pngs)
EOF
        failures=$((failures + 1))
        echo "FAIL: $name: $(cat "$tmp/$name.check")" >&2
        return
    fi
    if [ -n "${KEEP_NOTEBOOK:-}" ]; then
        cp "$out" "$KEEP_NOTEBOOK"
    fi
    echo "ok: $name ($(cat "$tmp/$name.check"))"
}

unset ADVJPG_DATASET ADVJPG_GROUND_TRUTH ADVJPG_LABELS ADVJPG_EPS ADVJPG_QUALITY ADVJPG_DATA_ROOT

# the notebook as shipped
if ! "$PYTHON" - "$notebook" <<'EOF'; then
import json, sys
nb = json.load(open(sys.argv[1]))
text = "".join("".join(c["source"]) for c in nb["cells"])
problems = []
if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]):
    problems.append("no cell tagged 'parameters'")
if "no /evaluate yet" in text:
    problems.append("still says the server has no /evaluate")
if any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"):
    problems.append("shipped with outputs")
sys.exit("; ".join(problems) if problems else 0)
EOF
    failures=$((failures + 1))
    echo "FAIL: the notebook as shipped (above)" >&2
fi

# 1. with a token, generated images
token="nb-$$-secret"
lib_daemon token --token "$token"
ADVJPG_SERVER="http://127.0.0.1:$port" ADVJPG_TOKEN="$token" ADVJPG_IMAGES_DIR="" \
    ADVJPG_LIMIT=6 ADVJPG_OUT="$tmp/out-token" EXPECT=panels run_notebook token
stop_daemon

# 2. no token, a folder of images
lib_daemon plain
ADVJPG_SERVER="http://127.0.0.1:$port" ADVJPG_TOKEN="" ADVJPG_IMAGES_DIR="$tmp/images" \
    ADVJPG_LIMIT=20 ADVJPG_OUT="$tmp/out-images" EXPECT=panels,top1 run_notebook images
stop_daemon

# 3. a data set on the server, seen from here through ADVJPG_DATA_ROOT, with class names
lib_daemon dataset --data-root "$tmp/root" --labels "$tmp/names.txt"
ADVJPG_SERVER="http://127.0.0.1:$port" ADVJPG_TOKEN="" ADVJPG_IMAGES_DIR="" ADVJPG_DATASET=set \
    ADVJPG_DATA_ROOT="$tmp/root" ADVJPG_LIMIT=20 ADVJPG_OUT="$tmp/out-dataset" \
    EXPECT=panels,top1,dataset run_notebook dataset
stop_daemon

if [ "$failures" -ne 0 ]; then
    echo "test_notebook: $failures checks failed" >&2
    exit 1
fi
echo "test_notebook: 3 runs passed"
exit 0
