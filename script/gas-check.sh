#!/usr/bin/env bash
# Re-measures gas per operation (test/Gas.t.sol) and fails when a figure differs from the
# committed snapshots/GasTest.json, printing the difference. The committed file is left as is.
set -euo pipefail
cd "$(dirname "$0")/.."
forge=${FORGE:-node_modules/@foundry-rs/forge-linux-amd64/bin/forge}
committed=$(mktemp)
trap 'rm -f "$committed"' EXIT
cp snapshots/GasTest.json "$committed"
if ! "$forge" test --match-contract GasTest >/dev/null; then
  cp "$committed" snapshots/GasTest.json
  echo "gas-check: a gas target in test/Gas.t.sol is exceeded (run: forge test --match-contract GasTest)" >&2
  exit 1
fi
if ! diff -u "$committed" snapshots/GasTest.json; then
  cp "$committed" snapshots/GasTest.json
  echo "gas-check: gas per operation changed; if intended, run 'make gas' and commit snapshots/GasTest.json" >&2
  exit 1
fi
echo "gas-check: gas per operation matches snapshots/GasTest.json"
