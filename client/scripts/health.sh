#!/bin/sh
# health.sh - whether the server is up with its model loaded (GET /health)
# usage: health.sh
# Environment: ADVJPG_SERVER (default http://127.0.0.1:8080), ADVJPG_TOKEN
# (sent as "Authorization: Bearer ..." when set).
# Prints the server's answer; on an HTTP error its {"error": ...} body too.
# Exit status: 0 success, 1 server or connection error, 2 usage error.
set -eu

usage="usage: ${0##*/}"
case ${1:-} in
    -h | --help)
        echo "$usage"
        exit 0
        ;;
esac
if [ $# -ne 0 ]; then
    echo "$usage" >&2
    exit 2
fi

server=${ADVJPG_SERVER:-http://127.0.0.1:8080}
server=${server%/}

# The token reaches curl on its standard input (-H @-), not on its command
# line, where other users of the machine could read it.
auth() {
    if [ -n "${ADVJPG_TOKEN:-}" ]; then
        printf 'Authorization: Bearer %s\n' "$ADVJPG_TOKEN"
    fi
}

auth | curl -sS --fail-with-body -H @- "$server/health" || exit 1
echo
