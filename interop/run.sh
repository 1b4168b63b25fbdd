#!/usr/bin/env bash
# docs/protocol.md's worked examples, run with independent clients on a fresh anvil:
#  - deploys with script/Deploy.s.sol and reads the gatekeeper's domain with cast (example 1);
#  - check.mjs (viem): the domains through ERC-5267, a grant signed by a patient with no ether
#    and relayed, canRead (example 2);
#  - sign-only.mjs (viem) writes a --sign-only file that the medrec CLI (target/debug/medrec,
#    or $MEDREC_CLI) relays;
#  - when DATABASE_URL is set (a role that may create databases): starts a gatekeeper
#    (target/debug/medrec-gatekeeper, or $MEDREC_GATEKEEPER) on a scratch database and runs
#    read.mjs (viem): an upload, a read checked against the chain, refusals, the access log
#    (example 3); then research.mjs (viem): a study, signed opt-ins, a noised research query
#    and its signed answer, the receipt on chain; then starts the indexer (target/debug/medrec-indexer,
#    or $MEDREC_INDEXER) and runs indexer.mjs: its answers as JavaScript reads them, masks and
#    amounts above 2^53 exact.
# Leaves nothing behind: anvil and the gatekeeper stopped, the deployment file and the scratch
# database removed. viem is pinned in interop/package-lock.json and installed on first run.
# Usage: interop/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/@foundry-rs
forge=${FORGE:-$bin/forge-linux-amd64/bin/forge}
anvil=${ANVIL:-$bin/anvil-linux-amd64/bin/anvil}
cast=${CAST:-$bin/cast-linux-amd64/bin/cast}
gatekeeper=${MEDREC_GATEKEEPER:-target/debug/medrec-gatekeeper}
indexer=${MEDREC_INDEXER:-target/debug/medrec-indexer}
# A chain id of its own, so that the deployment file never replaces the dev chain's (31337) or
# demo-smoke's (31338).
chain_id=31339
deployment=deployments/$chain_id.json
# anvil's first account deploys and governs, its second relays, its third is the gatekeeper's
# holder.
deployer_key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
relayer_key=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
holder=0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC
holder_key=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a

if [[ ! -d interop/node_modules/viem ]]; then
  npm ci --prefix interop --no-audit --no-fund >/dev/null
fi
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits until `$2` contains "$3", or says what `$1` printed and fails.
wait_for_line() {
  for _ in $(seq 200); do
    grep -q "$3" "$2" && return 0
    sleep 0.05
  done
  cat "$2" >&2
  echo "interop: $1 did not start" >&2
  exit 1
}

# Waits until the service `$1` (process `$2`) answers GET /health on port `$3`.
wait_for_health() {
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$3/health" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  cat "$tmp/$1.log" >&2
  echo "interop: the $1 did not start" >&2
  exit 1
}

tmp=$(mktemp -d)
anvil_pid='' gatekeeper_pid='' indexer_pid='' databases=()
cleanup() {
  set +e # clean up everything, whatever fails
  if [[ -n $gatekeeper_pid ]]; then kill "$gatekeeper_pid" 2>/dev/null; wait "$gatekeeper_pid" 2>/dev/null; fi
  if [[ -n $anvil_pid ]]; then kill "$anvil_pid" 2>/dev/null; fi
  if [[ -n $indexer_pid ]]; then kill "$indexer_pid" 2>/dev/null; wait "$indexer_pid" 2>/dev/null; fi
  for db in "${databases[@]}"; do
    psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  done
  rm -rf "$tmp" "$deployment" "broadcast/Deploy.s.sol/$chain_id" "cache/Deploy.s.sol/$chain_id"
}
trap cleanup EXIT

port=$(free_port)
rpc=http://127.0.0.1:$port
"$anvil" --port "$port" --chain-id "$chain_id" >"$tmp/anvil.log" 2>&1 &
anvil_pid=$!
wait_for_line anvil "$tmp/anvil.log" "Listening on"
"$forge" script script/Deploy.s.sol --rpc-url "$rpc" --broadcast --slow \
  --private-key "$deployer_key" >/dev/null
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

# The --sign-only file, written by viem, relayed by the medrec CLI (when built).
medrec=${MEDREC_CLI:-target/debug/medrec}
if [[ -x $medrec ]]; then
  node interop/sign-only.mjs "$rpc" "$deployment" "$tmp/grant.json"
  echo relayer >"$tmp/password"
  echo "${relayer_key#0x}" >"$tmp/relayer.key"
  export MEDREC_KEYSTORE_DIR=$tmp/keystores MEDREC_PASSWORD_FILE=$tmp/password \
    MEDREC_RPC_URL=$rpc MEDREC_DEPLOYMENTS=$deployment
  "$medrec" -q account import relayer --private-key-file "$tmp/relayer.key"
  "$medrec" relay "$tmp/grant.json" -a relayer
  read -r grantee patient < <(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["message"]; print(m["grantee"], m["patient"])' "$tmp/grant.json")
  consent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["consentRegistry"])' "$deployment")
  for category in 3:true 8:true 4:false; do
    got=$("$cast" call --rpc-url "$rpc" "$consent" "canRead(address,address,uint8)(bool)" \
      "$grantee" "$patient" "${category%:*}")
    if [[ $got != "${category#*:}" ]]; then
      echo "interop: after medrec relay, canRead(category ${category%:*}) is $got" >&2
      exit 1
    fi
  done
  echo "interop: medrec relay sent the file viem wrote; canRead follows"
else
  echo "interop: no $medrec (cargo build -p medrec-cli): the --sign-only file was not relayed"
fi

if [[ -z ${DATABASE_URL:-} ]]; then
  echo "interop: DATABASE_URL is not set: the gatekeeper and indexer checks were not run"
  exit 0
fi
for b in "$gatekeeper" "$indexer"; do
  if [[ ! -x $b ]]; then
    echo "interop: no $b (cargo build -p medrec-gatekeeper -p medrec-indexer)" >&2
    exit 1
  fi
done
database=medrec_interop_$port
databases=("$database" "${database}_indexer")
for db in "${databases[@]}"; do psql "$DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null; done
"$gatekeeper" init-key "$tmp/master.key" >/dev/null 2>&1
# The holder's key in a keystore as cast writes it: the gatekeeper signs research answers with it.
echo holder >"$tmp/holder.password"
"$cast" wallet import holder --private-key "$holder_key" --keystore-dir "$tmp/holder" \
  --unsafe-password holder >/dev/null
gk_port=$(free_port)
# research.mjs asks at epsilon 8 so that its few patients' cells are told from noise; a holder
# answers up to epsilon 1 on its defaults.
"$gatekeeper" serve --holder "$holder" --master-key-file "$tmp/master.key" \
  --database-url "${DATABASE_URL%/*}/$database" --rpc-url "$rpc" --deployments "$deployment" \
  --anchor-keystore "$tmp/holder/holder" --anchor-password-file "$tmp/holder.password" \
  --research-max-epsilon 10 \
  --listen "127.0.0.1:$gk_port" >"$tmp/gatekeeper.log" 2>&1 &
gatekeeper_pid=$!
wait_for_health gatekeeper "$gatekeeper_pid" "$gk_port"
node interop/read.mjs "$rpc" "$deployment" "http://127.0.0.1:$gk_port"
node interop/research.mjs "$rpc" "$deployment" "http://127.0.0.1:$gk_port"

ix_port=$(free_port)
"$indexer" --rpc-url "$rpc" --database-url "${DATABASE_URL%/*}/${database}_indexer" \
  --deployments "$deployment" --listen "127.0.0.1:$ix_port" >"$tmp/indexer.log" 2>&1 &
indexer_pid=$!
wait_for_health indexer "$indexer_pid" "$ix_port"
node interop/indexer.mjs "$rpc" "$deployment" "http://127.0.0.1:$ix_port"
