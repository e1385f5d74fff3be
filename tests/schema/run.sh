#!/usr/bin/env bash
# Schema fuzzing: Schemathesis generates requests from the live server's
# /openapi.json and fails on any 5xx, any response the document doesn't
# describe, or a crash. Usage: tests/schema/run.sh [BINARY] (default
# target/release/twofactor). Needs `st` (pip install schemathesis).
set -euo pipefail
bin=${1:-target/release/twofactor}
[ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 2; }
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Cheap hashes and a deep hash queue: the fuzzer measures correctness, not cost.
mkfifo "$work/out"
"$bin" serve --bind 127.0.0.1:0 --database-url "sqlite://$work/db.sqlite" \
  --encryption-key-file "$work/key" --argon2-memory-kib 64 --argon2-iterations 1 \
  --hash-queue 100000 >"$work/out" 2>"$work/server.log" &
server=$!
url=$(timeout 60 sed -n 's/^listening on //p;T;q' "$work/out")
[ -n "$url" ] || { echo "server did not start" >&2; cat "$work/server.log" >&2; exit 2; }
cat "$work/out" >/dev/null &

# A real session, so the bearer-protected operations get past 401 too.
curl -sf "$url/signup" -H 'content-type: application/json' \
  -d '{"username":"fuzz","password":"fuzz-password"}' >/dev/null
token=$(curl -sf "$url/login" -H 'content-type: application/json' \
  -d '{"username":"fuzz","password":"fuzz-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# Two runs: everything but /logout with one session token (so the signed-in
# operations are reached with a live session), then /logout on its own.
run_st() {
  st run "$url/openapi.json" --url "$url" --checks all --max-examples 200 \
    --seed 1 -H "Authorization: Bearer $token" "$@" | tee -a "$work/st.log"
  return "${PIPESTATUS[0]}"
}
set +e
run_st --exclude-path /logout
status=$?
if [ "$status" -eq 0 ]; then
  run_st --include-path /logout
  status=$?
fi
set -e
generated=$(sed -n 's/^ *\([0-9]\+\) generated.*/\1/p' "$work/st.log" | awk '{s+=$1} END {print s+0}')
echo "schemathesis: ${generated:-0} cases generated, exit status $status"
if [ "$status" -ne 0 ]; then tail -30 "$work/server.log" >&2; exit "$status"; fi
if [ "${generated:-0}" -lt 1000 ]; then echo "fewer than 1000 cases generated" >&2; exit 1; fi
