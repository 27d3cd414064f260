#!/bin/sh
# recompress.sh - the image as JPEG, byte-identical to cjpeg -quality QUALITY (POST /recompress)
# usage: recompress.sh IMG QUALITY OUT.jpg
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "IMG QUALITY OUT.jpg" 3 3 "$@"
image_type "$1"
check_int QUALITY "$2" 1 100
out=$3
# The answer goes to a temporary file first: OUT.jpg is only ever a whole
# JPEG, and an error answer is shown instead of being saved as the image.
tmp="$out.part.$$"
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
code=$(auth | curl -sS -H @- -H 'Expect:' -H 'Accept: image/jpeg' \
    -H "Content-Type: $type" --data-binary @"$1" \
    -o "$tmp" -w '%{http_code}' \
    "$server/recompress?quality=$2") || exit 1
if [ "$code" != 200 ]; then
    echo "$me: server answered $code: $(cat "$tmp")" >&2
    exit 1
fi
mv -f "$tmp" "$out"
