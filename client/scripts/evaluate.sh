#!/bin/sh
# evaluate.sh - start an evaluation job over a folder under the server's --data-root (POST /evaluate)
# usage: evaluate.sh DATASET [GROUND_TRUTH]
# DATASET and GROUND_TRUTH are paths under the server's --data-root; EPS
# (default 1,5,10) the perturbation sizes; ATTACK, STEPS, STEP_SIZE, ADAPTIVE,
# EOT_QUALITIES the attack (common.sh), sent as the body's "attack" object.
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "DATASET [GROUND_TRUTH]" 1 2 "$@"
eps=${EPS:-1,5,10}
check_eps EPS "$eps"
check_attack
command -v jq >/dev/null 2>&1 || usage_error "needs jq to write the JSON body (Debian: apt-get install jq)"
# jq writes the JSON: any bytes of the names are escaped as JSON wants
body=$(jq -cn --arg dataset "$1" --arg gt "${2:-}" --arg eps "$eps" --arg attack "${ATTACK:-}" \
    --arg steps "${STEPS:-}" --arg step_size "${STEP_SIZE:-}" --arg adaptive "${ADAPTIVE:-}" \
    --arg eot "${EOT_QUALITIES:-}" \
    '{dataset: $dataset} + (if $gt != "" then {ground_truth: $gt} else {} end)
     + {eps: ($eps | split(",") | map(tonumber))}
     + ({attack: $attack, adaptive: $adaptive} | with_entries(select(.value != "")))
       as $words
     | . + ((if $steps != "" then {steps: ($steps | tonumber)} else {} end)
            + (if $step_size != "" then {step_size: ($step_size | tonumber)} else {} end)
            + (if $eot != "" then {eot_qualities: ($eot | split(",") | map(tonumber))} else {} end)
            + $words | if . == {} then {} else {attack: .} end)')
# The answer is {"id": ..., "status": "queued"}; follow it with job.sh ID.
api -H 'Content-Type: application/json' --data-binary "$body" "$server/evaluate"
echo
