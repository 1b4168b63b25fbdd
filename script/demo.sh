#!/usr/bin/env bash
# The main job on local defaults: start a local chain (anvil) and deploy the registries.
# Re-running reuses what is already up. `script/demo.sh stop` stops what it started.
# Environment: MEDREC_RPC_PORT (default 8545), MEDREC_STATE_DIR (default .medrec).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/@foundry-rs
forge=$bin/forge-linux-amd64/bin/forge
anvil=$bin/anvil-linux-amd64/bin/anvil
cast=$bin/cast-linux-amd64/bin/cast
port=${MEDREC_RPC_PORT:-8545}
state=${MEDREC_STATE_DIR:-.medrec}
rpc=http://127.0.0.1:$port
# anvil's first well-known development key: for the local chain only.
dev_key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80

die() { echo "demo: $*" >&2; exit 1; }
mkdir -p "$state"

if [[ ${1:-} == stop ]]; then
  if [[ -f $state/anvil.pid ]] && kill "$(cat "$state/anvil.pid")" 2>/dev/null; then
    echo "demo: stopped anvil (pid $(cat "$state/anvil.pid"))"
  else
    echo "demo: nothing running"
  fi
  rm -f "$state/anvil.pid"
  exit 0
fi

[[ -x $forge ]] || die "Foundry is not installed: run 'make install'"

if "$cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1; then
  echo "demo: a chain already answers at $rpc; using it"
else
  echo "demo: starting anvil at $rpc (log: $state/anvil.log)"
  nohup "$anvil" --port "$port" --chain-id 31337 >"$state/anvil.log" 2>&1 &
  echo $! >"$state/anvil.pid"
  for _ in $(seq 1 50); do
    "$cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1 || die "anvil did not start; see $state/anvil.log"
fi

chain_id=$("$cast" chain-id --rpc-url "$rpc")
file=deployments/$chain_id.json
if [[ -f $file ]]; then
  addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recordRegistry"])' "$file")
  if [[ $("$cast" code "$addr" --rpc-url "$rpc") != 0x ]]; then
    echo "demo: contracts already deployed ($file)"
    deployed=1
  fi
fi
if [[ -z ${deployed:-} ]]; then
  echo "demo: deploying the registries"
  "$forge" script script/Deploy.s.sol --rpc-url "$rpc" --broadcast --private-key "$dev_key" \
    >"$state/deploy.log" 2>&1 || die "deployment failed; see $state/deploy.log"
fi
cat "$file"
echo
echo "demo: chain $chain_id at $rpc, contracts in $file. Stop with: make stop"
