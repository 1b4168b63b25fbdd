#!/usr/bin/env bash
# The interop check of docs/protocol.md on a fresh anvil: deploys with script/Deploy.s.sol,
# reads the gatekeeper's domain with cast (the documented command), then runs check.mjs (viem:
# the domains through ERC-5267, a consent grant signed with signTypedData and relayed, canRead).
# Leaves nothing behind: anvil is stopped and the deployment file removed.
# Usage: interop/run.sh   (installs viem, pinned in interop/package-lock.json, on first run)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/@foundry-rs
forge=${FORGE:-$bin/forge-linux-amd64/bin/forge}
anvil=${ANVIL:-$bin/anvil-linux-amd64/bin/anvil}
cast=${CAST:-$bin/cast-linux-amd64/bin/cast}
# A chain id of its own, so that the deployment file never replaces the dev chain's (31337) or
# demo-smoke's (31338).
chain_id=31339
deployment=deployments/$chain_id.json

if [[ ! -d interop/node_modules/viem ]]; then
  npm ci --prefix interop --no-audit --no-fund >/dev/null
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rpc=http://127.0.0.1:$port
log=$(mktemp)
"$anvil" --port "$port" --chain-id "$chain_id" >"$log" 2>&1 &
anvil_pid=$!
trap 'kill "$anvil_pid" 2>/dev/null || true; rm -f "$log" "$deployment"' EXIT
for _ in $(seq 100); do
  grep -q "Listening on" "$log" && break
  sleep 0.1
done
grep -q "Listening on" "$log" || { cat "$log"; echo "interop: anvil did not start" >&2; exit 1; }

# anvil's first account deploys and governs.
"$forge" script script/Deploy.s.sol --rpc-url "$rpc" --broadcast --slow \
  --private-key 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 >/dev/null
registry=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recordRegistry"])' "$deployment")

echo "cast call $registry \"eip712Domain()(bytes1,string,string,uint256,address,bytes32,uint256[])\":"
domain=$("$cast" call --rpc-url "$rpc" "$registry" \
  "eip712Domain()(bytes1,string,string,uint256,address,bytes32,uint256[])" |
  sed 's/ \[[^]]*\]$//') # cast adds a number's scientific form: "31339 [3.133e4]"
echo "$domain" | sed 's/^/  /'
expected="0x0f
\"medrec.Gatekeeper\"
\"1\"
$chain_id
$registry
0x0000000000000000000000000000000000000000000000000000000000000000
[]"
if [[ $domain != "$expected" ]]; then
  echo "interop: cast reads another domain than medrec.Gatekeeper/1/$chain_id/$registry" >&2
  exit 1
fi

node interop/check.mjs "$rpc" "$deployment"
