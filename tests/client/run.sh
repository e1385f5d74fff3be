#!/usr/bin/env bash
# Runs the Python client suite (tests/client) against a real twofactor binary.
#
#   tests/client/run.sh [PATH_TO_BINARY] [extra pytest args...]
#
# PATH_TO_BINARY defaults to target/release/twofactor. Builds and installs
# nothing: it needs `pip install -r tests/client/requirements.txt` and the
# Debian packages oathtool and zbar-tools (librsvg2-bin optional).
# Starts the server on a free port in a temporary directory, exports
# TWOFACTOR_URL, runs pytest, stops the server, and exits with pytest's status.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${1:-$repo/target/release/twofactor}"
[ "$#" -gt 0 ] && shift
if [ ! -x "$bin" ]; then
    echo "run.sh: no executable at $bin (build it with: cargo build --release)" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d "${TMPDIR:-/tmp}/twofactor-client.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    exec 3<&- 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The server's stdout goes through a FIFO so the readiness line can be read
# with a timeout, without polling; stderr (its logs) goes to a file.
mkfifo "$work/stdout"
env -u RUST_LOG "$bin" serve \
    --bind 127.0.0.1:0 \
    --database-url "sqlite://$work/db.sqlite" \
    --encryption-key-file "$work/key" \
    >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
exec 3<"$work/stdout"

url=""
while IFS= read -r -t 60 line <&3; do
    case "$line" in
        "listening on "*) url="${line#listening on }"; break ;;
    esac
done
if [ -z "$url" ]; then
    echo "run.sh: the server exited or did not print 'listening on ...' within 60 s; its stderr:" >&2
    tail -n 50 "$work/stderr" >&2 || true
    exit 2
fi
echo "run.sh: server $bin (pid $server_pid) at $url"

export TWOFACTOR_URL="$url"
export PYTHONDONTWRITEBYTECODE=1
set +e
(cd "$repo" && python3 -m pytest -q -p no:cacheprovider tests/client "$@")
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "run.sh: pytest failed ($status); last server log lines:" >&2
    tail -n 30 "$work/stderr" >&2 || true
fi
exit "$status"
