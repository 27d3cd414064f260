#!/bin/sh
# models.sh - the loaded model (GET /models)
# usage: models.sh
# Environment and exit statuses: see common.sh.
set -eu
. "$(dirname "$0")/common.sh"
args "" 0 0 "$@"
api "$server/models"
echo
