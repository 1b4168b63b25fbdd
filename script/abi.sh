#!/usr/bin/env bash
# Writes the ABI and creation bytecode of each registry from the forge artifacts to
# crates/bindings/abi/<Contract>.json, which the bindings crate compiles with sol!.
# `script/abi.sh --check` writes nothing and fails when the committed files are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
forge=${FORGE:-node_modules/@foundry-rs/forge-linux-amd64/bin/forge}
dest=crates/bindings/abi
"$forge" build --skip test --skip script --skip 'test/**' >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for c in ParticipantRegistry ConsentRegistry RecordRegistry StudyRegistry; do
  python3 - "out/$c.sol/$c.json" "$tmp/$c.json" <<'PY'
import json, sys
art = json.load(open(sys.argv[1]))
out = {"abi": art["abi"], "bytecode": art["bytecode"]["object"]}
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
PY
done
if [[ ${1:-} == --check ]]; then
  if ! diff -r -q "$dest" "$tmp" >/dev/null; then
    diff -r -q "$dest" "$tmp" || true
    echo "abi-check: crates/bindings/abi is stale against contracts/: run 'make abi' and commit" >&2
    exit 1
  fi
  echo "abi-check: crates/bindings/abi matches contracts/"
else
  mkdir -p "$dest"
  cp "$tmp"/*.json "$dest/"
  echo "abi: wrote $dest"
fi
