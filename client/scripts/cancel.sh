#!/bin/sh
# cancel.sh - cancel an evaluation job (DELETE /jobs/ID)
# usage: cancel.sh ID
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args ID 1 1 "$@"
check_id "$1"
api -X DELETE "$server/jobs/$1"
echo
