#!/usr/bin/env bash
# Gas per whole transaction (21,000 intrinsic and calldata included) on a fresh anvil:
# deploys the registries, runs each operation once and prints gasUsed from the receipts.
# Complements `make gas` (execution gas per call, snapshots/GasTest.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/@foundry-rs
forge=$bin/forge-linux-amd64/bin/forge
anvil=$bin/anvil-linux-amd64/bin/anvil
cast=$bin/cast-linux-amd64/bin/cast
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rpc=http://127.0.0.1:$port
work=$(mktemp -d)
"$anvil" --port "$port" --chain-id 31999 --auto-impersonate >"$work/anvil.log" 2>&1 &
anvil_pid=$!
trap 'kill $anvil_pid 2>/dev/null; rm -rf "$work" deployments/31999.json' EXIT
for _ in $(seq 1 50); do "$cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1 && break; sleep 0.1; done

gov=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
hospital=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
patient=0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC
key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
# A chain id of its own, so that the deployments file of `make demo` is left alone.
out=$("$forge" script script/Deploy.s.sol --rpc-url "$rpc" --broadcast --private-key "$key" 2>&1) ||
  { echo "$out" >&2; exit 1; }
dep=deployments/31999.json
participants=$(python3 -c 'import json; print(json.load(open("'$dep'"))["participantRegistry"])')
consent=$(python3 -c 'import json; print(json.load(open("'$dep'"))["consentRegistry"])')
records=$(python3 -c 'import json; print(json.load(open("'$dep'"))["recordRegistry"])')

send() { # from, to, sig, args... -> prints gasUsed
  local from=$1 to=$2; shift 2
  "$cast" send --rpc-url "$rpc" --unlocked --from "$from" --json "$to" "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["status"]=="0x1", r; print(int(r["gasUsed"],16))'
}
row() { printf '| %-44s | %9s |\n' "$1" "$2"; }
far=$(( $(date +%s) + 400 * 86400 ))
lab=3
h() { "$cast" keccak "$1"; }
# A record's commitment, keccak256(abi.encode(patient, holder, category, content hash, salt)),
# the salt here derived from the content hash (a gatekeeper draws it at random), and its id,
# keccak256(abi.encode(holder, patient, commitment)), as the registry checks.
cm() { "$cast" keccak "$("$cast" abi-encode 'f(address,address,uint8,bytes32,bytes32)' "$1" "$hospital" $lab "$2" "$(h "salt-$2")")"; }
rid() { "$cast" keccak "$("$cast" abi-encode 'f(address,address,bytes32)' "$hospital" "$1" "$2")"; }
ptr() { local c; c=$(cm "$1" "$2"); echo "($(rid "$1" "$c"),$1,$c,$loc,$zero)"; }

echo "| transaction (whole, on anvil)                | gas used  |"
echo "|----------------------------------------------|-----------|"
send $gov "$participants" "issueCredential(address,uint8,bytes32,uint40)" $hospital 1 "$(h licence)" $far >/dev/null
row "grant (new)" "$(send $patient "$consent" "grant(address,address,uint64,uint8,uint40,uint40)" $patient $hospital 8 1 0 $far)"
row "revoke" "$(send $patient "$consent" "revoke(address,address)" $patient $hospital)"
send $patient "$consent" "grant(address,address,uint64,uint8,uint40,uint40)" $patient $hospital 8 1 0 $far >/dev/null
# The same new grant signed by the patient (EIP-712) and relayed by someone else (epoch 0,
# issued now), to a grantee with no relationship yet: the patient's normal path.
patient_key=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
other=0x90F79bf6EB2c4f870365E785982E1f101E93b906
issued=$(date +%s)
cat >"$work/grant.json" <<JSON
{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},
{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],
"Grant":[{"name":"patient","type":"address"},{"name":"grantee","type":"address"},
{"name":"categories","type":"uint64"},{"name":"purpose","type":"uint8"},
{"name":"notBefore","type":"uint40"},{"name":"expiresAt","type":"uint40"},
{"name":"signer","type":"address"},{"name":"epoch","type":"uint24"},
{"name":"issuedAt","type":"uint40"},{"name":"deadline","type":"uint256"}]},
"primaryType":"Grant",
"domain":{"name":"medrec.ConsentRegistry","version":"1","chainId":31999,"verifyingContract":"$consent"},
"message":{"patient":"$patient","grantee":"$other","categories":8,"purpose":1,"notBefore":0,
"expiresAt":$far,"signer":"$patient","epoch":0,"issuedAt":$issued,"deadline":$far}}
JSON
sig=$("$cast" wallet sign --private-key "$patient_key" --data --from-file "$work/grant.json")
row "grantBySig (new, relayed)" "$(send $gov "$consent" "grantBySig(address,address,uint64,uint8,uint40,uint40,address,uint24,uint40,uint256,bytes)" $patient $other 8 1 0 $far $patient 0 "$issued" $far "$sig")"
loc='"https://hospital-a.example/records/1"'
zero=0x0000000000000000000000000000000000000000000000000000000000000000
p1=$(ptr $patient "$(h content-one)")
row "anchor (one pointer)" "$(send $hospital "$records" "anchor((bytes32,address,bytes32,string,bytes32))" "$p1")"
batch=""
for i in $(seq 1 50); do batch+="$(ptr $patient "$(h "c-$i")"),"; done
g=$(send $hospital "$records" "anchorBatch((bytes32,address,bytes32,string,bytes32)[])" "[${batch%,}]")
row "anchorBatch 50, one patient (total)" "$g"
row "anchorBatch 50, one patient (per pointer)" "$((g / 50))"
batch=""
for i in $(seq 1 50); do
  p=$(printf '0x%040x' $((0x5000 + i)))
  "$cast" rpc --rpc-url "$rpc" anvil_setBalance "$p" 0xde0b6b3a7640000 >/dev/null
  send "$p" "$consent" "grant(address,address,uint64,uint8,uint40,uint40)" "$p" $hospital 8 1 0 $far >/dev/null
  batch+="$(ptr "$p" "$(h "e-$i")"),"
done
g=$(send $hospital "$records" "anchorBatch((bytes32,address,bytes32,string,bytes32)[])" "[${batch%,}]")
row "anchorBatch 50, 50 patients (total)" "$g"
row "anchorBatch 50, 50 patients (per pointer)" "$((g / 50))"
row "openEmergencyAccess" "$(send $hospital "$consent" "openEmergencyAccess(address,bytes32,uint40)" 0x00000000000000000000000000000000000000aa "$(h reason)" 3600)"
