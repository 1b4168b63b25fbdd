#!/usr/bin/env bash
# Runs the benchmarks and rewrites their figures in BENCHMARKS.md, with the machine they ran
# on. Each benchmark's tables go between its markers (<!-- bench:NAME --> ... <!-- /bench:NAME -->);
# the prose around them is kept. A failed benchmark leaves its old figures and makes the run fail.
# Usage: script/bench.sh [gas] [indexer] [gatekeeper] [research]   (default: all four)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/target/bench
mkdir -p "$out"
names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=(gas indexer gatekeeper research)
for n in "${names[@]}"; do
  case $n in gas | indexer | gatekeeper | research) ;; *)
    echo "bench: unknown benchmark '$n' (gas, indexer, gatekeeper, research)" >&2
    exit 2
    ;;
  esac
done
forge=$root/node_modules/@foundry-rs/forge-linux-amd64/bin/forge
if [[ -z ${DATABASE_URL:-} ]]; then
  DATABASE_URL=$(script/pg.sh) || { echo "bench: PostgreSQL could not be started" >&2; exit 1; }
fi
export DATABASE_URL

needs_release=0
for n in "${names[@]}"; do [[ $n != gas ]] && needs_release=1; done
if ((needs_release)); then
  echo "bench: building the release binaries" >&2
  cargo build --locked --release -q -p medrec-cli -p medrec-indexer -p medrec-gatekeeper -p medrec-bench --bins ||
    { echo "bench: cargo build failed" >&2; exit 1; }
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
failed=()
run() { # name, command...: the command's markdown tables go to $out/name.md
  local name=$1
  shift
  echo "bench: $name (load average $(load))" >&2
  local before
  before=$(load)
  if "$@" >"$out/$name.log" 2>"$out/$name.err"; then
    {
      echo "Measured $(date -u +%Y-%m-%dT%H:%MZ); load average $before before, $(load) after."
      echo
      # The tables it printed, a blank line between two tables.
      awk '/^\|/ { if (gap && n) print ""; print; gap = 0; n++; next } { gap = 1 }' "$out/$name.log"
    } >"$out/$name.md"
    cat "$out/$name.md"
    echo
    echo "bench: $name done (whole output: $out/$name.log)" >&2
  else
    echo "bench: $name FAILED (see $out/$name.err); its old figures are kept" >&2
    tail -5 "$out/$name.err" >&2
    failed+=("$name")
    rm -f "$out/$name.md"
  fi
}

gas() {
  "$forge" test --match-contract GasTest -q >/dev/null || return 1
  python3 - <<'PY'
import json
g = json.load(open("snapshots/GasTest.json"))
print("| operation (forge execution gas) | gas |")
print("|---|---:|")
for k, v in g.items():
    print(f"| {k} | {int(v):,} |")
PY
  echo
  script/bench-gas.sh
}

for n in "${names[@]}"; do
  case $n in
    gas) run gas gas ;;
    indexer) run indexer target/release/medrec-indexer-bench ;;
    gatekeeper) run gatekeeper target/release/medrec-gatekeeper-bench ;;
    research) run research target/release/medrec-research-bench ;;
  esac
done

# The machine, then each benchmark's block, into BENCHMARKS.md.
python3 - "$out" "${names[@]}" <<'PY'
import os, platform, re, subprocess, sys
out, names = sys.argv[1], sys.argv[2:]
def first(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        return "unknown"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0) / 2**20
osname = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")), platform.system())
pg = first(["psql", "--version"])
machine = (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {osname}, kernel {platform.release()}; "
           f"{first(['node_modules/@foundry-rs/forge-linux-amd64/bin/forge', '--version'])}; "
           f"{first(['rustc', '--version'])}; {pg}.")
text = open("BENCHMARKS.md").read()
def put(name, body):
    global text
    pat = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
    if not pat.search(text):
        sys.exit(f"bench: BENCHMARKS.md has no <!-- bench:{name} --> markers")
    text = pat.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)
wrote = []
for n in names:
    p = os.path.join(out, n + ".md")
    if os.path.exists(p):
        put(n, open(p).read())
        wrote.append(n)
if wrote:
    put("machine", f"Last `make bench` ({', '.join(wrote)}) ran on: {machine}")
open("BENCHMARKS.md", "w").write(text)
print("bench: BENCHMARKS.md updated: " + (", ".join(wrote) or "nothing"), file=sys.stderr)
PY
if ((${#failed[@]})); then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
