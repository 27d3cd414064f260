#!/bin/sh
# demo.sh - the main job: the paper's experiment (Table 1, Figures 3 and 4)
# on the demo image set, run by advjpgd as an evaluation job.
#
# usage: tools/demo.sh [BUILD_DIR [OUT_DIR]] [-- ADVJPGD_OPTION...]
#   BUILD_DIR  the meson build folder (default: build)
#   OUT_DIR    where result.json, rows.csv, figure3.svg and figure4.svg are
#              saved (default: out/demo)
#   -- ...     more advjpgd options, e.g. --model tiny.json --weights tiny.bin
#              (default: none: the embedded model advjpg-shapes from config/)
#
# DATASET (environment, default shapes/demo) is the folder under data/ to
# evaluate, e.g. DATASET=shapes/val for the 2000 held-out images of
# `advjpg-gen --standard data/shapes` (the README's Table 1). ATTACK (default
# none: the paper's FGSM) is the body's "attack" object, e.g.
# ATTACK='{"attack": "pgd", "steps": 10, "adaptive": "bpda"}' (tools/table1-attacks.sh);
# LIMIT (default: all) evaluates the first LIMIT images of DATASET only.
# Generates data/shapes/demo (48 images, seed 3) if it is missing, starts
# advjpgd on a free port of 127.0.0.1 with --data-root data and a temporary
# --jobs-dir, POSTs /evaluate for DATASET with eps 1, 5, 10, shows the
# progress, prints Table 1 as Markdown, saves the outputs, stops the daemon.
# Paths are relative to the source tree. Needs curl and python3.
# Exit status: 0 on success, 1 on any failure (the daemon's log is shown).
set -eu

cd "$(dirname "$0")/.."
build=build
out=out/demo
if [ $# -gt 0 ] && [ "$1" != "--" ]; then build=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then out=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi

die() {
    echo "demo.sh: $*" >&2
    exit 1
}
for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool"
done
[ -x "$build/server/advjpgd" ] || die "no $build/server/advjpgd (build first: ./run.sh build)"

dataset=${DATASET:-shapes/demo}
if [ "$dataset" = shapes/demo ] && [ ! -f data/shapes/demo/labels.txt ]; then
    "$build/tools/advjpg-gen" --out data/shapes/demo --count 48 --seed 3 ||
        die "cannot generate data/shapes/demo"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/advjpg-demo.XXXXXX")
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# json FILE EXPRESSION: a Python expression over J, the file's JSON
json() {
    python3 -c 'import json, sys
J = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
print("" if v is None else v)' "$1" "$2"
}
fail_with_log() {
    echo "demo.sh: $*; advjpgd's log:" >&2
    sed 's/^/  /' "$tmp/advjpgd.log" >&2
    exit 1
}

"$build/server/advjpgd" --listen 127.0.0.1:0 --port-file "$tmp/port" \
    --data-root data --jobs-dir "$tmp/jobs" "$@" >"$tmp/advjpgd.log" 2>&1 &
pid=$!

# ready: the port file is written, then /health answers 200 once the model is loaded
i=0
until [ -s "$tmp/port" ] && curl -sf "http://127.0.0.1:$(cat "$tmp/port")/health" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { pid=""; fail_with_log "advjpgd exited"; }
    i=$((i + 1))
    [ "$i" -lt 1200 ] || fail_with_log "advjpgd not ready after 120 s"
    sleep 0.1
done
url="http://127.0.0.1:$(cat "$tmp/port")"
curl -sf "$url/models" >"$tmp/models.json" || fail_with_log "GET /models failed"
echo "advjpgd: model $(json "$tmp/models.json" 'J["name"]') at $url"

curl -sS -o "$tmp/start.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"dataset\": \"$dataset\", \"eps\": [1, 5, 10]${ATTACK:+, \"attack\": $ATTACK}${LIMIT:+, \"limit\": $LIMIT}}" \
    "$url/evaluate" >"$tmp/code" ||
    fail_with_log "POST /evaluate failed"
[ "$(cat "$tmp/code")" = 202 ] || fail_with_log "POST /evaluate: $(cat "$tmp/start.json")"
id=$(json "$tmp/start.json" 'J["id"]')
curl -sf "$url/jobs/$id" >"$tmp/job.json" || fail_with_log "GET /jobs/$id failed"
echo "job $id: $dataset, eps 1, 5, 10, quality 75, seed 1; $(json "$tmp/job.json" 'J["attack"]["attack"]'):" \
    "$(json "$tmp/job.json" 'J["threat_model"]')"

last=""
while :; do
    curl -sf "$url/jobs/$id" >"$tmp/job.json" || fail_with_log "GET /jobs/$id failed"
    line=$(json "$tmp/job.json" '"%s %d/%d%s" % (J["status"], J["done"], J["total"],
        ", %.1f images/s" % J["images_per_s"] if J["images_per_s"] else "")')
    if [ "$line" != "$last" ]; then
        echo "job $id: $line"
        last=$line
    fi
    case $(json "$tmp/job.json" 'J["status"]') in
        done) break ;;
        failed | canceled) fail_with_log "the job ended: $(json "$tmp/job.json" 'J.get("error")')" ;;
    esac
    sleep 0.2
done

mkdir -p "$out"
for f in result:result.json rows:rows.csv figure3.svg:figure3.svg figure4.svg:figure4.svg; do
    curl -sf "$url/jobs/$id/${f%%:*}" -o "$out/${f#*:}" || fail_with_log "GET /jobs/$id/${f%%:*} failed"
done

echo
echo "Table 1 ($(json "$out/result.json" 'J["n"]') images, model $(json "$out/result.json" 'J["model"]')):"
echo
python3 - "$out/result.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
fmt = lambda v: "n/a" if v is None else "%.2f" % v
print("| transform | top-1 | mean top-label prob |")
print("|---|---|---|")
for row in r["table"]:
    print("| %s | %s | %s |" % (row["transform"], fmt(row["top1"]), fmt(row["mean_top_label_prob"])))
EOF
echo
echo "Figure 3: $out/figure3.svg (was $url/jobs/$id/figure3.svg)"
echo "Figure 4: $out/figure4.svg (was $url/jobs/$id/figure4.svg)"
echo "Rows: $out/rows.csv; table: $out/result.json"

kill -TERM "$pid"
wait "$pid" || fail_with_log "advjpgd did not stop cleanly"
pid=""
exit 0
