#!/usr/bin/env bash
# The real Clair v4 on this machine, for the tests and benchmarks: built from source through the Go module proxy,
# run in combo mode beside a private PostgreSQL 15 cluster, with no updaters (nothing reaches out). Vulnerability
# data comes only from `import`.
#
#   npm run real-clair -- build          build clair and clairctl once per version into the cache; prints the bin dir
#   npm run real-clair -- up [--psk]     start PostgreSQL and Clair (reused when already running); prints exactly one
#                                        line on stdout: CLAIR_ADDR=http://127.0.0.1:PORT. --psk turns on PSK auth
#                                        with the key in CLAIR_PSK (base64), or a new random one kept in STATE/psk;
#                                        the issuer is CLAIR_PSK_ISSUER (default docker-clair)
#   npm run real-clair -- import FILE    load an `clairctl export-updaters` file (jsonblob: JSON lines, .gz/.zst)
#   npm run real-clair -- status         what runs, where, and how many vulnerabilities are loaded
#   npm run real-clair -- down           stop what `up` started and remove its state (the build cache stays)
#   npm run real-clair -- pid            the Clair process's pid (tests stop it mid-scan)
#   npm run real-clair -- version        the built Clair's version line (clairctl --version)
#
# PostgreSQL listens on a Unix socket in the state directory only (no TCP port); Clair's API and introspection
# servers listen on 127.0.0.1 only. Clair is built with `go install` from a throwaway module that requires
# github.com/quay/clair/v4 at the pinned version: `go install pkg@version` asks the proxy for the module's
# version list (to look for a deprecation notice), which the proxy refuses here, while a required version is
# fetched by its exact name only.
#
# Environment:
#   REAL_CLAIR_VERSION   Clair version to build (default v4.9.0)
#   REAL_CLAIR_STATE     state directory of this instance (default /var/tmp/docker-clair-test/real-clair/default);
#                        tests run several instances side by side, each with its own
#   REAL_CLAIR_CACHE     build cache (default /var/tmp/docker-clair-test/real-clair/build); binaries are kept under
#                        VERSION/bin, rebuilt only for another version
#   PG_BIN               PostgreSQL's bin directory (default /usr/lib/postgresql/15/bin)
set -euo pipefail

PATH="${PATH:-/usr/bin:/bin}:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

VERSION="${REAL_CLAIR_VERSION:-v4.9.0}"
BASE=/var/tmp/docker-clair-test/real-clair
STATE="${REAL_CLAIR_STATE:-$BASE/default}"
CACHE="${REAL_CLAIR_CACHE:-$BASE/build}"
BIN="$CACHE/$VERSION/bin"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
START_TIMEOUT=120

log() { printf 'real-clair: %s\n' "$*" >&2; }
die() { printf 'real-clair: ERROR: %s\n' "$*" >&2; exit 1; }

with_lock() { # one `up`/`down`/build at a time per file
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock -w 900 9 || die "timed out waiting for $1"
}

# ---------------------------------------------------------------------------------------------------------------------
build() {
  if [[ -x "$BIN/clair" && -x "$BIN/clairctl" ]]; then return; fi
  with_lock "$CACHE/lock"
  if [[ -x "$BIN/clair" && -x "$BIN/clairctl" ]]; then return; fi
  command -v go >/dev/null || die "no Go toolchain on PATH: install Go >= 1.24 (Clair $VERSION's go.mod asks for 1.24)"
  local work
  work=$(mktemp -d "$CACHE/.build.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the trap outlives this function's locals
  trap "rm -rf '$work'" EXIT
  log "building Clair $VERSION (clair, clairctl) with go install; once per version, about a minute"
  (
    cd "$work"
    export GOFLAGS="${GOFLAGS:-} -buildvcs=false" GOTOOLCHAIN=local GOBIN="$work/bin"
    go mod init docker-clair.test/real-clair-build >/dev/null 2>&1
    go get "github.com/quay/clair/v4/cmd/clair@$VERSION" "github.com/quay/clair/v4/cmd/clairctl@$VERSION" >get.log 2>&1 ||
      { cat get.log >&2; exit 1; }
    # The flags of Clair's own Dockerfile build: no debug info, no local paths, and the version it reports (the
    # build info names this throwaway module as the main one, so Clair could not tell its version by itself).
    go install -trimpath -ldflags="-s -w -X 'github.com/quay/clair/v4/cmd.Version=$VERSION'" \
      github.com/quay/clair/v4/cmd/clair github.com/quay/clair/v4/cmd/clairctl >&2
  ) || die "building Clair $VERSION failed (above); GOPROXY=$(go env GOPROXY) GOFLAGS=$(go env GOFLAGS) GOTOOLCHAIN=$(go env GOTOOLCHAIN)"
  mkdir -p "$(dirname "$BIN")"
  rm -rf "$BIN"
  mv "$work/bin" "$BIN"
  rm -rf "$work"
  trap - EXIT
  log "built $BIN/clair ($(du -h "$BIN/clair" | cut -f1)) and clairctl"
}

# ---------------------------------------------------------------------------------------------------------------------
pg_socket_dir() { echo "$STATE/pg-socket"; }
conn() { echo "host=$(pg_socket_dir) port=5432 user=clair dbname=clair sslmode=disable application_name=$1"; }
as_postgres() { runuser -u postgres -- "$@"; }
pg_running() { [[ -f "$STATE/pg/postmaster.pid" ]] && as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" status >/dev/null 2>&1; }
clair_pid() { [[ -f "$STATE/clair.pid" ]] && cat "$STATE/clair.pid"; }
clair_running() {
  local pid
  pid=$(clair_pid 2>/dev/null) || return 1
  [[ -n "$pid" && -d /proc/$pid ]] && grep -q clair "/proc/$pid/cmdline" 2>/dev/null
}
clair_addr() { cat "$STATE/addr"; }
psql_clair() { "$PG_BIN/psql" -X -q -t -A "$(conn real-clair-script)" -c "$1"; }

start_postgres() {
  [[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL 15 is not installed ($PG_BIN/postgres): apt-get install postgresql-15"
  id postgres >/dev/null 2>&1 || die "no 'postgres' user (it comes with Debian's postgresql-15 package)"
  if pg_running; then return; fi
  mkdir -p "$(pg_socket_dir)" "$STATE/pg-log"
  chown postgres: "$(pg_socket_dir)" "$STATE/pg-log"
  as_postgres test -x "$STATE" || die "the postgres user cannot reach $STATE: make its parent directories traversable (chmod o+x)"
  if [[ ! -f "$STATE/pg/PG_VERSION" ]]; then
    mkdir -p "$STATE/pg"
    chown postgres: "$STATE/pg"
    chmod 700 "$STATE/pg"
    as_postgres "$PG_BIN/initdb" -D "$STATE/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$STATE/initdb.log" 2>&1 ||
      { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
  fi
  # No TCP at all (listen_addresses=''): clients use the socket in the state directory.
  as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/pg-log/postgresql.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$(pg_socket_dir)' -c fsync=off -c max_connections=200" start >/dev/null 9>&- ||
    { tail -20 "$STATE/pg-log/postgresql.log" >&2; die "PostgreSQL did not start (log: $STATE/pg-log/postgresql.log)"; }
  if ! "$PG_BIN/psql" -X -q -t -A "host=$(pg_socket_dir) user=postgres dbname=postgres" -c "SELECT 1 FROM pg_roles WHERE rolname='clair'" | grep -q 1; then
    # Clair's migrations create extensions, which needs a superuser.
    "$PG_BIN/psql" -X -q "host=$(pg_socket_dir) user=postgres dbname=postgres" -c "CREATE ROLE clair LOGIN SUPERUSER" -c "CREATE DATABASE clair OWNER clair" >/dev/null
  fi
}

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

write_config() { # port psk_key
  local port=$1 key=$2
  {
    echo "# Written by scripts/real-clair.sh: combo mode, loopback only, updaters off (data comes from 'import')."
    echo "http_listen_addr: 127.0.0.1:$port"
    echo "introspection_addr: 127.0.0.1:0"
    echo "log_level: info"
    echo "indexer:"
    echo "  connstring: $(conn clair-indexer)"
    echo "  migrations: true"
    # Clair's RHEL scanners fetch Red Hat's repository mapping files on first use and fail every index (of any
    # image, Debian too) when they cannot; offline they read local files instead: empty mappings here.
    echo "  scanner:"
    echo "    repo:"
    echo "      rhel-repository-scanner: {repo2cpe_mapping_file: $STATE/empty-mapping.json}"
    echo "    package:"
    echo "      rhel_containerscanner: {name2repos_mapping_file: $STATE/empty-mapping.json}"
    echo "matcher:"
    echo "  connstring: $(conn clair-matcher)"
    echo "  migrations: true"
    echo "  disable_updaters: true"
    echo "notifier:"
    echo "  connstring: $(conn clair-notifier)"
    echo "  migrations: true"
    echo "  poll_interval: 1h"
    echo "  delivery_interval: 1h"
    echo "updaters:"
    echo "  sets: []"
    if [[ -n "$key" ]]; then
      echo "auth:"
      echo "  psk:"
      echo "    key: $key"
      echo "    iss: [\"${CLAIR_PSK_ISSUER:-docker-clair}\"]"
    fi
  } >"$STATE/config.yaml"
  echo '{"data":{}}' >"$STATE/empty-mapping.json"
  chmod 600 "$STATE/config.yaml"
}

wait_for_api() { # pid
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT)) code
  while ((SECONDS < deadline)); do
    [[ -d /proc/$pid ]] || { tail -20 "$STATE/clair.log" >&2; die "Clair exited during start (log: $STATE/clair.log)"; }
    # Clair serves its API only after its migrations and initialisation: any answer means ready (401 with PSK).
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$(clair_addr)/indexer/api/v1/index_state" || true)
    if [[ "$code" == 200 || "$code" == 401 ]]; then return; fi
    sleep 0.2 # nothing announces readiness: poll
  done
  tail -20 "$STATE/clair.log" >&2
  die "Clair did not answer within ${START_TIMEOUT}s (log: $STATE/clair.log)"
}

up() {
  local psk=0
  while (($#)); do
    case "$1" in
      --psk) psk=1 ;;
      *) die "unknown option for up: $1 (known: --psk)" ;;
    esac
    shift
  done
  build
  with_lock "$STATE.lock"
  mkdir -p "$STATE"
  chmod 711 "$STATE"
  if clair_running; then
    echo "CLAIR_ADDR=$(clair_addr)"
    return
  fi
  start_postgres
  local key=""
  if ((psk)); then
    key="${CLAIR_PSK:-$(head -c 32 /dev/urandom | base64 -w0)}"
    (umask 077 && printf '%s\n' "$key" >"$STATE/psk")
  else
    rm -f "$STATE/psk"
  fi
  local try port pid
  for try in 1 2 3; do
    port=$(free_port)
    echo "http://127.0.0.1:$port" >"$STATE/addr"
    write_config "$port" "$key"
    mkdir -p "$STATE/tmp"
    # setsid: Clair outlives this script in its own session; TMPDIR keeps its fetched layers in the state dir.
    TMPDIR="$STATE/tmp" CLAIR_CONF="$STATE/config.yaml" CLAIR_MODE=combo \
      setsid "$BIN/clair" >>"$STATE/clair.log" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$STATE/clair.pid"
    if (wait_for_api "$pid") 2>"$STATE/start.err"; then
      echo "CLAIR_ADDR=$(clair_addr)"
      return
    fi
    # Another process may have taken the port between the check and Clair's bind: try another one.
    if grep -q "address already in use" "$STATE/clair.log" && ((try < 3)); then continue; fi
    cat "$STATE/start.err" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  done
}

import() {
  local file=${1:-}
  [[ -n "$file" ]] || die "usage: real-clair import FILE (a clairctl export-updaters file)"
  [[ -r "$file" ]] || die "cannot read $file"
  build
  [[ -f "$STATE/config.yaml" ]] && pg_running || die "not running: run 'npm run real-clair -- up' first"
  "$BIN/clairctl" --config "$STATE/config.yaml" import-updaters "$file" >>"$STATE/import.log" 2>&1 ||
    { tail -20 "$STATE/import.log" >&2; die "clairctl import-updaters $file failed (log: $STATE/import.log)"; }
  log "imported $file: $(vuln_count) vulnerabilities loaded"
}

vuln_count() { psql_clair "SELECT count(*) FROM vuln" 2>/dev/null || echo 0; }

status() {
  if clair_running; then
    echo "clair: running, pid $(clair_pid), $(clair_addr)$([[ -f "$STATE/psk" ]] && echo ", PSK auth (key in $STATE/psk)")"
  else
    echo "clair: not running"
  fi
  if pg_running; then
    echo "postgresql: running, socket $(pg_socket_dir)"
    echo "vulnerabilities: $(vuln_count)"
    echo "update operations: $(psql_clair "SELECT count(*) FROM update_operation" 2>/dev/null || echo 0)"
  else
    echo "postgresql: not running"
  fi
  echo "binaries: $BIN $([[ -x "$BIN/clair" ]] && echo "(built)" || echo "(not built)")"
  clair_running && pg_running
}

down() {
  with_lock "$STATE.lock"
  local pid
  if pid=$(clair_pid 2>/dev/null) && [[ -n "$pid" ]] && clair_running; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if pg_running; then as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null; fi
  rm -rf "$STATE" "$STATE.lock"
}

cmd=${1:-}
shift || true
case "$cmd" in
  build) build && echo "$BIN" ;;
  version) build && "$BIN/clairctl" --version 2>/dev/null | tail -n 1 ;;
  up) up "$@" ;;
  import) import "$@" ;;
  status) status ;;
  down) down ;;
  pid) clair_running && clair_pid || die "Clair is not running" ;;
  *) die "usage: real-clair build | up [--psk] | import FILE | status | down | pid | version" ;;
esac
