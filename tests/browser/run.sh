#!/bin/sh
# run.sh - the browser test of the demo page: installs playwright-core from the
# npm registry (npm ci, from package-lock.json; never a browser download) and
# runs demo.test.mjs with node's built-in test runner in headless Chromium,
# against the daemon's own page and API (a tiny model, generated images).
#
# Environment:
#   ADVJPGD      the daemon to test (required)
#   CHROMIUM     the browser (default /usr/bin/chromium, Debian's chromium)
#   SCREENSHOT   where the screenshots go (default tests/browser/demo.png, and
#                demo-evaluate.png, demo-dark.png, demo-phone*.png beside it)
#
# Exit status: 0 passed, 1 failed, 77 (meson: skipped) when node, npm,
# Chromium or the daemon is missing, or npm cannot install playwright-core.
set -u
cd "$(dirname "$0")" || exit 1

if [ -z "${ADVJPGD:-}" ] || [ ! -x "$ADVJPGD" ]; then
    echo "browser test: SKIP: no advjpgd (set ADVJPGD)" >&2
    exit 77
fi
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "browser test: SKIP: no $tool (Debian: nodejs npm)" >&2
        exit 77
    fi
done
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "browser test: SKIP: no ${CHROMIUM:-/usr/bin/chromium} (Debian: chromium)" >&2
    exit 77
fi

# playwright-core never downloads a browser by itself; say so anyway.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD

# Install once per lockfile change.
stamp=node_modules/.advjpg-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    if ! npm ci --no-audit --no-fund --loglevel=error; then
        echo "browser test: SKIP: npm ci failed (is the npm registry reachable?)" >&2
        exit 77
    fi
    cp package-lock.json "$stamp"
fi

exec node --test --test-reporter=spec demo.test.mjs
