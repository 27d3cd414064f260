#!/bin/sh
# health.sh - the daemon's readiness (GET /health)
# usage: health.sh
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "" 0 0 "$@"
api "$server/health"
echo
