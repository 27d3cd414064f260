#!/usr/bin/env bash
# test_openapi_valid.sh - server/openapi.yaml checked by a real OpenAPI
# validator: @apidevtools/swagger-cli from the npm registry, installed into
# a temporary folder (npm's own cache makes later runs fast). Skipped (77)
# with a message when npm is missing or the registry cannot be reached.
set -u
here=$(cd "$(dirname "$0")" && pwd)
yaml=${ADVJPG_OPENAPI:-$here/../server/openapi.yaml}
if ! command -v npm >/dev/null; then
  echo "SKIP: npm is not installed (./run.sh deps installs it)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && timeout 240 npm install --no-audit --no-fund --silent --no-save \
        @apidevtools/swagger-cli@4.0.4 >"$tmp/npm.log" 2>&1); then
  echo "SKIP: npm could not install @apidevtools/swagger-cli:"
  tail -5 "$tmp/npm.log"
  exit 77
fi
"$tmp/node_modules/.bin/swagger-cli" validate "$yaml"
