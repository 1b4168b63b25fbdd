#!/usr/bin/env bash
# The main job on local defaults: starts PostgreSQL, a local chain (anvil), the indexer and two
# hospitals' gatekeepers, deploys the registries with the medrec CLI, generates a simulated
# population (carebundle, fixed seed) and loads each patient's FHIR records into one of the two
# hospitals with their pointers anchored, then walks through the story: a patient grants,
# hospital A stores a record, hospital B is refused, then granted, resolves and verifies it,
# break-glass shows, a revocation refuses B again, a guardian acts for a minor, the patient
# reads the timeline (indexer) and hospital A's access log (checked against its on-chain
# anchor), and a researcher's study collects opt-ins and pulls noised aggregates. It ends with the
# run's figures. Re-running reuses what is up and what was loaded.
# `script/demo.sh stop` stops what it started.
# Usage: script/demo.sh [--patients N]   (default 2000; MEDREC_PATIENTS works too)
# Environment: MEDREC_RPC_PORT (default 8545), MEDREC_INDEXER_PORT (default 8600),
# MEDREC_GATEKEEPER_A_PORT and _B_PORT (8701, 8702), MEDREC_CHAIN_ID (31337),
# MEDREC_DB_PREFIX (medrec: databases medrec_demo, medrec_a, medrec_b),
# MEDREC_STATE_DIR (default .medrec), MEDREC_PATIENTS, MEDREC_SEED (default 42).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/node_modules/@foundry-rs
anvil=$bin/anvil-linux-amd64/bin/anvil
cast=$bin/cast-linux-amd64/bin/cast
port=${MEDREC_RPC_PORT:-8545}
indexer_port=${MEDREC_INDEXER_PORT:-8600}
indexer_url=http://127.0.0.1:$indexer_port
chain_id=${MEDREC_CHAIN_ID:-31337}
gk_a=http://127.0.0.1:${MEDREC_GATEKEEPER_A_PORT:-8701}
gk_b=http://127.0.0.1:${MEDREC_GATEKEEPER_B_PORT:-8702}
db=${MEDREC_DB_PREFIX:-medrec}
state=$root/${MEDREC_STATE_DIR:-.medrec}
rpc=http://127.0.0.1:$port
# anvil's first well-known development key: the local chain's funded governance account.
dev_key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80

patients=${MEDREC_PATIENTS:-2000}
seed=${MEDREC_SEED:-42}
if [[ ${1:-} == --patients ]]; then
  patients=${2:-}
  shift 2 || true
fi
if [[ -n ${1:-} && ${1:-} != stop ]]; then
  echo "demo: unknown argument ${1}; usage: script/demo.sh [--patients N] | stop" >&2
  exit 2
fi
if ! [[ $patients =~ ^[0-9]+$ ]] || ((patients < 10 || patients > 100000)); then
  echo "demo: --patients must be a whole number from 10 to 100000 (got '$patients')" >&2
  exit 2
fi
demo_started=$(date +%s)

if [[ -n ${MEDREC_STATE_DIR:-} ]]; then stop_cmd="MEDREC_STATE_DIR=$MEDREC_STATE_DIR script/demo.sh stop"; else stop_cmd="make stop"; fi

die() {
  echo "demo: FAILED: $*" >&2
  [[ -f $state/anvil.pid ]] && echo "demo: left running: anvil at $rpc" >&2
  [[ -f $state/indexer.pid ]] && echo "demo: left running: the indexer at $indexer_url" >&2
  [[ -f $state/gatekeeper-a.pid ]] && echo "demo: left running: hospital A's gatekeeper at $gk_a" >&2
  [[ -f $state/gatekeeper-b.pid ]] && echo "demo: left running: hospital B's gatekeeper at $gk_b" >&2
  echo "demo: stop them with: $stop_cmd" >&2
  exit 1
}
step() { printf '\n== %s\n' "$*"; }
mkdir -p "$state"

if [[ ${1:-} == stop ]]; then
  rm -f "$state/study-id"
  for svc in gatekeeper-a gatekeeper-b indexer anvil; do
    if [[ -f $state/$svc.pid ]] && kill "$(cat "$state/$svc.pid")" 2>/dev/null; then
      echo "demo: stopped $svc (pid $(cat "$state/$svc.pid"))"
    fi
    rm -f "$state/$svc.pid"
  done
  echo "demo: PostgreSQL is left running (it is the system's cluster)"
  exit 0
fi

[[ -x $anvil ]] || die "Foundry is not installed: run 'make install'"

step "Building the medrec CLI, the indexer, the gatekeeper and the population simulator"
cargo build --locked -q -p medrec-cli -p medrec-indexer -p medrec-gatekeeper -p medrec-sim || die "cargo build failed"
make -s "$root/.venv/.installed" >/dev/null || die "the Python tools (carebundle) could not be installed"
medrec_bin=$root/target/debug/medrec
export MEDREC_RPC_URL=$rpc MEDREC_KEYSTORE_DIR=$state/keystores \
  MEDREC_PASSWORD_FILE=$state/password MEDREC_DEPLOYMENTS=$root/deployments \
  MEDREC_INDEXER_URL=$indexer_url

step "Starting PostgreSQL"
base_url=$(script/pg.sh) || die "PostgreSQL could not be started"
db_url=${base_url%/*}/${db}_demo
echo "PostgreSQL at ${base_url%/*}/ (database ${db}_demo)"
medrec() { printf '$ medrec %s\n' "$*"; "$medrec_bin" "$@"; }

step "Starting the local chain"
if "$cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1; then
  echo "a chain already answers at $rpc; using it"
else
  # A block every second, as a consortium chain makes them, so that "now" on chain is the
  # wall clock's (the gatekeepers refuse reads while the latest block is over 30 s old), and
  # one for each transaction as it arrives, so the demo's thousands need not wait for the next.
  nohup "$anvil" --port "$port" --chain-id "$chain_id" --block-time 1 --mixed-mining \
    >"$state/anvil.log" 2>&1 &
  echo $! >"$state/anvil.pid"
  for _ in $(seq 1 100); do
    "$cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$cast" chain-id --rpc-url "$rpc" >/dev/null 2>&1 || die "anvil did not start; see $state/anvil.log"
  echo "anvil at $rpc (log: $state/anvil.log)"
fi

step "Accounts (encrypted keystores in $state/keystores; dev password in $state/password)"
[[ -f $state/password ]] || echo "medrec-dev-only" >"$state/password"
if [[ ! -f $state/keystores/operator ]]; then
  umask 077; echo "$dev_key" >"$state/operator.key"; umask 022
  "$medrec_bin" account import operator --private-key-file "$state/operator.key" >/dev/null
  rm -f "$state/operator.key"
fi
# service-a and service-b: the gatekeepers' own keys (they anchor the access logs).
for name in hospital-a hospital-b service-a service-b patient guardian minor researcher; do
  [[ -f $state/keystores/$name ]] || "$medrec_bin" account new "$name" >/dev/null
  addr=$("$medrec_bin" account address "$name")
  "$cast" rpc --rpc-url "$rpc" anvil_setBalance "$addr" 0x56bc75e2d63100000 >/dev/null
done
medrec account list
A=$("$medrec_bin" account address hospital-a)
B=$("$medrec_bin" account address hospital-b)
P=$("$medrec_bin" account address patient)

step "Operator: deploy the registries"
if "$medrec_bin" -q participant show "$A" >/dev/null 2>&1 && grep -q studyRegistry deployments/$chain_id.json; then
  echo "contracts already deployed (deployments/$chain_id.json)"
else
  medrec -a operator deploy --force || die "deployment failed"
  fresh=1
  rm -f "$state/study-id"
fi

step "Starting the indexer (PostgreSQL mirror and read API at $indexer_url)"
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
if [[ -n ${fresh:-} ]] || ! as_postgres psql -qtAc "SELECT 1 FROM pg_database WHERE datname='${db}_demo'" | grep -q 1; then
  [[ -f $state/indexer.pid ]] && kill "$(cat "$state/indexer.pid")" 2>/dev/null && sleep 0.5
  rm -f "$state/indexer.pid"
  as_postgres psql -qc "DROP DATABASE IF EXISTS ${db}_demo WITH (FORCE)" >/dev/null
  as_postgres psql -qc "CREATE DATABASE ${db}_demo OWNER medrec" >/dev/null
fi
if [[ -f $state/indexer.pid ]] && kill -0 "$(cat "$state/indexer.pid")" 2>/dev/null; then
  echo "the indexer is already running (pid $(cat "$state/indexer.pid"))"
else
  nohup "$root/target/debug/medrec-indexer" --rpc-url "$rpc" --database-url "$db_url" \
    --deployments "$root/deployments" --listen "127.0.0.1:$indexer_port" --no-progress \
    >"$state/indexer.log" 2>&1 &
  echo $! >"$state/indexer.pid"
  for _ in $(seq 1 100); do
    curl -fs "$indexer_url/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "$indexer_url/health" >/dev/null 2>&1 || die "the indexer did not start; see $state/indexer.log"
  echo "indexer at $indexer_url (log: $state/indexer.log)"
fi

# The hospitals' gatekeepers (A at $gk_a, B at $gk_b) start once their holders registered them.
start_gatekeeper() { # name, port, holder
  local name=$1 gport=$2 holder=$3
  if [[ -n ${fresh:-} ]] || ! as_postgres psql -qtAc "SELECT 1 FROM pg_database WHERE datname='${db}_$name'" | grep -q 1; then
    [[ -f $state/gatekeeper-$name.pid ]] && kill "$(cat "$state/gatekeeper-$name.pid")" 2>/dev/null && sleep 0.5
    rm -f "$state/gatekeeper-$name.pid"
    as_postgres psql -qc "DROP DATABASE IF EXISTS ${db}_$name WITH (FORCE)" >/dev/null
    as_postgres psql -qc "CREATE DATABASE ${db}_$name OWNER medrec" >/dev/null
  fi
  [[ -f $state/gatekeeper-$name.key ]] || "$root/target/debug/medrec-gatekeeper" init-key "$state/gatekeeper-$name.key" 2>/dev/null
  if [[ -f $state/gatekeeper-$name.pid ]] && kill -0 "$(cat "$state/gatekeeper-$name.pid")" 2>/dev/null; then
    echo "gatekeeper $name already running"
    return
  fi
  nohup "$root/target/debug/medrec-gatekeeper" serve --holder "$holder" \
    --database-url "${base_url%/*}/${db}_$name" --rpc-url "$rpc" --deployments "$root/deployments" \
    --master-key-file "$state/gatekeeper-$name.key" --listen "127.0.0.1:$gport" \
    --anchor-keystore "$state/keystores/hospital-$name" --anchor-password-file "$state/password" \
    --service-keystore "$state/keystores/service-$name" --service-password-file "$state/password" \
    --anchor-every 2 >"$state/gatekeeper-$name.log" 2>&1 &
  echo $! >"$state/gatekeeper-$name.pid"
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$gport/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$gport/health" >/dev/null 2>&1 || die "gatekeeper $name did not start; see $state/gatekeeper-$name.log"
  echo "gatekeeper $name at http://127.0.0.1:$gport (log: $state/gatekeeper-$name.log)"
}

step "Operator: credential two hospitals as providers"
medrec -a operator participant add "$A" --role provider --ref "Hospital A licence" --for 365d
medrec -a operator participant add "$B" --role provider --ref "Hospital B licence" --for 365d

step "Hospitals: register their gatekeepers on chain (requesters read only there) and their service keys"
medrec -a hospital-a holder register --endpoint "$gk_a" --service-key "$("$medrec_bin" account address service-a)"
medrec -a hospital-b holder register --endpoint "$gk_b" --service-key "$("$medrec_bin" account address service-b)"
start_gatekeeper a "${gk_a##*:}" "$A"
start_gatekeeper b "${gk_b##*:}" "$B"
R=$("$medrec_bin" account address researcher)
medrec -a operator participant add "$R" --role researcher --ref "IRB approval 2026-17" --for 365d

step "Population: $patients simulated patients (carebundle, seed $seed), split between the hospitals"
pop=$state/population
bundles=$state/bundles-$seed-$patients
if [[ ! -f $bundles/.complete ]]; then
  rm -rf "$bundles"; mkdir -p "$bundles"
  # In chunks of 250 (chunk k uses seed + k), so that progress shows; the same every run.
  chunks=$(((patients + 249) / 250))
  for ((k = 0; k < chunks; k++)); do
    n=$((patients - k * 250)); ((n > 250)) && n=250
    "$root/.venv/bin/carebundle" generate --profile mixed --sex mixed --age-range 2-90 \
      --count "$n" --seed $((seed + k)) --out "$bundles/chunk-$(printf %03d "$k")" >>"$state/carebundle.log" 2>&1 ||
      die "carebundle failed; see $state/carebundle.log"
    if [[ -t 1 ]]; then printf '\r  generated %d/%d patients' $((k * 250 + n)) "$patients"
    else printf '  generated %d/%d patients\n' $((k * 250 + n)) "$patients"; fi
  done
  [[ -t 1 ]] && echo
  # One folder of bundles in a fixed order: chunk, then the generator's own order.
  for d in "$bundles"/chunk-*; do
    for f in "$d"/*.json; do mv "$f" "$bundles/$(basename "$d")-$(basename "$f")"; done
    rmdir "$d"
  done
  touch "$bundles/.complete"
else
  echo "bundles of $patients patients already generated ($bundles)"
fi
sim() { printf '$ medrec-sim %s\n' "$*"; "$root/target/debug/medrec-sim" "$@"; }
sim population --bundles "$bundles" --out "$pop" --seed "$seed" --hospitals "a=$A,b=$B" ||
  die "the population could not be set up"

step "Hospitals A and B: import their patients' records (stored at the gatekeeper, pointers anchored in batches)"
medrec -a hospital-a import "$pop/a.manifest.json" --gatekeeper-url $gk_a \
  --report "$pop/import-a.json" || die "hospital A's import failed (run make demo again to finish it)"
medrec -a hospital-b import "$pop/b.manifest.json" --gatekeeper-url $gk_b \
  --report "$pop/import-b.json" || die "hospital B's import failed (run make demo again to finish it)"
first=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))[0]; print(p["address"], p["hospital"], p["records"])' "$pop/patients.json")
echo "patients are listed in $pop/patients.json; the first: $first"

step "Patient: grant hospital A access to labs and notes for 90 days"
medrec -a patient grant "$A" --categories labs,notes --purpose treatment --for 90d
medrec -a patient show-grant "$A"
medrec check --grantee "$A" --category labs --patient "$P"

step "Hospital A: store a lab result at its gatekeeper and anchor it (only a salted commitment goes on chain)"
mkdir -p "$state/records"
record=$state/records/hemoglobin.json
cat >"$record" <<'JSON'
{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"718-7","display":"Hemoglobin"}]},"valueQuantity":{"value":13.2,"unit":"g/dL"}}
JSON
medrec -a hospital-a put "$record" --patient "$P" --category labs --gatekeeper-url $gk_a
RID=$("$medrec_bin" --json -a hospital-a put "$record" --patient "$P" --category labs \
  --gatekeeper-url $gk_a | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["recordId"])')
medrec pointer show "$RID"

step "Hospital B asks hospital A for it without a grant: refused"
if "$medrec_bin" -a hospital-b get "$RID" >/dev/null 2>"$state/refused.txt"; then
  die "hospital B read a record without a grant"
fi
printf '$ medrec -a hospital-b get %s\n%s\n' "$RID" "$(cat "$state/refused.txt")"

step "Patient grants hospital B labs for 30 days; B resolves the record and verifies it"
medrec -a patient grant "$B" --categories labs --for 30d
medrec -a hospital-b get "$RID" --out "$state/records/received-by-b.json"
cat "$state/records/received-by-b.json"; echo
# Resolve latency as a requester sees it: the whole `medrec get` (process, pointer lookup,
# signed request, the gatekeeper's checks against the chain, decryption, the hash check).
times=()
for _ in $(seq 1 10); do
  t0=$(date +%s%N)
  "$medrec_bin" -q -a hospital-b get "$RID" --out "$state/records/received-by-b.json" || die "hospital B could not resolve $RID"
  times+=($((($(date +%s%N) - t0) / 1000000)))
done
resolve_ms=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 5p)
echo "10 more resolves by hospital B: median ${resolve_ms} ms each (the whole medrec get)"

step "Hospital B: emergency (break-glass) access, bounded by policy, justified, visible to the patient"
medrec break-glass policy
medrec -a patient break-glass rule --exclude mental-health,substance-use
reason_file="$state/break-glass-reason.json"
if "$medrec_bin" --json break-glass show "$P" --provider "$B" | grep -q '"open":true'; then
  echo "break-glass already open"
elif ! "$medrec_bin" -a hospital-b break-glass open "$P" --reason "unconscious in the emergency department" \
  --for 4h --salt-out "$reason_file" >"$state/break-glass.txt" 2>&1; then
  # A rerun within the policy's period: the bound itself, shown by its error name.
  grep -q ConsentEmergencyTooFrequent "$state/break-glass.txt" || die "break-glass open: $(cat "$state/break-glass.txt")"
  printf '$ medrec -a hospital-b break-glass open %s ...\n%s\n' "$P" "$(cat "$state/break-glass.txt")"
  rm -f "$reason_file"
else
  printf '$ medrec -a hospital-b break-glass open %s --reason "unconscious in the emergency department" --for 4h --salt-out %s\n' "$P" "$reason_file"
  cat "$state/break-glass.txt"
fi
medrec break-glass show "$P" --provider "$B"
medrec check --grantee "$B" --category mental-health --patient "$P"
if [[ -f $reason_file ]]; then
  # The reason and its salt, handed to the patient and governance, open the commitment.
  medrec break-glass verify-reason --file "$reason_file"
  opening=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$reason_file")
  medrec -a operator break-glass review "$opening" --justified
fi

step "Patient: revoke hospital B; access ends in that block"
"$medrec_bin" -q -a hospital-b break-glass close "$P" 2>/dev/null || true
last=$("$medrec_bin" --json -a patient revoke "$B" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["tx"]["blockNumber"])') ||
  die "revoke failed"
echo "revoked in block $last"
medrec check --grantee "$B" --category labs --patient "$P"
if "$medrec_bin" -a hospital-b get "$RID" >/dev/null 2>"$state/refused.txt"; then
  die "hospital B read a record after the revocation"
fi
printf '$ medrec -a hospital-b get %s\n%s\n' "$RID" "$(cat "$state/refused.txt")"

step "A guardian acts for a minor: named over some categories, grants within them, refused outside"
M=$("$medrec_bin" account address minor)
G=$("$medrec_bin" account address guardian)
medrec -a minor guardian add "$G" --categories demographics,immunizations,labs --for 5y
medrec -a guardian grant "$A" --patient "$M" --categories immunizations,labs --purpose treatment --for 30d
medrec check --grantee "$A" --category immunizations --patient "$M"
if "$medrec_bin" -a guardian grant "$A" --patient "$M" --categories mental-health --for 30d >/dev/null 2>"$state/refused.txt"; then
  die "a guardian granted outside their mandate"
fi
printf '$ medrec -a guardian grant %s --patient %s --categories mental-health --for 30d\n%s\n' "$A" "$M" "$(cat "$state/refused.txt")"

step "Patient: what happened to my records (from the indexer, waiting for block $last)"
medrec -a patient timeline --min-block "$last"
medrec -a patient records --min-block "$last"
medrec -a patient grants --min-block "$last"
# The indexer answers them only to the patient and a guardian they named (signed requests), a
# guardian within their mandate: the minor's grants, narrowed to the guardian's categories;
# hospital B, an outsider to the patient, is refused.
medrec -a guardian grants --patient "$M" --min-block "$last"
if "$medrec_bin" -a hospital-b timeline --patient "$P" >/dev/null 2>"$state/refused.txt"; then
  die "hospital B read the patient's timeline from the indexer"
fi
printf '$ medrec -a hospital-b timeline --patient %s\n%s\n' "$P" "$(cat "$state/refused.txt")"

step "Patient: hospital A's access log of my records, checked against its on-chain anchor"
sleep 3
medrec -a patient access-log --holder "$A" --gatekeeper-url $gk_a

step "Research: a study of type 2 diabetes across both hospitals, over the patients who opt in"
# Each run's two queries spend epsilon 1 each, 2,000,000 of the study's budget in millionths
# of epsilon: once it is spent, a new study.
if [[ -f $state/study-id ]]; then
  left=$("$medrec_bin" --json study show "$(cat "$state/study-id")" | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
n = lambda v: int(v, 0) if isinstance(v, str) else int(v)
print(n(d["budget"]) - n(d["spent"]))') || left=0
  if ((left < 2000000)); then
    echo "study $(cat "$state/study-id")'s budget is spent: the researcher registers a new one"
    rm -f "$state/study-id"
  fi
fi
if [[ ! -f $state/study-id ]]; then
  printf 'Type 2 diabetes by age band and sex; HbA1c distribution. Demo protocol.\n' >"$state/protocol.txt"
  "$medrec_bin" --json -a researcher study register --protocol "$state/protocol.txt" \
    -c conditions,demographics,labs --min-cell 5 --budget 10000000 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["studyId"])' >"$state/study-id.tmp" ||
    die "study registration failed"
  mv "$state/study-id.tmp" "$state/study-id"
fi
S=$(cat "$state/study-id")
echo "study $S registered by the researcher"
if ! "$medrec_bin" --json study show "$S" | grep -q '"status":"approved"'; then
  medrec -a operator study approve "$S"
fi
medrec study show "$S"
# 60% of the simulated patients opt in, each as their own pseudonym for this study (derived from
# their key), with a slot that only their hospital can open; the operator's account relays them
# all, so neither the event, the calldata nor who paid names a patient.
sim opt-in --population "$pop" --study "$S" --share 0.6 || die "the opt-ins could not be relayed"
# The patient too, relayed by the operator (sending from their own account would name them);
# on a second run the registry says they are in already.
medrec -a patient study opt-in "$S" --relayer operator || true
medrec -a patient study mine
# Every answer is noised (epsilon 1, shared by the two hospitals); a cell whose noised count is
# under the study's minimum of 5 is held back, an empty one alike.
medrec -a researcher study query "$S" --condition E11.9 --system icd10-cm --epsilon 1 \
  --holders $A,$B || die "the research query failed"
# HbA1c (%): each patient's value clamped to [3, 15], so that one patient moves the mean by a
# bounded amount.
medrec -a researcher study query "$S" --observation 4548-4 --lower 3 --upper 15 --epsilon 1 \
  --holders $A,$B || die "the research query failed"

step "Indexing rate: a second indexer reads the whole chain into a scratch database"
as_postgres env PGOPTIONS=--client-min-messages=warning psql -qc "DROP DATABASE IF EXISTS ${db}_reindex WITH (FORCE)" >/dev/null
as_postgres psql -qc "CREATE DATABASE ${db}_reindex OWNER medrec" >/dev/null
t0=$(date +%s%N)
"$root/target/debug/medrec-indexer" --rpc-url "$rpc" --database-url "${base_url%/*}/${db}_reindex" \
  --deployments "$root/deployments" --no-api --exit-at-head --no-progress --log-json \
  >"$state/reindex.log" 2>&1 || die "the second indexer failed; see $state/reindex.log"
reindex_ms=$((($(date +%s%N) - t0) / 1000000))
reindex_events=$(python3 -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    try: d=json.loads(l)
    except ValueError: continue
    f=d.get("fields",{})
    if f.get("message")=="indexed": n+=int(f.get("events",0))
print(n)' "$state/reindex.log")
as_postgres env PGOPTIONS=--client-min-messages=warning psql -qc "DROP DATABASE IF EXISTS ${db}_reindex WITH (FORCE)" >/dev/null
echo "$reindex_events events in $reindex_ms ms (debug build; make bench-indexer measures a release build on 200,000 events)"

if [[ -n ${ADVERSARY:-} ]]; then # opt-in: ADVERSARY=1 (make adversary); issue 16's baseline
  step "Adversary: what the whole chain and the indexer's database tell about each patient"
  sim adversary --report-only --database-url "$db_url" --candidates "$state/records,$pop/records" \
    --show-patients 5 || die "the adversary tool failed"
fi

step "Figures of this run"
{
  echo "indexing=$reindex_events events re-read from the chain in $reindex_ms ms, $((reindex_events * 1000 / (reindex_ms > 0 ? reindex_ms : 1))) events/s (debug build)"
  echo "resolve (medrec get)=median ${resolve_ms} ms over 10, as hospital B, end to end"
  echo "demo time=$(($(date +%s) - demo_started)) s on this run"
} >"$state/figures.txt"
"$root/target/debug/medrec-sim" summary --population "$pop" \
  --figures "$pop/import-a.json,$pop/import-b.json,$state/figures.txt" ||
  die "the summary could not be gathered"

cat <<DONE

demo: done. The chain is still running at $rpc with the contracts in deployments/$chain_id.json,
the indexer at $indexer_url (database ${db}_demo), and the gatekeepers of hospital A
($gk_a) and B ($gk_b).
Keep exploring with the same settings:
  export MEDREC_RPC_URL=$rpc MEDREC_KEYSTORE_DIR=$state/keystores MEDREC_PASSWORD_FILE=$state/password
  export MEDREC_INDEXER_URL=$indexer_url
  target/debug/medrec --help
  target/debug/medrec -a patient grant $A --categories labs --for 30d
  target/debug/medrec -a patient timeline      # the indexer answers the patient (or a live guardian) only
  target/debug/medrec -a hospital-a patients    # and a grantee its own list
  target/debug/medrec -a researcher study query $S --condition I10 --system icd10-cm --epsilon 1 --holders $A,$B
The simulated patients are listed in $pop/patients.json (their records in $pop/records).
Stop it with: $stop_cmd
DONE
