#!/bin/sh
# classify.sh - classify an image (POST /classify)
# usage: classify.sh IMG
# Environment: ADVJPG_SERVER (default http://127.0.0.1:8080), ADVJPG_TOKEN
# (sent as "Authorization: Bearer ..." when set), TOP_K (default 5).
# Prints the server's answer; on an HTTP error its {"error": ...} body too.
# Exit status: 0 success, 1 server or connection error, 2 usage error.
set -eu

usage="usage: ${0##*/} IMG"
case ${1:-} in
    -h | --help)
        echo "$usage"
        exit 0
        ;;
esac
if [ $# -ne 1 ]; then
    echo "$usage" >&2
    exit 2
fi
img=$1
if [ ! -f "$img" ] || [ ! -r "$img" ]; then
    echo "${0##*/}: $img: no such readable file" >&2
    exit 2
fi
# The Content-Type from the first bytes, as advjpg does.
case ${TOP_K:-5} in
    '' | *[!0-9]*)
        echo "${0##*/}: TOP_K is a positive integer" >&2
        exit 2
        ;;
esac
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

auth | curl -sS --fail-with-body -H @- -H 'Expect:' \
    -H "Content-Type: $type" --data-binary @"$img" \
    "$server/classify?top_k=${TOP_K:-5}" || exit 1
echo
