#!/bin/sh
# job.sh - one evaluation job's state and progress (GET /jobs/ID)
# usage: job.sh ID
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args ID 1 1 "$@"
check_id "$1"
api "$server/jobs/$1"
echo
