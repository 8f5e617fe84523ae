#!/usr/bin/env bash
# Make sure a Docker daemon is available for the test suite, or stop the one this script started.
#
#   scripts/docker-daemon.sh start    # reuse a reachable daemon, else install docker.io (if needed) and start dockerd
#   scripts/docker-daemon.sh stop     # stop dockerd (and its containerd child) only if `start` launched it
#   scripts/docker-daemon.sh status   # report what is reachable and whether we started it
#
# `start` prints two KEY=VALUE lines on stdout (everything else goes to stderr):
#   DOCKER_HOST=unix:///var/run/docker.sock
#   DOCKER_CLAIR_DAEMON_STARTED=1      # 1 = launched by this invocation, 0 = reused a running daemon
#
# Environment:
#   DOCKER_HOST                   endpoint to check/use; a unix:// socket is also where a new dockerd listens
#                                 (default unix:///var/run/docker.sock). Other schemes are only checked, never started.
#   DOCKER_CLAIR_STATE_DIR        pid/marker/log directory (default /var/tmp/docker-clair-test)
#   DOCKER_CLAIR_DATA_ROOT        dockerd --data-root (default: dockerd's default, /var/lib/docker, so images persist)
#   DOCKER_CLAIR_EXEC_ROOT        dockerd --exec-root (default: dockerd's default, /var/run/docker)
#   DOCKER_CLAIR_DAEMON_TIMEOUT   seconds to wait for the daemon to answer (default 90)
#   DOCKER_CLAIR_STOP_TIMEOUT     seconds to wait for it to exit on stop (default 60)
set -euo pipefail

PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

STATE_DIR="${DOCKER_CLAIR_STATE_DIR:-/var/tmp/docker-clair-test}"
MARKER="$STATE_DIR/dockerd.started-by-script"
DOCKERD_PIDFILE="$STATE_DIR/dockerd.pid"
LOG_FILE="$STATE_DIR/dockerd.log"
LOCK_FILE="$STATE_DIR/docker-daemon.lock"
START_TIMEOUT="${DOCKER_CLAIR_DAEMON_TIMEOUT:-90}"
STOP_TIMEOUT="${DOCKER_CLAIR_STOP_TIMEOUT:-60}"
DEFAULT_HOST="unix:///var/run/docker.sock"

log() { printf 'docker-daemon: %s\n' "$*" >&2; }
die() { printf 'docker-daemon: ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

target_host() {
  if [[ -n "${DOCKER_HOST:-}" ]]; then printf '%s\n' "$DOCKER_HOST"; else printf '%s\n' "$DEFAULT_HOST"; fi
}

# Succeeds when a daemon answers at $1. Prints the engine version (or "unknown") on stdout.
ping_daemon() {
  local host=$1 sock out
  if have docker; then
    # DOCKER_HOST beats any configured context, so this checks exactly $host.
    if out=$(DOCKER_HOST="$host" timeout 20 docker version --format '{{.Server.Version}}' 2>/dev/null) && [[ -n "$out" ]]; then
      printf '%s\n' "$out"
      return 0
    fi
    return 1
  fi
  case "$host" in
    unix://*) sock=${host#unix://} ;;
    *) return 1 ;; # without the CLI only local sockets can be probed
  esac
  [[ -S "$sock" ]] || return 1
  if have curl; then
    out=$(curl -fsS --max-time 10 --unix-socket "$sock" http://localhost/_ping 2>/dev/null) || return 1
  elif have node; then
    out=$(SOCK="$sock" timeout 15 node -e '
      const req = require("http").get({ socketPath: process.env.SOCK, path: "/_ping" }, (res) => {
        let b = ""; res.on("data", (c) => (b += c)); res.on("end", () => { process.stdout.write(b); process.exit(res.statusCode === 200 ? 0 : 1); });
      });
      req.on("error", () => process.exit(1));' 2>/dev/null) || return 1
  else
    return 1
  fi
  [[ "$out" == OK ]] || return 1
  printf 'unknown\n'
}

apt_install() {
  [[ "$(id -u)" == 0 ]] || die "need root to install $* (apt-get)"
  have apt-get || die "apt-get not found; install $* by hand"
  local created_policy=0 rc=0
  # Keep the package's init script/unit from launching a daemon with its default (iptables, bridge) config;
  # this script starts dockerd itself with the flags the tests need.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  log "installing $* with apt-get (apt-get update first)"
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
  } </dev/null >&2 || rc=$?
  if [[ $created_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
  [[ $rc == 0 ]] || die "apt-get install $* failed (exit $rc)"
}

ensure_cli() {
  if ! have docker; then
    log "docker CLI not found"
    apt_install docker.io
    have docker || die "docker CLI still missing after installing docker.io"
  fi
}

proc_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }
is_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
# Direct children of pid $1 (read from /proc; procps may be absent).
children_of() {
  local parent=$1 stat rest pid ppid
  for stat in /proc/[0-9]*/stat; do
    [[ -r "$stat" ]] || continue
    rest=$(cat "$stat" 2>/dev/null) || continue
    pid=${rest%% *}
    rest=${rest##*) } # drop "pid (comm) "; comm may contain spaces or parentheses
    ppid=$(printf '%s' "$rest" | cut -d' ' -f2)
    [[ "$ppid" == "$parent" ]] && printf '%s\n' "$pid"
  done
  return 0
}

# The pid recorded by `start`, if that process is still a running dockerd. Empty otherwise.
our_pid() {
  local pid
  [[ -f "$MARKER" ]] || return 0
  pid=$(sed -n 's/^pid=//p' "$MARKER" | head -n1)
  if is_alive "$pid" && [[ "$(proc_comm "$pid")" == dockerd ]]; then printf '%s\n' "$pid"; fi
}

with_lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$LOCK_FILE"
  if ! flock -n 9; then
    log "waiting for another docker-daemon.sh (lock $LOCK_FILE)"
    flock -w 300 9 || die "timed out waiting for $LOCK_FILE"
  fi
}

emit() { # host started
  printf 'DOCKER_HOST=%s\nDOCKER_CLAIR_DAEMON_STARTED=%s\n' "$1" "$2"
}

cmd_start() {
  local host version sock pid waited=0 args
  host=$(target_host)
  with_lock

  if version=$(ping_daemon "$host"); then
    if [[ -n "$(our_pid)" ]]; then
      log "daemon reachable at $host (Engine $version), started earlier by this script (pid $(our_pid)); reusing it"
    else
      log "daemon reachable at $host (Engine $version); using it, not starting another one"
    fi
    ensure_cli
    emit "$host" 0
    return 0
  fi

  case "$host" in
    unix://*) sock=${host#unix://} ;;
    *) die "no daemon answers at DOCKER_HOST=$host, and only a local unix:// socket can be started here" ;;
  esac
  [[ "$(id -u)" == 0 ]] || die "no daemon answers at $host and starting dockerd needs root"

  pid=$(our_pid)
  if [[ -z "$pid" ]]; then
    rm -f "$MARKER"
    if ! have dockerd || ! have docker; then
      log "dockerd/docker not found"
      apt_install docker.io
      have dockerd || die "dockerd still missing after installing docker.io"
      if version=$(ping_daemon "$host"); then
        log "daemon reachable at $host after installing docker.io (Engine $version); using it"
        emit "$host" 0
        return 0
      fi
    fi

    args=(--iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2
      -H "$host" --pidfile "$DOCKERD_PIDFILE")
    [[ -n "${DOCKER_CLAIR_DATA_ROOT:-}" ]] && args+=(--data-root "$DOCKER_CLAIR_DATA_ROOT")
    [[ -n "${DOCKER_CLAIR_EXEC_ROOT:-}" ]] && args+=(--exec-root "$DOCKER_CLAIR_EXEC_ROOT")
    mkdir -p "$(dirname "$sock")"
    {
      printf '\n==== %s: dockerd %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${args[*]}"
    } >>"$LOG_FILE"
    log "starting dockerd on $host (log: $LOG_FILE)"
    # New session: a Ctrl-C aimed at the test run must not kill the daemon before `stop` cleans up.
    # fd 9 (the lock) is closed so the daemon does not hold the lock forever.
    setsid dockerd "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    printf 'pid=%s\nhost=%s\nstarted=%s\n' "$pid" "$host" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$MARKER"
  else
    log "dockerd pid $pid (started by this script) is running but not answering yet; waiting"
  fi

  while ! version=$(ping_daemon "$host"); do
    if ! is_alive "$pid"; then
      rm -f "$MARKER"
      log "dockerd exited during startup; last lines of $LOG_FILE:"
      tail -n 40 "$LOG_FILE" >&2 || true
      die "dockerd failed to start"
    fi
    if ((waited >= START_TIMEOUT * 2)); then
      log "dockerd (pid $pid) did not answer within ${START_TIMEOUT}s; last lines of $LOG_FILE:"
      tail -n 40 "$LOG_FILE" >&2 || true
      die "timed out waiting for dockerd (it is still running; '$0 stop' stops it)"
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  log "dockerd pid $pid is up at $host (Engine $version) after ~$((waited / 2))s"
  emit "$host" 1
}

wait_gone() { # timeout_s pid...
  local limit=$(($1 * 10)) n=0 p alive
  shift
  while :; do
    alive=0
    for p in "$@"; do is_alive "$p" && alive=1; done
    ((alive == 0)) && return 0
    ((n >= limit)) && return 1
    sleep 0.1
    n=$((n + 1))
  done
}

cmd_stop() {
  local pid kids=() p
  with_lock
  if [[ ! -f "$MARKER" ]]; then
    log "no daemon was started by this script (no $MARKER); nothing to stop"
    return 0
  fi
  pid=$(our_pid)
  if [[ -z "$pid" ]]; then
    log "the dockerd this script started is no longer running; clearing $MARKER"
    rm -f "$MARKER"
    return 0
  fi
  for p in $(children_of "$pid"); do
    [[ "$(proc_comm "$p")" == containerd ]] && kids+=("$p")
  done
  log "stopping dockerd pid $pid${kids[*]:+ (containerd pid ${kids[*]})}"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$STOP_TIMEOUT" "$pid"; then
    log "dockerd did not exit within ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone 10 "$pid" || die "dockerd pid $pid survived SIGKILL"
  fi
  if ((${#kids[@]})); then
    if ! wait_gone 20 "${kids[@]}"; then
      log "containerd still running after dockerd exited; sending SIGTERM"
      kill -TERM "${kids[@]}" 2>/dev/null || true
      if ! wait_gone 20 "${kids[@]}"; then
        kill -KILL "${kids[@]}" 2>/dev/null || true
        wait_gone 10 "${kids[@]}" || true
      fi
    fi
  fi
  rm -f "$MARKER"
  log "dockerd stopped"
}

cmd_status() {
  local host version pid
  host=$(target_host)
  pid=$(our_pid)
  if version=$(ping_daemon "$host"); then
    log "daemon reachable at $host (Engine $version)"
  else
    log "no daemon answers at $host"
  fi
  if [[ -n "$pid" ]]; then log "started by this script: dockerd pid $pid"; else log "not started by this script"; fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2 ;;
  *)
    log "usage: $0 start|stop|status"
    exit 2
    ;;
esac
