#!/bin/sh
# attack.sh - adversarial images and their JPEG re-compressions (POST /attack)
# usage: attack.sh IMG [EPS_LIST]
# Environment: ADVJPG_SERVER (default http://127.0.0.1:8080), ADVJPG_TOKEN
# (sent as "Authorization: Bearer ..." when set), QUALITY (default 75).
# EPS_LIST defaults to 1,5,10.
# Prints the server's answer; on an HTTP error its {"error": ...} body too.
# Exit status: 0 success, 1 server or connection error, 2 usage error.
set -eu

usage="usage: ${0##*/} IMG [EPS_LIST]"
case ${1:-} in
    -h | --help)
        echo "$usage"
        exit 0
        ;;
esac
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "$usage" >&2
    exit 2
fi
img=$1
eps=${2:-1,5,10}
case $eps in
    '' | *[!0-9,]*)
        echo "${0##*/}: EPS_LIST is integers separated by commas, such as 1,5,10" >&2
        exit 2
        ;;
esac
case ${QUALITY:-75} in
    '' | *[!0-9]*)
        echo "${0##*/}: QUALITY is an integer from 1 to 100" >&2
        exit 2
        ;;
esac
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

# images=1 would add the PNGs as base64 (see advjpg attack --out)
auth | curl -sS --fail-with-body -H @- -H 'Expect:' \
    -H "Content-Type: $type" --data-binary @"$img" \
    "$server/attack?eps=$eps&quality=${QUALITY:-75}&images=0" || exit 1
echo
