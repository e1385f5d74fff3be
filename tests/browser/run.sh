#!/usr/bin/env bash
# Runs the browser suite (tests/browser): playwright-core driving Debian's
# chromium (headless) through every flow of the web page, against a real
# twofactor binary started by the suite itself on a free port.
#
#   tests/browser/run.sh [PATH_TO_BINARY] [extra node --test args...]
#
# PATH_TO_BINARY defaults to target/release/twofactor. Needs Node.js 20+ and
# chromium (Debian's package: /usr/bin/chromium, or set CHROMIUM); installs
# the npm packages from package-lock.json (npm ci). Screenshots of every page
# and the server's log go to tests/browser/artifacts/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${1:-$repo/target/release/twofactor}"
[ "$#" -gt 0 ] && shift
if [ ! -x "$bin" ]; then
    echo "run.sh: no executable at $bin (build it with: cargo build --release)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
    echo "run.sh: no chromium at $chromium (apt-get install chromium, or set CHROMIUM)" >&2
    exit 2
fi

cd "$here"
npm ci --no-audit --no-fund --loglevel=error
rm -rf artifacts
mkdir -p artifacts
export TWOFACTOR_BIN="$bin" CHROMIUM="$chromium"
set +e
node --test --test-concurrency=1 --test-reporter=spec "$@" flows.test.mjs
status=$?
set -e
echo "run.sh: screenshots and server log in $here/artifacts/"
exit "$status"
