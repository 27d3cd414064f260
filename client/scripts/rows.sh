#!/bin/sh
# rows.sh - a job's rows as CSV, one per image (GET /jobs/ID/rows)
# usage: rows.sh ID
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args ID 1 1 "$@"
check_id "$1"
api "$server/jobs/$1/rows"
