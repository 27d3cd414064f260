#!/bin/sh
# test_grid.sh - the quality grid, the intervals and paired tests, a job's
# images and the provenance, over HTTP against a live advjpgd with a tiny
# random model and a small labelled folder. The checks are
# tests/test_grid.py (SciPy and an independent bootstrap, xmllint).
#
# Environment (set by tests/meson.build): ADVJPGD (required); PYTHON (default
# /usr/bin/python3: needs numpy and scipy, Debian python3-scipy).
# Exit status: 0 passed, 1 failed, 77 (meson: skipped) without the daemon,
# SciPy or xmllint.
set -u

here=$(cd "$(dirname "$0")" && pwd)
ADVJPGD=${ADVJPGD:-}
PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "$ADVJPGD" ] || [ ! -x "$ADVJPGD" ]; then
    echo "test_grid: SKIP: no advjpgd (set ADVJPGD)" >&2
    exit 77
fi
if ! "$PYTHON" -c "import numpy, scipy.stats" 2>/dev/null; then
    echo "test_grid: SKIP: no python3 with numpy and scipy (Debian: python3-scipy)" >&2
    exit 77
fi
if ! command -v xmllint >/dev/null 2>&1; then
    echo "test_grid: SKIP: no xmllint (Debian: libxml2-utils)" >&2
    exit 77
fi

# shellcheck source=tests/lib.sh
. "$here/lib.sh"
lib_tmp advjpg-grid

cp "$here/specs/tiny.json" "$tmp/spec.json"
mkdir -p "$tmp/data/set"
"$PYTHON" - "$tmp" <<'PY' || exit 1
import random, struct, sys, zlib
d = sys.argv[1]
rng = random.Random(11)
w = [rng.uniform(-0.1, 0.1) for _ in range(20714)]
open(d + "/w.bin", "wb").write(struct.pack("<%df" % len(w), *w))
def png(W, H, px):
    raw = b"".join(b"\0" + px[y * W * 3:(y + 1) * W * 3] for y in range(H))
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
labels = []
for k in range(14):
    W, H = 40 + 2 * k, 36 + k
    px = bytes(((x * (3 + k) + y * k) % 256 if c == 0 else (y * (5 + k) + rng.randrange(40)) % 256
                if c == 1 else ((x - y) * 3 + 17 * k) % 256)
               for y in range(H) for x in range(W) for c in range(3))
    name = "im%02d.png" % k
    open(d + "/data/set/" + name, "wb").write(png(W, H, px))
    labels.append("%s\t%d\n" % (name, rng.randrange(10)))
open(d + "/data/set/labels.txt", "w").write("".join(labels))
PY

lib_daemon grid --data-root "$tmp/data"
if ! "$PYTHON" "$here/test_grid.py" "$url" "$tmp/data/set" "$tmp/w.bin"; then
    echo "--- advjpgd log:" >&2
    tail -n 30 "$tmp/grid.log" >&2
    exit 1
fi
# a restarted daemon reads the grid jobs back (request.json's quality list, the rows'
# header): the same results as before the restart
"$PYTHON" - "$url" "$tmp/before.json" <<'PY' || exit 1
import json, sys, urllib.request
url, out = sys.argv[1:3]
get = lambda p: json.load(urllib.request.urlopen(url + p, timeout=60))
listed = get("/jobs")
jobs = [j for j in (listed if isinstance(listed, list) else listed["jobs"])
        if isinstance(j["quality"], list)]
assert jobs, "grid jobs listed"
json.dump({j["id"]: get("/jobs/%s/result" % j["id"]) for j in jobs}, open(out, "w"))
PY
kill "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
lib_daemon grid --data-root "$tmp/data"
if ! "$PYTHON" - "$url" "$tmp/before.json" <<'PY'; then
import json, sys, time, urllib.request
url, before = sys.argv[1], json.load(open(sys.argv[2]))
get = lambda p: json.load(urllib.request.urlopen(url + p, timeout=60))
for _ in range(300):
    try:
        get("/health")
        break
    except OSError:
        time.sleep(0.1)
for jid, res in before.items():
    st = get("/jobs/" + jid)
    assert st["status"] == "done" and isinstance(st["quality"], list), st
    assert get("/jobs/%s/result" % jid) == res, "job %s: the same result after a restart" % jid
print("restart: %d grid jobs read back" % len(before))
PY
    echo "--- advjpgd log:" >&2
    tail -n 30 "$tmp/grid.log" >&2
    exit 1
fi
exit 0
