#!/bin/sh
# metrics.sh - the server's Prometheus metrics (GET /metrics)
# usage: metrics.sh
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "" 0 0 "$@"
api "$server/metrics"
