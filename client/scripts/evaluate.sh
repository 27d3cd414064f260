#!/bin/sh
# evaluate.sh - start an evaluation job over a folder under the server's --data-root (POST /evaluate)
# usage: evaluate.sh DATASET [GROUND_TRUTH]
# Environment: ADVJPG_SERVER (default http://127.0.0.1:8080), ADVJPG_TOKEN
# (sent as "Authorization: Bearer ..." when set), EPS (default 1,5,10).
# DATASET and GROUND_TRUTH are paths under the server's --data-root.
# Prints the server's answer; on an HTTP error its {"error": ...} body too.
# Exit status: 0 success, 1 server or connection error, 2 usage error.
set -eu

usage="usage: ${0##*/} DATASET [GROUND_TRUTH]"
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
eps=${EPS:-1,5,10}
case $eps in
    '' | *[!0-9,]* | ,* | *, | *,,*)
        echo "${0##*/}: EPS is integers separated by commas, such as 1,5,10" >&2
        exit 2
        ;;
esac
# A JSON string: backslashes and double quotes escaped.
json_str() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}
body="{\"dataset\": $(json_str "$1")"
if [ $# -ge 2 ]; then
    body="$body, \"ground_truth\": $(json_str "$2")"
fi
body="$body, \"eps\": [$eps]}"

server=${ADVJPG_SERVER:-http://127.0.0.1:8080}
server=${server%/}

# The token reaches curl on its standard input (-H @-), not on its command
# line, where other users of the machine could read it.
auth() {
    if [ -n "${ADVJPG_TOKEN:-}" ]; then
        printf 'Authorization: Bearer %s\n' "$ADVJPG_TOKEN"
    fi
}

# The answer is {"id": ..., "status": "queued"}; follow it with job.sh ID.
auth | curl -sS --fail-with-body -H @- \
    -H 'Content-Type: application/json' --data-binary "$body" \
    "$server/evaluate" || exit 1
echo
