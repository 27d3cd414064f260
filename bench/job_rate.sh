#!/bin/sh
# bench/job_rate.sh: an evaluation job's rate against the engine's ideal, measured
# alternately in one run (issue 19).
#
#   bench/job_rate.sh [--images N] [--rounds R] [--seconds S] [--model NAME] [--jpeg FILE]
#
# An evaluation with eps 1,5,10 is 1 gradient pass (forward + backward) and 10
# forward passes per image. Each round times the engine alone (advjpg-bench at
# batch 16 for S seconds: "gradient" and "forward" ms per image) before and
# after (the mean of the two: a shared machine's load drifts) one
# /evaluate job over N JPEGs (500x375, made here with PIL unless --jpeg gives
# one to copy) on advjpgd with the same random weights, and prints one line
#   {"round":1,"job_images_per_s":..,"ideal_images_per_s":..,"ratio":..,
#    "forward_ms":..,"gradient_ms":..,"images":N}
# ideal = 1000 / (gradient_ms + 10 * forward_ms). The job's rate is the
# daemon's own (status images_per_s: images over the run's time, reading and
# decoding included). From the daemon's /metrics over the job, where its time
# went: "worker_idle_share" (the worker waiting with nothing queued, of the
# job's time), its passes' ms per image ("daemon_forward_ms",
# "daemon_gradient_ms": against the engine alone, what the runner's work on
# the same cores costs them), and the runner thread's CPU ms per image by
# stage ("runner_cpu_ms": load, variants, planar, rows). Environment: BUILD
# (default build), ADVJPGD and BENCH (binaries, e.g. another version's advjpgd
# to compare; an advjpgd without these series gives nulls), PORT (default 18431).
set -eu
images=64 rounds=2 seconds=4 model=overfeat-fast jpeg=
while [ $# -gt 0 ]; do
    case $1 in
    --images) images=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --jpeg) jpeg=$2; shift 2 ;;
    *) echo "usage: $0 [--images N] [--rounds R] [--seconds S] [--model NAME] [--jpeg FILE]" >&2; exit 2 ;;
    esac
done
BUILD=${BUILD:-build}
ADVJPGD=${ADVJPGD:-$BUILD/server/advjpgd}
BENCH=${BENCH:-$BUILD/bench/advjpg-bench}
PORT=${PORT:-18431}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

mkdir -p "$tmp/data/set" "$tmp/jobs"
"$BENCH" --model "$model" --batch 1 --seconds 0 --save-weights "$tmp/w" >/dev/null
/usr/bin/python3 - "$tmp/data/set" "$images" "$jpeg" <<'EOF'
import os, shutil, sys
import numpy as np
from PIL import Image
out, n, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(1)
for i in range(n):
    path = os.path.join(out, "img%04d.jpg" % i)
    if src:
        shutil.copy(src, path)
        continue
    # smooth colour fields plus noise: a photograph's JPEG size, not a flat image's
    y, x = np.mgrid[0:375, 0:500] / 60.0
    base = np.stack([np.sin(x * (1 + c) + rng.uniform(0, 6)) * np.cos(y + c) for c in range(3)], -1)
    img = np.clip(128 + 90 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=90)
EOF

"$ADVJPGD" --config /dev/null --model "$model" --weights "$tmp/w" --listen "127.0.0.1:$PORT" \
    --data-root "$tmp/data" --jobs-dir "$tmp/jobs" 2>"$tmp/advjpgd.log" &
pid=$!
for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$PORT/livez" >/dev/null 2>&1 && break
    sleep 0.2
done

engine() { # the engine alone at batch 16, appended to bench.json
    "$BENCH" --model "$model" --weights "$tmp/w" --batch 16 --seconds "$seconds" >>"$tmp/bench.json"
}
snap() { # the /metrics figures the line reports, as one JSON object
    curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '
        /^advjpgd_worker_idle_seconds_total / { printf "\"idle\":%s,", $2 }
        /^advjpgd_compute_seconds_sum\{kind="(forward|gradient)"\}/ {
            split($1, a, "\""); printf "\"c_%s\":%s,", a[2], $2 }
        /^advjpgd_batch_size_sum\{kind="(forward|gradient)"\}/ {
            split($1, a, "\""); printf "\"n_%s\":%s,", a[2], $2 }
        /^advjpgd_job_cpu_seconds_total/ { split($1, a, "\""); printf "\"s_%s\":%s,", a[2], $2 }
        END { printf "\"end\":0\n" }' | sed 's/^/{/; s/$/}/'
}
mean() { jq -s "map(select(.pass == \"$1\") | .ms_per_image) | add / length" "$tmp/bench.json"; }
for r in $(seq "$rounds"); do
    : >"$tmp/bench.json"
    engine
    m0=$(snap)
    id=$(curl -fsS -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/evaluate" \
        -d '{"dataset": "set", "eps": [1, 5, 10]}' | jq -r .id)
    while :; do
        st=$(curl -fsS "http://127.0.0.1:$PORT/jobs/$id")
        case $(printf '%s' "$st" | jq -r .status) in
        done) break ;;
        failed | canceled) echo "job $id: $st" >&2; exit 1 ;;
        esac
        sleep 0.1
    done
    rate=$(printf '%s' "$st" | jq -r .images_per_s)
    m1=$(snap)
    engine
    fwd=$(mean forward) grad=$(mean gradient)
    jq -cn --argjson r "$r" --argjson rate "$rate" --argjson f "$fwd" --argjson g "$grad" \
        --argjson n "$images" --argjson a "$m0" --argjson b "$m1" \
        'def d(k): ($b[k] // 0) - ($a[k] // 0); def r3: . * 1000 | round / 1000;
         def per(x; n): if n > 0 then 1000 * x / n | r3 else null end;
         {round: $r, job_images_per_s: $rate, ideal_images_per_s: (1000 / ($g + 10 * $f)),
          ratio: ($rate * ($g + 10 * $f) / 1000), forward_ms: $f, gradient_ms: $g, images: $n,
          worker_idle_share: (d("idle") * $rate / $n | r3),
          daemon_forward_ms: per(d("c_forward"); d("n_forward")),
          daemon_gradient_ms: per(d("c_gradient"); d("n_gradient")),
          runner_cpu_ms: {load: per(d("s_load"); $n), variants: per(d("s_variants"); $n),
                          planar: per(d("s_planar"); $n), rows: per(d("s_rows"); $n)}}'
done
