#!/bin/sh
# cancel.sh - cancel an evaluation job (DELETE /jobs/ID)
# usage: cancel.sh ID
# Environment: ADVJPG_SERVER (default http://127.0.0.1:8080), ADVJPG_TOKEN
# (sent as "Authorization: Bearer ..." when set).
# Prints the server's answer; on an HTTP error its {"error": ...} body too.
# Exit status: 0 success, 1 server or connection error, 2 usage error.
set -eu

usage="usage: ${0##*/} ID"
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
id=$1
case $id in
    '' | *[!A-Za-z0-9._-]*)
        echo "${0##*/}: '$id' is not a job id" >&2
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

auth | curl -sS --fail-with-body -H @- -X DELETE "$server/jobs/$id" || exit 1
echo
