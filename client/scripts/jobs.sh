#!/bin/sh
# jobs.sh - the evaluation jobs (GET /jobs)
# usage: jobs.sh
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "" 0 0 "$@"
api "$server/jobs"
echo
