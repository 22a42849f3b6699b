#!/usr/bin/env bash
# Property-based API test: schemathesis against a herald-server binary and
# the OpenAPI document it serves itself (GET /openapi.json). Fails on any
# 5xx, and on any answer (status, content type, headers, body) that does not
# match the document; see schemathesis.toml for the checks.
#
#   compat/openapi/schemathesis.sh [HERALD_SERVER_BINARY]
#
# The binary defaults to target/debug/herald-server (CARGO_TARGET_DIR
# honoured). SCHEMATHESIS is the command (default: schemathesis on PATH);
# MAX_EXAMPLES bounds the test cases per operation and phase (default 50);
# extra schemathesis options can follow in SCHEMATHESIS_ARGS (e.g.
# "--seed 42"). The server runs on an ephemeral port with a fresh data
# directory and a test app, and is stopped afterwards.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${CARGO_TARGET_DIR:-$root/target}/debug/herald-server}"
schemathesis="${SCHEMATHESIS:-schemathesis}"
if [ ! -x "$bin" ]; then
    echo "schemathesis.sh: no server binary at $bin (cargo build -p herald-server)" >&2
    exit 2
fi

work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# For schemathesis.toml (not HERALD_*: the server reads those).
export SCHEMATHESIS_APP_ID="SCHEMATHESIS"
export SCHEMATHESIS_API_KEY="key-$RANDOM$RANDOM"
# The server, without the caller's HERALD_* settings; its stdout comes
# through fd 3, where it says "herald-server listening on http://ADDR".
unset_herald=()
while IFS= read -r name; do unset_herald+=(-u "$name"); done < <(compgen -e | grep '^HERALD_' || true)
exec 3< <(exec env "${unset_herald[@]}" "$bin" --listen 127.0.0.1:0 --data-dir "$work/data" \
    --app "$SCHEMATHESIS_APP_ID:$SCHEMATHESIS_API_KEY" --log warn 2>"$work/server.log")
pid=$!
base=""
while IFS= read -r -t 30 line <&3; do
    case "$line" in
        "herald-server listening on "*)
            base="${line#herald-server listening on }"
            break
            ;;
    esac
done
if [ -z "$base" ]; then
    echo "schemathesis.sh: the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "server $base (app $SCHEMATHESIS_APP_ID)"

# From the scratch directory: schemathesis keeps its example database in the
# working directory.
status=0
(
    cd "$work"
    # shellcheck disable=SC2086 # SCHEMATHESIS_ARGS is a list of options
    "$schemathesis" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
        --max-examples "${MAX_EXAMPLES:-50}" --no-color ${SCHEMATHESIS_ARGS:-}
) || status=$?
if grep -qi 'panicked' "$work/server.log"; then
    echo "schemathesis.sh: the server panicked:" >&2
    cat "$work/server.log" >&2
    status=1
fi
exit "$status"
