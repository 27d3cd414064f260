#!/bin/sh
# classify.sh - classify an image (POST /classify)
# usage: classify.sh IMG
# TOP_K (default 5): how many classes to list.
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args IMG 1 1 "$@"
image_type "$1"
check_int TOP_K "${TOP_K:-5}" 1 100000
api -H 'Expect:' -H "Content-Type: $type" --data-binary @"$1" \
    "$server/classify?top_k=${TOP_K:-5}"
echo
