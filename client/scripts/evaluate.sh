#!/bin/sh
# evaluate.sh - start an evaluation job over a folder under the server's --data-root (POST /evaluate)
# usage: evaluate.sh DATASET [GROUND_TRUTH]
# DATASET and GROUND_TRUTH are paths under the server's --data-root; EPS
# (default 1,5,10) the perturbation sizes.
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "DATASET [GROUND_TRUTH]" 1 2 "$@"
eps=${EPS:-1,5,10}
check_eps EPS "$eps"
# A JSON string: backslashes and double quotes escaped.
json_str() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}
body="{\"dataset\": $(json_str "$1")"
if [ $# -ge 2 ]; then
    body="$body, \"ground_truth\": $(json_str "$2")"
fi
body="$body, \"eps\": [$eps]}"
# The answer is {"id": ..., "status": "queued"}; follow it with job.sh ID.
api -H 'Content-Type: application/json' --data-binary "$body" "$server/evaluate"
echo
