#!/bin/sh
# test_python_client.sh - client/python/advjpg.py against two live advjpgd with a
# tiny random model: one plain (with a --data-root), one with a bearer token.
# The checks are tests/test_python_client.py (unittest).
#
# Environment (set by tests/meson.build):
#   ADVJPGD  the daemon (required)
#   PYTHON   a python3 with requests (default: the first of /usr/bin/python3,
#            python3 that has it; Debian: python3-requests; python3-pandas for
#            the DataFrame check, skipped without it)
#
# Exit status: 0 passed, 1 failed, 77 (meson: skipped) when the daemon or
# requests is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
ADVJPGD=${ADVJPGD:-}
if [ -z "$ADVJPGD" ] || [ ! -x "$ADVJPGD" ]; then
    echo "test_python_client: SKIP: no advjpgd (set ADVJPGD)" >&2
    exit 77
fi
if [ -z "${PYTHON:-}" ]; then
    for p in /usr/bin/python3 python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c "import requests" 2>/dev/null; then
            PYTHON=$p
            break
        fi
    done
fi
if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c "import requests" 2>/dev/null; then
    echo "test_python_client: SKIP: no python3 with requests (Debian: python3-requests)" >&2
    exit 77
fi

# shellcheck source=tests/lib.sh
. "$here/lib.sh"
lib_tmp advjpg-py

cp "$here/specs/tiny.json" "$tmp/spec.json"
mkdir -p "$tmp/data/set"
"$PYTHON" - "$tmp" <<'PY' || exit 1
import random, struct, sys, zlib
d = sys.argv[1]
rng = random.Random(5)
w = [rng.uniform(-0.1, 0.1) for _ in range(20714)]
open(d + "/w.bin", "wb").write(struct.pack("<%df" % len(w), *w))
def picture(W, H, k):
    return bytes(((x * (3 + k) + y) % 256 if c == 0 else (y * (5 + k)) % 256 if c == 1
                  else ((x - y) * 3 + 40 * k) % 256)
                 for y in range(H) for x in range(W) for c in range(3))
def png(W, H, px):
    raw = b"".join(b"\0" + px[y * W * 3:(y + 1) * W * 3] for y in range(H))
    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
s = d + "/data/set/"
open(s + "a.ppm", "wb").write(b"P6\n48 40\n255\n" + picture(48, 40, 0))
open(s + "b.png", "wb").write(png(40, 56, picture(40, 56, 1)))
open(s + "c.png", "wb").write(png(64, 64, picture(64, 64, 2)))
open(s + "labels.txt", "w").write("a.ppm\t1\nb.png\t2\nc.png\t4\n")
PY

lib_daemon plain --data-root "$tmp/data"
plain=$url
token="py-$$-secret"
lib_daemon token --token "$token"
tokened=$url

unset ADVJPG_SERVER ADVJPG_TOKEN
if ! "$PYTHON" "$here/test_python_client.py" "$plain" "$tokened" "$token" "$tmp/data/set"; then
    echo "--- advjpgd log (plain):" >&2
    tail -n 20 "$tmp/plain.log" >&2
    exit 1
fi
exit 0
