#!/usr/bin/env bash
# Smoke test of the three Lambda binaries under cargo-lambda's emulator:
# a `leadbridge dev` stack (moto + HubSpot simulator), `cargo lambda watch`
# pointed at it, then `cargo lambda invoke` with the sample events.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export LEADBRIDGE_PYTHON="${LEADBRIDGE_PYTHON:-$PWD/.venv/bin/python}"

STACK=target/lambda-smoke/stack.json
LOG=target/lambda-smoke
mkdir -p "$LOG"
rm -f "$STACK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -P $$ 2>/dev/null || true
}
trap cleanup EXIT

cargo build --quiet -p leadbridge -p ingest -p worker -p dlq-alerter
./target/debug/leadbridge dev --stack-file "$STACK" >"$LOG/dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do [ -s "$STACK" ] && break; sleep 0.5; done
[ -s "$STACK" ] || { echo "the local stack did not start"; cat "$LOG/dev.log"; exit 1; }

eval "$(./target/debug/leadbridge env --stack-file "$STACK")"
cargo lambda watch --invoke-port "$PORT" >"$LOG/watch.log" 2>&1 &
pids+=($!)
./target/debug/leadbridge events --stack-file "$STACK" --out "$LOG/events" >/dev/null

invoke() { # function, event file, expected substring
  local out=""
  for _ in $(seq 1 60); do
    if out=$(cargo lambda invoke "$1" --invoke-port "$PORT" --data-file "$2" 2>&1); then break; fi
    sleep 1
  done
  if [[ "$out" != *"$3"* ]]; then
    echo "FAIL: $1 with $2: expected $3, got: $out"; tail -20 "$LOG/watch.log"; exit 1
  fi
  echo "ok: $1 $(basename "$2") → $3"
}
passed=0
invoke ingest "$LOG/events/apigw/post-new-lead.json" '"statusCode":202' && passed=$((passed+1))
invoke ingest "$LOG/events/apigw/post-bad-signature.json" '"statusCode":401' && passed=$((passed+1))
invoke ingest "$LOG/events/apigw/post-invalid-lead.json" '"statusCode":422' && passed=$((passed+1))
invoke worker "$LOG/events/sqs/worker-batch.json" '"batchItemFailures":[]' && passed=$((passed+1))
invoke dlq-alerter "$LOG/events/sqs/dlq-batch.json" '"batchItemFailures":[]' && passed=$((passed+1))
invoke worker "$LOG/events/schedule/hourly-check.json" '"connection":"hubspot"' && passed=$((passed+1))
echo "lambda smoke: $passed passed, 0 failed"
