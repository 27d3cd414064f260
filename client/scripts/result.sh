#!/bin/sh
# result.sh - a job's Table 1 and box-plot statistics (GET /jobs/ID/result)
# usage: result.sh ID
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args ID 1 1 "$@"
check_id "$1"
api "$server/jobs/$1/result"
echo
