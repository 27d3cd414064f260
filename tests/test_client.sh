#!/bin/sh
# test_client.sh - the client (advjpg) and the curl scripts (client/scripts)
# against a live advjpgd with a tiny model, and against a fake server for
# what the daemon cannot be made to do on demand (503, a slow answer, a
# failed job).
#
# Environment (set by tests/meson.build):
#   ADVJPG   the client
#   ADVJPGD  the daemon; default: server/advjpgd next to the client's folder.
#            Without one, only the checks that need no daemon run and the
#            test reports SKIP (77) if they pass.
# Needs: python3 (which meson itself runs on) for the model's weight file,
# the test images and the fake server; cjpeg (libjpeg-turbo-progs) for the
# byte-for-byte recompress check; curl for the scripts.
#
# Prints one line per failed check and a summary; exit 0 when all passed,
# 1 otherwise, 77 (meson: skipped) when a required tool is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
scripts="$here/../client/scripts"
ADVJPG=${ADVJPG:?ADVJPG must name the advjpg client}
ADVJPGD=${ADVJPGD:-}
# without $ADVJPGD, the daemon of the same build tree
if [ -z "$ADVJPGD" ] && [ -x "$(dirname "$ADVJPG")/../server/advjpgd" ]; then
    ADVJPGD="$(dirname "$ADVJPG")/../server/advjpgd"
fi
PYTHON=${PYTHON:-python3}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "test_client: SKIP: no $PYTHON" >&2
    exit 77
fi
if ! command -v curl >/dev/null 2>&1; then
    echo "test_client: SKIP: no curl for the scripts" >&2
    exit 77
fi

# shellcheck source=tests/lib.sh
. "$here/lib.sh"
lib_tmp advjpg-client

checks=0
failures=0
skipped=0
# check DESCRIPTION COMMAND...: runs the command, counts a failure if it fails
check() {
    desc=$1
    shift
    checks=$((checks + 1))
    if ! "$@"; then
        failures=$((failures + 1))
        echo "FAIL: $desc" >&2
        echo "      rc=$rc; stdout: $(head -c 400 "$tmp/out")" >&2
        echo "      stderr: $(head -c 400 "$tmp/err")" >&2
    fi
}
skip() {
    skipped=$((skipped + 1))
    echo "SKIP: $*" >&2
}

# run COMMAND...: runs with stdout in $tmp/out, stderr in $tmp/err, status in $rc
run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
rc_is() { [ "$rc" -eq "$1" ]; }
# rc_and N COMMAND...: the status was N and the command succeeds
rc_and() {
    [ "$rc" -eq "$1" ] || return 1
    shift
    "$@"
}
lines_of() { [ "$(wc -l <"$1")" -eq "$2" ]; }
no_cr() { [ "$(tr -cd '\r' <"$1" | wc -c)" -eq 0 ]; }
only_pngs() {
    for f in "$1"/* "$1"/.*; do
        case ${f##*/} in
            . | .. | '*' | '.*' | *.png) ;;
            *) return 1 ;;
        esac
    done
}
err_lines_are() { [ "$(wc -l <"$tmp/err")" -eq "$1" ]; }
err_has() { grep -F -q -e "$1" "$tmp/err"; }
out_has() { grep -F -q -e "$1" "$tmp/out"; }
out_empty() { [ ! -s "$tmp/out" ]; }
# JSON checks without jq: py EXPRESSION [ARGS...] evaluates a Python expression
# with J = the JSON values of $tmp/out (one per line) and A = ARGS
py() {
    expr=$1
    shift
    "$PYTHON" - "$tmp/out" "$expr" "$@" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
J = [json.loads(l) for l in text.splitlines() if l.strip()]
A = sys.argv[3:]
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
EOF
}
is_png() { [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ]; }
# a usage error: status 2 and exactly one line on stderr
usage_error() { rc_is 2 && err_lines_are 1; }
# a server error: status 1 and exactly one line on stderr containing $1
server_error() { rc_is 1 && err_lines_are 1 && err_has "$1"; }

# ---- inputs: a tiny model, test images -------------------------------------

cp "$here/specs/tiny.json" "$tmp/spec.json"
"$PYTHON" - "$tmp" <<'EOF'
import random, struct, sys, zlib
d = sys.argv[1]
rng = random.Random(1)
# conv 8x3x3x3 + 8 biases, fc 10x(8*16*16) + 10 biases: 20714 float32,
# He-style scale so the softmax is neither flat nor saturated
def layer(n_out, fan_in):
    s = (2.0 / fan_in) ** 0.5
    return [rng.gauss(0, s) for _ in range(n_out * fan_in)] + [0.0] * n_out
w = layer(8, 27) + layer(10, 8 * 16 * 16)
assert len(w) == 20714
open(d + "/w.bin", "wb").write(struct.pack("<%df" % len(w), *w))
# a 48x40 RGB test picture
W, H = 48, 40
px = bytearray()
for y in range(H):
    for x in range(W):
        px += bytes(((x * 5 + y) % 256, (y * 6) % 256, ((x - y) * 3) % 256))
open(d + "/img.ppm", "wb").write(b"P6\n%d %d\n255\n" % (W, H) + px)
# the same as PNG (8-bit RGB, filter 0 on every row)
raw = b"".join(b"\0" + bytes(px[y * W * 3:(y + 1) * W * 3]) for y in range(H))
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(d + "/img.png", "wb").write(png)
# a file that claims to be a JPEG but is not one
open(d + "/broken.jpg", "wb").write(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 8)
open(d + "/notes.txt", "w").write("not an image\n")
EOF
have_cjpeg=0
if command -v cjpeg >/dev/null 2>&1; then
    have_cjpeg=1
    cjpeg -quality 90 "$tmp/img.ppm" >"$tmp/img.jpg"
    cjpeg -quality 75 "$tmp/img.ppm" >"$tmp/ref75.jpg"
else
    skip "no cjpeg: JPEG input and the byte-for-byte recompress check"
fi
jpg=$tmp/img.jpg
[ "$have_cjpeg" = 1 ] || jpg=$tmp/img.png

# ---- the fake server --------------------------------------------------------
# Canned answers in the contract's shapes; every request is logged as one
# JSON line (method, path, headers, body) to $tmp/fake.log.

cat >"$tmp/fake.py" <<'EOF'
import json, sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file = sys.argv[1], sys.argv[2]
lock = threading.Lock()
polls = {}
LONG = "3f2a9c0b1d4e5f60"

RESULT = {"n": 4, "eps": [1, 5], "quality": 75, "seed": 1, "table": [
    {"transform": "x", "top1": 0.5, "mean_top_label_prob": 0.43,
     "box": {"min": 0.1, "q1": 0.2, "median": 0.4, "q3": 0.6, "max": 0.9, "mean": 0.43,
             "whisker_low": 0.1, "whisker_high": 0.9, "outliers": []}}]}

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, obj, ctype="application/json", headers=()):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with lock:
            with open(log_file, "a") as f:
                f.write(json.dumps({"method": method, "path": self.path,
                                    "auth": self.headers.get("Authorization"),
                                    "type": self.headers.get("Content-Type"),
                                    "body": body.decode("latin-1")}) + "\n")
        p = self.path
        if p == "/health" or p.startswith("/classify"):
            return self.send(503, {"error": "overloaded"}, headers=[("Retry-After", "2")])
        if p == "/models":
            time.sleep(3)
            return self.send(200, {"name": "slow"})
        if p == "/evaluate" and method == "POST":
            req = json.loads(body)
            jid = {"fail": "jobfail", "long": LONG}.get(req.get("dataset"), "job1")
            with lock:
                polls[jid] = 0
            return self.send(202, {"id": jid, "status": "queued"},
                             headers=[("Location", "/jobs/" + jid)])
        if p == "/jobs":
            return self.send(200, {"jobs": [{"id": "job1", "status": "running",
                                             "done": 1, "total": 4}]})
        if p == "/jobs/job1" and method == "DELETE":
            return self.send(200, {"id": "job1", "status": "canceled"})
        if p in ("/jobs/job1", "/jobs/" + LONG):
            jid = p[6:]
            with lock:
                k = polls.get(jid, 4)
                polls[jid] = k + 1
            st = "queued" if k == 0 else "running" if k < 4 else "done"
            # rates of different lengths: the bar must keep its width
            rate = {0: 0.25, 3: 123.5}.get(k, 3.5)
            return self.send(200, {"id": jid, "status": st, "done": min(k, 4), "total": 4,
                                   "images_per_s": rate, "eta_s": max(0, 4 - k) / rate})
        if p == "/jobs/jobcancel":
            # a canceled job whose server still sends an eta_s
            return self.send(200, {"id": "jobcancel", "status": "canceled", "done": 1,
                                   "total": 4, "images_per_s": 2.0, "eta_s": 1.5})
        if p == "/jobs/jobfail":
            return self.send(200, {"id": "jobfail", "status": "failed", "done": 1, "total": 4,
                                   "error": "disk full"})
        if p == "/jobs/job1/result":
            return self.send(200, RESULT)
        if p == "/jobs/job1/rows":
            return self.send(200, b"file,truth,label_x\na.jpg,1,1\n", "text/csv")
        if p == "/jobs/garbage":
            return self.send(200, b"<html>hello</html>", "text/html")
        return self.send(404, {"error": "no such thing: " + p})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up (the --timeout test) is no news

srv = Server(("127.0.0.1", 0), H)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
EOF

# wait_port FILE PID: waits up to 60 s for a port number in FILE
wait_port() {
    i=0
    while [ ! -s "$1" ]; do
        if ! kill -0 "$2" 2>/dev/null || [ $i -ge 600 ]; then
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    port=$(cat "$1")
}

"$PYTHON" "$tmp/fake.py" "$tmp/fake.port" "$tmp/fake.log" &
fake_pid=$!
pids="$pids $fake_pid"
if ! wait_port "$tmp/fake.port" "$fake_pid"; then
    echo "FAIL: the fake server did not start" >&2
    exit 1
fi
FAKE=http://127.0.0.1:$port

# ---- usage errors and help (no server needed) -------------------------------

run "$ADVJPG"
check "no command: usage error" rc_is 2
run "$ADVJPG" frobnicate
check "unknown command: usage error" usage_error
run "$ADVJPG" --help
lists_commands() {
    for c in classify attack recompress evaluate jobs job result rows cancel delete health models metrics; do
        grep -q "^  $c " "$tmp/out" || return 1
    done
}
check "--help: 0 and every command" rc_and 0 lists_commands
for c in classify attack recompress evaluate jobs job result rows cancel delete health models metrics; do
    run "$ADVJPG" "$c" --help
    check "$c --help" rc_and 0 grep -q "^usage: advjpg $c" "$tmp/out"
done
run "$ADVJPG" help attack
check "help attack" out_has "usage: advjpg attack"
run "$ADVJPG" classify
check "classify without an image" usage_error
run "$ADVJPG" classify "$tmp/missing.jpg"
check "classify a missing file" usage_error
run "$ADVJPG" classify "$tmp/notes.txt"
check "classify a text file" usage_error
run "$ADVJPG" classify --bogus "$jpg"
check "unknown option" usage_error
run "$ADVJPG" attack "$jpg" --eps 0,5
check "attack --eps 0" usage_error
run "$ADVJPG" attack "$jpg" --eps 1,x
check "attack --eps 1,x" usage_error
run "$ADVJPG" attack "$jpg" --quality 101
check "attack --quality 101" usage_error
# the attack menu, checked against the parameter table before any request
run "$ADVJPG" attack "$jpg" --attack cw
check "attack --attack cw" rc_and 2 err_has "--attack is one of fgsm, bim, pgd, ll, not 'cw'"
run "$ADVJPG" attack "$jpg" --attack bim --steps 0
check "attack --steps 0" rc_and 2 err_has "--steps wants an integer from 1 to 10000"
run "$ADVJPG" attack "$jpg" --attack bim --step-size 256
check "attack --step-size 256" usage_error
run "$ADVJPG" attack "$jpg" --attack bim --adaptive maybe
check "attack --adaptive maybe" usage_error
run "$ADVJPG" evaluate --dataset d --attack bim --adaptive eot --eot-qualities 50,101
check "evaluate --eot-qualities 50,101" rc_and 2 err_has "--eot-qualities wants"
run "$ADVJPG" attack "$jpg" "$tmp/img.png" --out "$tmp/adv2"
check "attack --out with two images of one stem" rc_and 2 err_has "two images would write to"
run "$ADVJPG" attack "$jpg" "$tmp/notes.txt"
check "attack with a text file among the images" usage_error
run "$ADVJPG" recompress "$jpg"
check "recompress without -o" usage_error
run "$ADVJPG" --timeout soon health
check "--timeout soon" usage_error
run "$ADVJPG" --server ftp://example.org health
check "--server ftp://" usage_error
run "$ADVJPG" job
check "job without an id" usage_error
run "$ADVJPG" evaluate --limit 3
check "evaluate without --dataset" usage_error
run "$ADVJPG" evaluate --dataset d --shard 4/4
check "evaluate --shard 4/4" usage_error
run "$ADVJPG" evaluate --dataset d "$tmp/img.png"
check "evaluate --dataset and images" usage_error
run "$ADVJPG" evaluate "$tmp/img.png" --ground-truth gt.txt
check "evaluate images with --ground-truth" usage_error
run "$ADVJPG" evaluate --dataset d --labels "$tmp/notes.txt"
check "evaluate --dataset with --labels" usage_error
run "$ADVJPG" evaluate "$tmp/img.png" "$tmp/notes.txt"
check "evaluate a text file" usage_error
mkdir -p "$tmp/dup"
cp "$tmp/img.png" "$tmp/dup/img.png"
run "$ADVJPG" evaluate "$tmp/img.png" "$tmp/dup/img.png"
check "evaluate two images of one name" rc_and 2 err_has "have the same name"
run "$ADVJPG" evaluate --upload "$tmp/missing"
check "evaluate --upload a missing folder" usage_error
mkdir -p "$tmp/noimages"
cp "$tmp/notes.txt" "$tmp/noimages/"
run "$ADVJPG" evaluate --upload "$tmp/noimages"
check "evaluate --upload a folder without images" rc_and 2 err_has "no JPEG, PNG or PPM images"
run "$ADVJPG" evaluate "$tmp/img.png" --labels "$tmp/missing.txt"
check "evaluate --labels a missing file" usage_error
for s in classify.sh attack.sh recompress.sh evaluate.sh job.sh result.sh rows.sh cancel.sh; do
    run "$scripts/$s"
    check "$s without arguments: usage error" usage_error
done
for s in classify.sh attack.sh recompress.sh evaluate.sh job.sh result.sh rows.sh cancel.sh \
    health.sh models.sh metrics.sh jobs.sh; do
    run "$scripts/$s" -h
    check "$s -h" rc_and 0 grep -q "^usage: $s" "$tmp/out"
    check "$s -h names ADVJPG_SERVER and ADVJPG_TOKEN" \
        sh -c 'grep -q "^  ADVJPG_SERVER " "$1" && grep -q "^  ADVJPG_TOKEN " "$1"' sh "$tmp/out"
done
if command -v shellcheck >/dev/null 2>&1; then
    # from their folder, where shellcheck follows the scripts' ". common.sh"
    run sh -c 'cd "$1" && shellcheck -s sh ./*.sh' sh "$scripts"
    check "the scripts are shellcheck-clean as POSIX sh" rc_is 0
else
    skip "no shellcheck: the scripts' lint"
fi
run "$scripts/health.sh" extra
check "health.sh extra: usage error" usage_error
run "$scripts/classify.sh" "$tmp/notes.txt"
check "classify.sh a text file: usage error" usage_error
run "$scripts/recompress.sh" "$jpg" 0 "$tmp/x.jpg"
check "recompress.sh quality 0: usage error" usage_error

# ---- the fake server: 503, time limit, jobs ---------------------------------

run "$ADVJPG" --server "$FAKE" classify "$jpg"
check "503 on classify: exit 1, one line with the message" \
    server_error "server answered 503: overloaded (retry after 2 s)"
check "503 on classify: nothing on stdout" out_empty
run "$ADVJPG" --server "$FAKE" health
check "503 on health" server_error "server answered 503: overloaded"
run "$ADVJPG" --server "$FAKE" --timeout 0.5 models
check "--timeout 0.5 against a slow server" server_error "no answer from $FAKE within 0.5 s"
run "$ADVJPG" --server "$FAKE" job nosuch
check "404 on job" server_error "server answered 404: no such thing: /jobs/nosuch"
run "$ADVJPG" --server "$FAKE" job garbage
check "200 with HTML where JSON is due" server_error "not JSON"
run env ADVJPG_SERVER="$FAKE" "$scripts/health.sh"
check "health.sh on 503: exit 1" rc_is 1

: >"$tmp/fake.log"
run env ADVJPG_SERVER="$FAKE" ADVJPG_TOKEN=tok "$ADVJPG" evaluate --dataset imagenet/val \
    --ground-truth gt.txt --eps 1,5 --quality 50 --seed 7 --offset 2 --limit 10 --shard 1/4
check "evaluate: exit 0" rc_is 0
check "evaluate: prints the server's answer" py 'J == [{"id": "job1", "status": "queued"}]'
cp "$tmp/fake.log" "$tmp/out"
check "evaluate: the JSON body and the token" py 'J[0]["method"] == "POST" and
    J[0]["path"] == "/evaluate" and J[0]["type"] == "application/json" and
    J[0]["auth"] == "Bearer tok" and json.loads(J[0]["body"]) == {
        "dataset": "imagenet/val", "ground_truth": "gt.txt", "eps": [1, 5],
        "quality": 50, "seed": 7, "offset": 2, "limit": 10,
        "shard": {"index": 1, "count": 4}}'
: >"$tmp/fake.log"
run env ADVJPG_SERVER="$FAKE" "$ADVJPG" evaluate --dataset imagenet/val --attack pgd --steps 7 \
    --step-size 2 --adaptive eot --eot-qualities "50, 75"
cp "$tmp/fake.log" "$tmp/out"
check "evaluate --attack ...: the body's \"attack\" object" py 'json.loads(J[0]["body"])["attack"] == {
    "attack": "pgd", "steps": 7, "step_size": 2, "adaptive": "eot", "eot_qualities": [50, 75]}'

run "$ADVJPG" --server "$FAKE" evaluate --dataset imagenet/val --wait --interval 0.05
check "evaluate --wait: exit 0" rc_is 0
check "evaluate --wait: prints the result" py 'len(J) == 1 and J[0]["table"][0]["transform"] == "x"'
check "evaluate --wait: plain progress lines when not a terminal" \
    grep -q "^advjpg: job job1 running: 1/4 (25%), 3.5 images/s, ETA 1s$" "$tmp/err"
check "evaluate --wait: a last line when done" grep -q "^advjpg: job job1 done: 4/4 (100%)" "$tmp/err"
check "evaluate --wait: no \\r when not a terminal" no_cr "$tmp/err"
run "$ADVJPG" --server "$FAKE" evaluate --dataset fail --wait --interval 0.05
check "evaluate --wait on a failing job: exit 1 and the reason" \
    rc_and 1 grep -q "^advjpg: job jobfail failed: disk full$" "$tmp/err"
if command -v script >/dev/null 2>&1; then
    # a terminal (script's pty): the bar redrawn with \r, indented JSON
    run script -qec "'$ADVJPG' --server '$FAKE' evaluate --dataset imagenet/val --wait --interval 0.05" /dev/null
    check "evaluate --wait on a terminal: a progress bar redrawn with \\r" \
        rc_and 0 grep -Eq "job job1 running +\[#+-+\] 2/4 +50% +3\.5 img/s +ETA 1s" "$tmp/out"
    check "evaluate --wait on a terminal: one line redrawn, no progress lines" \
        "$PYTHON" -c 'import sys; t = open(sys.argv[1], "rb").read()
sys.exit(not (t.count(b"\rjob job1 ") >= 5 and b"advjpg: job" not in t))' "$tmp/out"
    check "JSON indented on a terminal" grep -q '^  "table": \[' "$tmp/out"
    check "evaluate --wait on a terminal: the bar keeps its width whatever the rate" \
        "$PYTHON" -c 'import sys; t = open(sys.argv[1], "rb").read().decode()
ends = {s.index("]") for s in t.split("\r") if s.startswith("job job1 ")}
sys.exit(len(ends) != 1)' "$tmp/out"
    run script -qec "'$ADVJPG' --server '$FAKE' evaluate --dataset long --wait --interval 0.05" /dev/null
    check "evaluate --wait on a terminal: the whole job id" \
        grep -q "job 3f2a9c0b1d4e5f60 running" "$tmp/out"
    run script -qec "'$ADVJPG' --server '$FAKE' job jobcancel --wait --interval 0.05" /dev/null
    check "job --wait on a terminal after a cancel: no ETA" \
        rc_and 1 sh -c '! grep -q ETA "$1"' sh "$tmp/out"
else
    skip "no script(1): the terminal progress bar and indented output"
fi

run "$ADVJPG" --server "$FAKE" job job1
check "job ID" py 'J[0]["id"] == "job1" and "status" in J[0]'
run "$ADVJPG" --server "$FAKE" result job1
check "result ID" py 'J[0]["n"] == 4 and J[0]["table"][0]["mean_top_label_prob"] == 0.43'
check "result ID: numbers as the server wrote them" out_has '"mean_top_label_prob":0.43,'
run "$ADVJPG" --server "$FAKE" rows job1
printf 'file,truth,label_x\na.jpg,1,1\n' >"$tmp/rows.csv"
check "rows ID: the CSV as sent" rc_and 0 cmp -s "$tmp/out" "$tmp/rows.csv"
run "$ADVJPG" --server "$FAKE" jobs
check "jobs" py 'J[0]["jobs"][0]["id"] == "job1"'
run "$ADVJPG" --server "$FAKE" cancel job1
check "cancel ID" py 'J[0]["status"] == "canceled"'
run "$ADVJPG" --server "$FAKE" job jobfail --wait --interval 0.05
check "job --wait on a failed job: exit 1" \
    rc_and 1 grep -q "job jobfail failed: disk full" "$tmp/err"
run "$ADVJPG" --server "$FAKE" job jobcancel --wait --interval 0.05
check "job --wait after a cancel: exit 1, no ETA" \
    rc_and 1 sh -c 'grep -q "job jobcancel canceled: 1/4" "$1" && ! grep -q ETA "$1"' sh "$tmp/err"
run "$ADVJPG" --server "$FAKE" rows job1 -o "$tmp/rows-o.csv"
check "rows ID -o FILE: nothing printed, the CSV in FILE" \
    rc_and 0 sh -c '[ ! -s "$1" ] && cmp -s "$2" "$3"' sh "$tmp/out" "$tmp/rows-o.csv" "$tmp/rows.csv"
run "$ADVJPG" --server "$FAKE" rows jobx -o "$tmp/rows-404.csv"
check "rows ID -o FILE on 404: exit 1, no FILE" \
    rc_and 1 test ! -e "$tmp/rows-404.csv"
run "$ADVJPG" --server "$FAKE" result job1 --wait --interval 0.05
check "result --wait" py 'J[-1]["n"] == 4'

for s in "evaluate.sh imagenet/val gt.txt" "job.sh job1" "result.sh job1" "rows.sh job1" \
    "jobs.sh" "cancel.sh job1"; do
    # shellcheck disable=SC2086 # the words of $s are the script and its arguments
    run env ADVJPG_SERVER="$FAKE" "$scripts/"$s
    check "script $s against the fake server: exit 0 and output" \
        rc_and 0 test -s "$tmp/out"
done
: >"$tmp/fake.log"
run env ADVJPG_SERVER="$FAKE" ADVJPG_TOKEN=tok EPS=1,5 "$scripts/evaluate.sh" 'my "set"' gt.txt
cp "$tmp/fake.log" "$tmp/out"
check "evaluate.sh: the JSON body (quotes escaped) and the token" py 'J[0]["auth"] == "Bearer tok" and
    json.loads(J[0]["body"]) == {"dataset": "my \"set\"", "ground_truth": "gt.txt", "eps": [1, 5]}'
: >"$tmp/fake.log"
run env ADVJPG_SERVER="$FAKE" ATTACK=pgd STEPS=4 ADAPTIVE=eot EOT_QUALITIES=50,90 "$scripts/evaluate.sh" set
cp "$tmp/fake.log" "$tmp/out"
check "ATTACK=pgd ... evaluate.sh: the body's \"attack\" object" py 'json.loads(J[0]["body"])["attack"] == {
    "attack": "pgd", "steps": 4, "adaptive": "eot", "eot_qualities": [50, 90]}'
run env ADVJPG_SERVER="$FAKE" "$scripts/job.sh" nosuch
check "job.sh on 404: exit 1 with the error body" rc_and 1 grep -q "no such thing" "$tmp/out"
check "job.sh on 404: the body ends its line; curl's message on stderr" \
    sh -c '[ "$(tail -c 1 "$1" | od -An -c | tr -d " ")" = "\\n" ] && grep -q "^curl: (22)" "$2"' \
    sh "$tmp/out" "$tmp/err"
if command -v script >/dev/null 2>&1; then
    run script -qec "ADVJPG_SERVER='$FAKE' '$scripts/job.sh' nosuch" /dev/null
    check "job.sh on 404 on a terminal: curl's message on a line of its own" \
        grep -q "^curl: (22)" "$tmp/out"
fi
: >"$tmp/fake.log"
run env ADVJPG_SERVER="$FAKE" "$scripts/evaluate.sh" 'back\slash	tab' gt.txt
cp "$tmp/fake.log" "$tmp/out"
check "evaluate.sh: a backslash and a tab in the JSON body (jq)" py \
    'json.loads(J[0]["body"]) == {"dataset": "back\\slash\ttab", "ground_truth": "gt.txt", "eps": [1, 5, 10]}'

# ---- the live daemon ---------------------------------------------------------

if [ -z "$ADVJPGD" ] || [ ! -x "$ADVJPGD" ]; then
    skip "no advjpgd (set ADVJPGD): the live daemon tests"
    echo "test_client: $checks checks, $failures failed, $skipped skipped"
    [ "$failures" -eq 0 ] || exit 1
    exit 77
fi

# a data set for the evaluation jobs: two images and their labels
mkdir -p "$tmp/data/set"
cp "$tmp/img.ppm" "$tmp/img.png" "$tmp/data/set/"
printf 'img.png\t3\nimg.ppm\t3\n' >"$tmp/data/set/labels.txt"
lib_daemon live --data-root "$tmp/data"
LIVE=http://127.0.0.1:$port
export ADVJPG_SERVER="$LIVE"

run "$ADVJPG" health
check "health" py 'J == [{"status": "ok"}]'
run "$ADVJPG" models
check "models: the tiny model" py 'J[0]["name"] == "tiny"'
run "$ADVJPG" metrics
check "metrics: Prometheus text" rc_and 0 grep -q "^# TYPE " "$tmp/out"

run "$ADVJPG" classify "$jpg"
check "classify one image" py 'len(J) == 1 and J[0]["file"] == A[0] and
    0 <= J[0]["label"] < 10 and 0 <= J[0]["prob"] <= 1 and len(J[0]["top"]) == 5 and
    J[0]["width"] == 48 and J[0]["height"] == 40 and J[0]["model"] == "tiny"' "$jpg"
check "classify: compact JSON (one line) when piped" lines_of "$tmp/out" 1
run "$ADVJPG" classify --top-k 3 "$jpg" "$tmp/img.png" "$tmp/img.ppm"
check "classify three images (JPEG, PNG, PPM): one object each, in order" \
    py '[j["file"] for j in J] == A and all(len(j["top"]) == 3 for j in J)' \
    "$jpg" "$tmp/img.png" "$tmp/img.ppm"
check "classify: PNG and PPM of the same pixels agree" py 'J[1]["top"] == J[2]["top"]'
run "$ADVJPG" classify "$tmp/img.png" "$tmp/broken.jpg" "$tmp/img.ppm"
check "classify with a broken image: exit 1, the others still classified" \
    py 'len(J) == 3 and "label" in J[0] and J[1]["status"] == 400 and "error" in J[1] and "label" in J[2]'
check "classify with a broken image: one line naming it" \
    server_error "broken.jpg: server answered 400: "

rm -rf "$tmp/adv"
run "$ADVJPG" attack "$jpg" --eps 1,2 --quality 75 --seed 1 --out "$tmp/adv"
check "attack --out: exit 0" rc_is 0
check "attack: results for x, JPG(x) and three per eps" py '[r["transform"] for r in J[0]["results"]] ==
    ["x", "JPG(x)", "Adv1(x)", "JPG(Adv1(x))", "JPGnoise(Adv1(x))",
     "Adv2(x)", "JPG(Adv2(x))", "JPGnoise(Adv2(x))"] and J[0]["eps"] == [1, 2]'
check "attack --out: \"files\" instead of base64 \"images\"" \
    py '"images" not in J[0] and J[0]["files"]["JPG(Adv1(x))"].endswith("/adv/JPG(Adv1(x)).png")'
check "attack --out: Adv1(x).png is a PNG" is_png "$tmp/adv/Adv1(x).png"
check "attack --out: JPG(Adv1(x)).png is a PNG" is_png "$tmp/adv/JPG(Adv1(x)).png"
check "attack --out: every listed file is a PNG in DIR" py 'len(J[0]["files"]) >= 7 and all(
    p.startswith(A[0]) and open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    for p in J[0]["files"].values())' "$tmp/adv/"
check "attack --out: nothing but PNGs in DIR" only_pngs "$tmp/adv"
rm -rf "$tmp/adv2"
cp "$tmp/img.ppm" "$tmp/a1.ppm"
cp "$tmp/img.png" "$tmp/c1.png"
run "$ADVJPG" attack "$tmp/a1.ppm" "$tmp/broken.jpg" "$tmp/c1.png" --eps 1 --out "$tmp/adv2"
check "attack of three images, one broken: exit 1, one object per image in order" \
    py '[j["file"] for j in J] == A and J[1]["status"] == 400 and
        len(J[0]["results"]) == 5 and len(J[2]["results"]) == 5' \
    "$tmp/a1.ppm" "$tmp/broken.jpg" "$tmp/c1.png"
check "attack of three images: one line about the broken one" server_error "broken.jpg: server answered 400: "
check "attack --out with several images: DIR/<name>/<transform>.png" \
    sh -c 'for n in a1 c1; do [ -f "$1/$n/JPG(Adv1(x)).png" ] || exit 1; done' sh "$tmp/adv2"
run "$ADVJPG" attack "$jpg" --eps 5
check "attack without --out: no images" py '"images" not in J[0] and "files" not in J[0] and
    len(J[0]["results"]) == 5'
run "$ADVJPG" attack "$jpg" --eps 5 --seed 4294967297
check "attack --seed beyond 32 bits" py 'J[0]["seed"] == 4294967297'
run "$ADVJPG" attack "$jpg" --eps 5 --attack pgd --steps 3 --adaptive bpda
check "attack --attack pgd --adaptive bpda (live): the fields, the norms, the threat model" py '
    J[0]["attack"] == "pgd" and J[0]["steps"] == 3 and J[0]["adaptive"] == "bpda" and
    J[0]["threat_model"].startswith("adaptive: BPDA through JPG_q at q=75") and
    all(r["attack"] == "pgd" for r in J[0]["results"]) and
    0 < J[0]["results"][2]["linf"] <= 5 and J[0]["results"][3]["l2"] == J[0]["results"][2]["l2"]'
run "$ADVJPG" attack "$jpg" --eps 5 --steps 3
check "attack --steps with fgsm (live): the server's 400 names steps" server_error "server answered 400: steps"
run "$ADVJPG" attack "$jpg" --eps 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
check "attack: the server's own limit on eps, reported in one line" server_error "server answered 400: eps"

if [ "$have_cjpeg" = 1 ]; then
    run "$ADVJPG" recompress "$tmp/img.ppm" -q 75 -o "$tmp/out75.jpg"
    check "recompress: exit 0, nothing printed" rc_and 0 out_empty
    check "recompress -q 75 == cjpeg -quality 75, byte for byte" cmp -s "$tmp/out75.jpg" "$tmp/ref75.jpg"
    run "$ADVJPG" recompress "$tmp/img.png" -q 75 -o -
    check "recompress -o - (PNG in) == cjpeg -quality 75" cmp -s "$tmp/out" "$tmp/ref75.jpg"
    run env ADVJPG_SERVER="$LIVE" "$scripts/recompress.sh" "$tmp/img.ppm" 75 "$tmp/script75.jpg"
    check "recompress.sh == cjpeg -quality 75" cmp -s "$tmp/script75.jpg" "$tmp/ref75.jpg"
fi
run "$ADVJPG" recompress "$tmp/img.ppm" -q 75 --json
check "recompress --json: x and JPG(x), the JPEG in base64" \
    py '[r["transform"] for r in J[0]["results"]] == ["x", "JPG(x)"] and J[0]["jpeg"].startswith("/9j/")'
if [ "$have_cjpeg" = 1 ]; then
    run "$ADVJPG" recompress "$tmp/img.ppm" -q 75 --json -o "$tmp/json75.jpg"
    check "recompress --json -o: \"file\" instead of \"jpeg\"" py '"jpeg" not in J[0] and J[0]["file"] == A[0]' \
        "$tmp/json75.jpg"
    check "recompress --json -o: the JPEG == cjpeg -quality 75" cmp -s "$tmp/json75.jpg" "$tmp/ref75.jpg"
fi

run "$scripts/health.sh"
check "health.sh" py 'J == [{"status": "ok"}]'
run "$scripts/models.sh"
check "models.sh" py 'J[0]["name"] == "tiny"'
run "$scripts/metrics.sh"
check "metrics.sh" rc_and 0 grep -q "^# TYPE " "$tmp/out"
run "$scripts/classify.sh" "$jpg"
check "classify.sh" py '0 <= J[0]["label"] < 10 and len(J[0]["top"]) == 5'
run "$scripts/attack.sh" "$jpg" 1,2
check "attack.sh" py 'len(J[0]["results"]) == 8 and "images" not in J[0]'
run env ATTACK=bim STEPS=2 ADAPTIVE=bpda "$scripts/attack.sh" "$jpg" 3
check "ATTACK=bim STEPS=2 ADAPTIVE=bpda attack.sh" py 'J[0]["attack"] == "bim" and J[0]["steps"] == 2 and
    J[0]["adaptive"] == "bpda" and 0 < J[0]["results"][2]["linf"] <= 3'
run env ATTACK=cw "$scripts/attack.sh" "$jpg" 3
check "ATTACK=cw attack.sh: usage error" rc_is 2
run "$scripts/classify.sh" "$tmp/broken.jpg"
check "classify.sh on 400: exit 1" rc_is 1

# evaluation jobs, live
run "$ADVJPG" evaluate --dataset set --eps 1,2 --seed 3 --wait --interval 0.05
check "evaluate --wait (live): exit 0 and the result table" py 'len(J) == 1 and J[0]["n"] == 2 and
    J[0]["complete"] and J[0]["eps"] == [1, 2] and J[0]["seed"] == 3 and
    [r["transform"] for r in J[0]["table"]] == ["x", "JPG(x)", "Adv1(x)", "JPG(Adv1(x))",
        "JPGnoise(Adv1(x))", "Adv2(x)", "JPG(Adv2(x))", "JPGnoise(Adv2(x))"] and
    all(r["top1"] in (0.0, 0.5, 1.0) and 0 <= r["mean_top_label_prob"] <= 1 for r in J[0]["table"])'
check "evaluate --wait (live): progress on stderr" grep -q "^advjpg: job [0-9a-f]* done: 2/2 (100%)" "$tmp/err"
jid=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/out")
run "$ADVJPG" job "$jid"
check "job ID (live)" py 'J[0]["id"] == A[0] and J[0]["status"] == "done" and J[0]["done"] == 2 and
    J[0]["total"] == 2 and J[0]["dataset"] == "set"' "$jid"
run "$ADVJPG" result "$jid"
check "result ID (live)" py 'J[0]["id"] == A[0] and J[0]["n"] == 2 and len(J[0]["table"]) == 8 and
    "whisker_high" in J[0]["table"][0]["box"]' "$jid"
run "$ADVJPG" rows "$jid"
check "rows ID (live): the CSV, a header and one row per image" \
    rc_and 0 "$PYTHON" -c 'import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
sys.exit(not (rows[0][:5] == ["file", "truth", "label_x", "x:prob", "x:label"] and
              len(rows[0]) == 3 + 2 * 8 + 3 * 2 and [r[0] for r in rows[1:]] == ["img.png", "img.ppm"] and
              all(r[1] == "3" for r in rows[1:])))' "$tmp/out"
cp "$tmp/out" "$tmp/rows-live.csv"
run "$ADVJPG" rows "$jid" -o "$tmp/rows-live-o.csv"
check "rows ID -o FILE (live): the same CSV" rc_and 0 cmp -s "$tmp/rows-live.csv" "$tmp/rows-live-o.csv"
run "$ADVJPG" jobs
check "jobs (live)" py 'A[0] in [j["id"] for j in J[0]["jobs"]]' "$jid"
run "$ADVJPG" cancel "$jid"
check "cancel of a finished job (live): it stays done" py 'J[0]["status"] == "done"'
run "$ADVJPG" evaluate --dataset set --limit 1
check "evaluate without --wait (live): queued" py 'J[0]["status"] == "queued" and len(J[0]["id"]) == 16'
jid2=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/out")
run "$ADVJPG" cancel "$jid2"
check "cancel (live): canceled, or done if it was quicker" py 'J[0]["status"] in ("canceled", "done")'
run "$ADVJPG" evaluate --dataset ../etc
check "evaluate outside the data root (live): 400 in one line" \
    server_error "server answered 400: dataset '../etc': '..' components are not allowed"
run "$ADVJPG" job 0123456789abcdef
check "job of an unknown id (live): 404" server_error "server answered 404: no such job"
run "$ADVJPG" result "$jid" --wait --interval 0.05
check "result --wait (live)" py 'J[-1]["n"] == 2'

# uploads (multipart image fields and a labels field)
mkdir -p "$tmp/up"
cp "$tmp/img.png" "$tmp/up/b.png"
cp "$tmp/img.ppm" "$tmp/up/a.ppm"
cp "$tmp/img.png" "$tmp/up/c.png"
cp "$tmp/notes.txt" "$tmp/up/"
printf 'a.ppm\t1\nb.png\t2\nc.png\t4\n' >"$tmp/up/labels.txt"
printf 'a.ppm\t7\nb.png\t7\nc.png\t7\n' >"$tmp/labels7.txt"
# rows_are FILE:TRUTH...: the rows CSV in $tmp/out has these files and truths, in order
rows_are() {
    "$PYTHON" -c 'import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
sys.exit(not (rows[0][:3] == ["file", "truth", "label_x"] and
              [r[0] + ":" + r[1] for r in rows[1:]] == sys.argv[2:]))' "$tmp/out" "$@"
}
run "$ADVJPG" evaluate "$tmp/up/c.png" "$tmp/up/a.ppm" --labels "$tmp/labels7.txt" --eps 1,2 \
    --seed 3 --wait --interval 0.05
check "evaluate IMG... --labels --wait (live): the result with top-1" py 'len(J) == 1 and
    J[0]["n"] == 2 and J[0]["eps"] == [1, 2] and J[0]["seed"] == 3 and
    all(r["top1"] is not None for r in J[0]["table"])'
jid=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/out")
run "$ADVJPG" rows "$jid"
check "evaluate IMG... --labels (live): the images and their labels" rows_are a.ppm:7 c.png:7
run "$ADVJPG" evaluate --upload "$tmp/up" --wait --interval 0.05
check "evaluate --upload DIR (live): every image, labels.txt used" \
    py 'J[0]["n"] == 3 and J[0]["table"][0]["top1"] is not None'
jid=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/out")
run "$ADVJPG" rows "$jid"
check "evaluate --upload DIR (live): rows of a.ppm, b.png, c.png with labels.txt's classes" \
    rows_are a.ppm:1 b.png:2 c.png:4
run "$ADVJPG" evaluate --upload "$tmp/up" --eps 2 --attack bim --steps 2 --adaptive bpda --wait \
    --interval 0.05
check "evaluate --upload --attack bim --adaptive bpda (live): the attack in the result and its rows" \
    py 'J[0]["attack"] == {"attack": "bim", "adaptive": "bpda", "steps": 2, "step_size": 1} and
    J[0]["threat_model"].startswith("adaptive: BPDA") and
    all(r["attack"] == "bim" for r in J[0]["table"]) and 0 < J[0]["table"][2]["linf"] <= 2'
jid=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/out")
run "$ADVJPG" rows "$jid"
check "evaluate --attack --adaptive (live): the norm columns, then the twin's (BIM-2) columns" \
    sh -c 'head -1 "$1" | grep -q ",JPGnoise(Adv2(x)):label,Adv2(x):linf,Adv2(x):l2,Adv2(x):psnr,Adv2(x) BIM-2:prob,.*,JPGnoise(Adv2(x)) BIM-2:label,Adv2(x) BIM-2:linf,Adv2(x) BIM-2:l2,Adv2(x) BIM-2:psnr\$"' sh "$tmp/out"
run "$ADVJPG" evaluate --upload "$tmp/up" --offset 1 --limit 2 --shard 1/2 --wait --interval 0.05
jid=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/out")
run "$ADVJPG" rows "$jid"
check "evaluate --upload DIR --offset 1 --limit 2 --shard 1/2 (live): the slice c.png" \
    rows_are c.png:4
run "$ADVJPG" evaluate "$tmp/up/a.ppm" --labels "$tmp/notes.txt"
check "evaluate with a bad labels file (live): the server's 400 in one line" \
    server_error "server answered 400: labels line 1"
run "$ADVJPG" jobs --status done
check "jobs --status done (live): only done jobs, the last one among them" py \
    'len(J[0]["jobs"]) >= 3 and all(j["status"] == "done" for j in J[0]["jobs"]) and
     any(j["id"] == "'"$jid"'" for j in J[0]["jobs"])'
run "$ADVJPG" delete "$jid"
check "delete ID (live): deleted" py 'J[0]["deleted"] is True'
run "$ADVJPG" job "$jid"
check "job ID after delete (live): 404" server_error "server answered 404"
run "$ADVJPG" jobs
check "jobs after delete (live): not listed" py 'all(j["id"] != "'"$jid"'" for j in J[0]["jobs"])'

kill "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
run "$ADVJPG" health
check "server down: exit 1, one line" \
    server_error "advjpg: cannot connect to $LIVE: Connection refused"
run "$scripts/health.sh"
check "health.sh with the server down: exit 1" rc_is 1

# ---- a daemon with a token ----------------------------------------------------

lib_daemon token --token s3cret
export ADVJPG_SERVER="http://127.0.0.1:$port"
unset ADVJPG_TOKEN
run "$ADVJPG" health
check "token: /health needs none" rc_is 0
run "$ADVJPG" models
check "token: none given: 401 in one line" server_error "advjpg: server answered 401: "
run "$ADVJPG" --token wrong models
check "token: wrong one: 401" server_error "server answered 401: "
run "$ADVJPG" classify --token wrong "$jpg"
check "token: wrong one after the command: 401, nothing on stdout" \
    rc_and 1 out_empty
run "$ADVJPG" --token s3cret models
check "token: --token" rc_is 0
run env ADVJPG_TOKEN=s3cret "$ADVJPG" classify "$jpg"
check "token: \$ADVJPG_TOKEN" rc_is 0
printf 's3cret\n' >"$tmp/token"
run "$ADVJPG" --token-file "$tmp/token" models
check "token: --token-file" rc_is 0
run "$scripts/models.sh"
check "models.sh without the token: exit 1" rc_is 1
run env ADVJPG_TOKEN=s3cret "$scripts/models.sh"
check "models.sh with \$ADVJPG_TOKEN" py 'J[0]["name"] == "tiny"'
run env ADVJPG_TOKEN=s3cret "$scripts/classify.sh" "$jpg"
check "classify.sh with \$ADVJPG_TOKEN" py '"top" in J[0]'
# a daemon without --data-root, as a user starts it: uploads still evaluate
run env ADVJPG_TOKEN=s3cret "$ADVJPG" evaluate --upload "$tmp/up" --eps 1 --wait --interval 0.05
check "evaluate --upload on a daemon without --data-root, with the token" \
    py 'J[0]["n"] == 3 and J[0]["complete"]'
run "$ADVJPG" evaluate --upload "$tmp/up"
check "evaluate --upload without the token: 401" server_error "server answered 401: "

echo "test_client: $checks checks, $failures failed, $skipped skipped"
[ "$failures" -eq 0 ]
