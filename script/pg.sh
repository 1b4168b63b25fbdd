#!/usr/bin/env bash
# Makes a local PostgreSQL available for the indexer and its tests, and prints its URL.
# Installs Debian's postgresql when missing, starts the cluster, and creates (once) the role
# `medrec` that may create databases. Prints: postgres://medrec:medrec@127.0.0.1:5432/medrec
# Environment: MEDREC_PG_PORT (default 5432).
set -euo pipefail
port=${MEDREC_PG_PORT:-5432}
log() { echo "pg: $*" >&2; }
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$version/main"; then
  log "creating cluster $version/main"
  pg_createcluster "$version" main -p "$port" >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -qx online; then
  log "starting cluster $version/main"
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 50); do
  as_postgres pg_isready -q -p "$port" && break
  sleep 0.2
done
as_postgres pg_isready -q -p "$port" || { log "PostgreSQL did not become ready"; exit 1; }
as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='medrec'" | grep -q 1 ||
  as_postgres psql -p "$port" -qc "CREATE ROLE medrec LOGIN CREATEDB PASSWORD 'medrec'" >&2
as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_database WHERE datname='medrec'" | grep -q 1 ||
  as_postgres psql -p "$port" -qc "CREATE DATABASE medrec OWNER medrec" >&2
echo "postgres://medrec:medrec@127.0.0.1:$port/medrec"
