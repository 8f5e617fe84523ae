#!/usr/bin/env bash
# `npm test`: daemon + test images + typecheck + package, then every test/**/*.test.ts with node's test runner.
#
#   npm test                                 all tests
#   npm test -- test/unit/foo.test.ts        only these files (daemon and images are still prepared)
#   npm test -- --test-name-pattern=scan     arguments starting with '-' go to node (use the --opt=value form)
#
# Environment:
#   SKIP_PACKAGE=1   skip `npm run package` (quick local runs)
#   SKIP_ENGINES=1   test against the system daemon only, not also Debian 13's Engine 26 (scripts/engines.sh)
#   KEEP_DAEMON=1    leave a daemon this run started running afterwards
#   TEST_TIMEOUT_MS  per-test timeout given to node (--test-timeout, default 300000)
# Exported to the tests: DOCKER_HOST (the daemon in use), DOCKER_CLAIR_TEST_IMAGES=1 (test images are built),
# DOCKER_CLAIR_TEST_ENGINES (JSON: every engine the export suites run against, test/helpers/engines.ts).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf '\n==> %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
secs_since() {
  local d=$(($(now_ms) - $1))
  printf '%d.%01ds' $((d / 1000)) $((d % 1000 / 100))
}
T_START=$(now_ms)
step() { # name cmd...
  local name=$1 t0
  shift
  log "$name"
  t0=$(now_ms)
  "$@"
  printf '    (%s: %s)\n' "$name" "$(secs_since "$t0")" >&2
}

# ---------------------------------------------------------------------------------------------------------------------
DAEMON_STARTED=0
ENGINES_STARTED=0
TAP_FILE=""
NODE_PID=""
cleanup() {
  if [[ "$ENGINES_STARTED" == 1 && "${KEEP_DAEMON:-}" != 1 ]]; then
    bash "$ROOT/scripts/engines.sh" stop || true
  fi
  if [[ "$DAEMON_STARTED" == 1 ]]; then
    if [[ "${KEEP_DAEMON:-}" == 1 ]]; then
      printf 'test.sh: KEEP_DAEMON=1: leaving the daemon at %s running (scripts/docker-daemon.sh stop stops it)\n' \
        "${DOCKER_HOST:-}" >&2
    else
      bash "$ROOT/scripts/docker-daemon.sh" stop || true
    fi
  fi
  if [[ -n "$TAP_FILE" ]]; then rm -f "$TAP_FILE"; fi
  # Real Clair instances whose test process is gone (killed or crashed: each test stops its own); another run's
  # live ones are left alone.
  local dir owner
  for dir in /var/tmp/docker-clair-test/real-clair/test-*; do
    [[ -d "$dir" ]] || continue
    owner=$(cat "$dir/owner" 2>/dev/null || true)
    if [[ -n "$owner" && -d /proc/$owner ]]; then continue; fi
    REAL_CLAIR_STATE=$dir/instance bash "$ROOT/scripts/real-clair.sh" down || true
    rm -rf "$dir"
  done
}
trap cleanup EXIT
# bash skips the EXIT trap when an untrapped signal kills it: turn INT/TERM (Ctrl-C, CI timeouts) into exits,
# after stopping the test runner and its per-file processes.
# shellcheck disable=SC2317  # invoked by traps
on_signal() {
  if [[ -n "$NODE_PID" ]]; then kill -TERM -- "-$NODE_PID" 2>/dev/null || true; fi
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# shellcheck disable=SC2317  # invoked through step()
start_daemon() {
  local out line
  out=$(bash "$ROOT/scripts/docker-daemon.sh" start)
  while IFS= read -r line; do
    case "$line" in
      DOCKER_HOST=*) DOCKER_HOST=${line#DOCKER_HOST=} ;;
      DOCKER_CLAIR_DAEMON_STARTED=*) DAEMON_STARTED=${line#DOCKER_CLAIR_DAEMON_STARTED=} ;;
    esac
  done <<<"$out"
  [[ -n "${DOCKER_HOST:-}" ]] || { echo "test.sh: docker-daemon.sh did not report DOCKER_HOST" >&2; exit 1; }
  export DOCKER_HOST
}
step "docker daemon" start_daemon

# shellcheck disable=SC2317  # invoked through step()
build_real_clair() {
  bash "$ROOT/scripts/real-clair.sh" build >/dev/null
  CLAIR_LINE="clair: $(bash "$ROOT/scripts/real-clair.sh" version) (the real Clair, built from source)"
  printf '%s\n' "$CLAIR_LINE"
}
CLAIR_LINE=""
# Before the test images: the real Clair's image is built from these binaries.
step "real Clair" build_real_clair

step "test images" npm run --silent test-images
export DOCKER_CLAIR_TEST_IMAGES=1

# shellcheck disable=SC2317  # invoked through step()
start_engines() {
  local out line name host info version store json="" engine_lines=()
  engine_line() { # host name -> "engine: Docker <version> (<store> store)", and the JSON entry
    info=$(docker -H "$1" info --format '{{.ServerVersion}} {{json .DriverStatus}}')
    version=${info%% *}
    # The containerd image store shows as a driver whose status names a snapshotter.
    if [[ "$info" == *io.containerd.snapshotter.v1* ]]; then store=containerd; else store=classic; fi
    engine_lines+=("engine: Docker $version ($store store)")
    json+="${json:+,}{\"name\":\"$2\",\"host\":\"$1\",\"version\":\"$version\",\"store\":\"$store\"}"
  }
  engine_line "$DOCKER_HOST" system
  if [[ "${SKIP_ENGINES:-}" != 1 ]]; then
    # registry-base is not loaded: the tests pull it from a registry, and Engine 26's containerd store downloads
    # (and keeps) a layer's blob only when it has no snapshot of that layer yet.
    ENGINES_STARTED=1
    out=$(bash "$ROOT/scripts/engines.sh" start classic26 containerd26)
    while IFS= read -r line; do
      name=${line%%=*}
      host=${line#*=}
      bash "$ROOT/scripts/engines.sh" load "$name" docker-clair-test/debian12:latest docker-clair-test/multilayer:latest \
        docker-clair-test/postgres:latest docker-clair-test/clair-double:latest
      engine_line "$host" "$name"
    done <<<"$out"
  fi
  DOCKER_CLAIR_TEST_ENGINES="[$json]"
  export DOCKER_CLAIR_TEST_ENGINES
  ENGINE_LINES=$(printf '%s\n' "${engine_lines[@]}")
  printf '%s\n' "$ENGINE_LINES"
}
ENGINE_LINES=""
step "engines" start_engines

step "typecheck" npm run --silent typecheck

if [[ "${SKIP_PACKAGE:-}" == 1 ]]; then
  log "package: skipped (SKIP_PACKAGE=1)"
else
  step "package" npm run --silent package
fi

# ---------------------------------------------------------------------------------------------------------------------
node_args=()
files=()
for arg in "$@"; do
  if [[ "$arg" == -* ]]; then node_args+=("$arg"); else files+=("$arg"); fi
done
# A hung test must not eat the CI budget: per-test timeout unless the caller gives one.
if [[ " ${node_args[*]} " != *" --test-timeout"* ]]; then node_args+=("--test-timeout=${TEST_TIMEOUT_MS:-300000}"); fi
if ((${#files[@]} == 0)); then
  mapfile -t files < <(find test -name '*.test.ts' -type f | LC_ALL=C sort)
fi
((${#files[@]})) || { echo "test.sh: no test files found" >&2; exit 1; }

log "tests: node --test (${#files[@]} files, DOCKER_HOST=$DOCKER_HOST)"
TAP_FILE=$(mktemp "${TMPDIR:-/tmp}/docker-clair-test-tap.XXXXXX")
t_tests=$(now_ms)
# spec on stdout for people, TAP into a file for the summary below. The runner gets its own process group
# (setsid) so a signal can stop it with all its per-file processes; `wait` keeps the traps responsive.
setsid node --import tsx --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$TAP_FILE" \
  "${node_args[@]}" "${files[@]}" &
NODE_PID=$!
rc=0
wait "$NODE_PID" || rc=$?
NODE_PID=""
printf '    (tests: %s)\n' "$(secs_since "$t_tests")" >&2

# Repeat the runner's summary at the very end, after any daemon shutdown messages would scroll it away.
summary=$(grep -aE '^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$TAP_FILE" | tail -n 8 || true)
cleanup
DAEMON_STARTED=0
ENGINES_STARTED=0
TAP_FILE=""
trap - EXIT
log "summary (total $(secs_since "$T_START"), exit code $rc)"
if [[ -n "$ENGINE_LINES" ]]; then printf '%s\n' "$ENGINE_LINES"; fi
if [[ -n "$CLAIR_LINE" ]]; then printf '%s\n' "$CLAIR_LINE"; fi
if [[ -n "$summary" ]]; then printf '%s\n' "$summary"; else echo "(no summary lines from the test runner)"; fi
exit "$rc"
