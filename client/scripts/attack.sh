#!/bin/sh
# attack.sh - adversarial images and their JPEG re-compressions (POST /attack)
# usage: attack.sh IMG [EPS_LIST]
# EPS_LIST defaults to 1,5,10; QUALITY (default 75) is the JPEG quality;
# ATTACK, STEPS, STEP_SIZE, ADAPTIVE, EOT_QUALITIES the attack (common.sh),
# e.g. ATTACK=pgd STEPS=10 ADAPTIVE=bpda attack.sh cat.jpg 5
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "IMG [EPS_LIST]" 1 2 "$@"
image_type "$1"
eps=${2:-1,5,10}
check_eps EPS_LIST "$eps"
check_int QUALITY "${QUALITY:-75}" 1 100
check_attack
# images=1 would add the PNGs as base64 (see advjpg attack --out)
api -H 'Expect:' -H "Content-Type: $type" --data-binary @"$1" \
    "$server/attack?eps=$eps&quality=${QUALITY:-75}&images=0$(attack_query)"
echo
