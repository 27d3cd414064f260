#!/bin/sh
# recompress.sh - re-encode an image as a JPEG of that quality (POST /recompress)
# usage: recompress.sh IMG QUALITY OUT.jpg
# Environment: ADVJPG_SERVER (default http://127.0.0.1:8080), ADVJPG_TOKEN
# (sent as "Authorization: Bearer ..." when set).
# Prints the server's answer; on an HTTP error its {"error": ...} body too.
# Exit status: 0 success, 1 server or connection error, 2 usage error.
set -eu

usage="usage: ${0##*/} IMG QUALITY OUT.jpg"
case ${1:-} in
    -h | --help)
        echo "$usage"
        exit 0
        ;;
esac
if [ $# -ne 3 ]; then
    echo "$usage" >&2
    exit 2
fi
img=$1
quality=$2
out=$3
case $quality in
    '' | *[!0-9]*)
        echo "${0##*/}: QUALITY is an integer from 1 to 100" >&2
        exit 2
        ;;
esac
if [ "$quality" -lt 1 ] || [ "$quality" -gt 100 ]; then
    echo "${0##*/}: QUALITY is an integer from 1 to 100" >&2
    exit 2
fi
if [ ! -f "$img" ] || [ ! -r "$img" ]; then
    echo "${0##*/}: $img: no such readable file" >&2
    exit 2
fi
# The Content-Type from the first bytes, as advjpg does.
magic=$(od -An -tx1 -N4 "$img" | tr -d ' \n')
case $magic in
    ffd8ff*) type=image/jpeg ;;
    89504e47) type=image/png ;;
    5036* | 5035*) type=image/x-portable-pixmap ;;
    *)
        echo "${0##*/}: $img: not a JPEG, PNG or PPM image" >&2
        exit 2
        ;;
esac

server=${ADVJPG_SERVER:-http://127.0.0.1:8080}
server=${server%/}

# The token reaches curl on its standard input (-H @-), not on its command
# line, where other users of the machine could read it.
auth() {
    if [ -n "${ADVJPG_TOKEN:-}" ]; then
        printf 'Authorization: Bearer %s\n' "$ADVJPG_TOKEN"
    fi
}

# The answer goes to a temporary file first: OUT.jpg is only ever a whole
# JPEG, and an error answer is shown instead of being saved as the image.
tmp="$out.part.$$"
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
code=$(auth | curl -sS -H @- -H 'Expect:' -H 'Accept: image/jpeg' \
    -H "Content-Type: $type" --data-binary @"$img" \
    -o "$tmp" -w '%{http_code}' \
    "$server/recompress?quality=$quality") || exit 1
if [ "$code" != 200 ]; then
    echo "${0##*/}: server answered $code: $(cat "$tmp")" >&2
    exit 1
fi
mv -f "$tmp" "$out"
