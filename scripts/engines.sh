#!/usr/bin/env bash
# Extra Docker engines for the tests, beside the system's (Debian 12's Engine 20.10, scripts/docker-daemon.sh):
# Debian 13's Engine 26 with the classic image store and with the containerd image store. Engine >= 25 writes
# OCI-layout saves, and the containerd store exports blobs as stored (gzip for pulled images) and streams from
# the first byte; users run both, so the export readers are tested on both.
#
#   scripts/engines.sh fetch               download docker.io + containerd from Debian 13 (trixie) and unpack them
#                                          into the cache (once per package version; nothing is installed)
#   scripts/engines.sh start NAME...       start engines (classic26, containerd26): each prints NAME=DOCKER_HOST on
#                                          stdout; an engine already answering is reused
#   scripts/engines.sh stop [NAME...]      stop engines this script started (default: all)
#   scripts/engines.sh load NAME IMAGE...  copy images from the system daemon (DOCKER_HOST) into engine NAME when
#                                          it lacks them or holds another build (docker save | docker load)
#
# How Engine 26 runs here: its dockerd and containerd run on Debian 12's glibc, its runc does not (it needs
# glibc 2.38), so trixie's runc is left out and Debian 12's (a dependency of docker.io) is found on PATH. Each
# engine has its own data root, exec root, socket, containerd namespace and address pool, so it never touches the
# system daemon's state. classic26 also lists this machine's own outbound address as an insecure registry range
# (/32), so the tests can show a registry image reached as the daemon reaches an insecure registry (plain http on
# a non-loopback address).
#
# Environment:
#   DOCKER_CLAIR_STATE_DIR     state directory (default /var/tmp/docker-clair-test): engines/ under it holds the
#                              unpacked packages (engines/pkg/<version>) and each engine's data (engines/<NAME>)
#   DOCKER_CLAIR_ENGINE_SUITE  Debian suite to fetch from (default trixie)
#   DEBIAN_MIRROR              Debian mirror (default: the apt sources' bookworm entry, scripts/debian-mirror.sh;
#                              the same archive serves trixie)
set -euo pipefail

PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

STATE_DIR="${DOCKER_CLAIR_STATE_DIR:-/var/tmp/docker-clair-test}"
BASE="$STATE_DIR/engines"
PKG_DIR="$BASE/pkg"
SUITE="${DOCKER_CLAIR_ENGINE_SUITE:-trixie}"

START_TIMEOUT=90

log() { printf 'engines: %s\n' "$*" >&2; }
die() { printf 'engines: ERROR: %s\n' "$*" >&2; exit 1; }

# engine NAME -> "store pool"
engine_spec() {
  case "$1" in
    classic26) echo "classic 172.29.0.0/16" ;;
    containerd26) echo "containerd 172.30.0.0/16" ;;
    *) die "unknown engine $1 (known: classic26, containerd26)" ;;
  esac
}

with_lock() {
  mkdir -p "$BASE"
  exec 8>"$BASE/lock"
  flock -w 600 8 || die "timed out waiting for $BASE/lock"
}

# The unpacked root of the newest fetched version, or nothing.
current_root() {
  local link="$PKG_DIR/current"
  if [[ -L "$link" && -x "$link/root/usr/sbin/dockerd" ]]; then readlink -f "$link/root"; fi
}

cmd_fetch() {
  local root apt_dir opts version dir deb MIRROR
  root=$(current_root)
  if [[ -n "$root" ]]; then
    log "cached: $(cat "$PKG_DIR/current/version") in $root"
    return 0
  fi
  MIRROR=$(bash "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh" bookworm) ||
    die "no bookworm entry found in the apt sources; set DEBIAN_MIRROR to a Debian mirror URL"
  apt_dir="$PKG_DIR/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$apt_dir/sources.list"
  # A private apt state: nothing under /etc or /var/lib/apt changes, and nothing is installed.
  opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o APT::Sandbox::User=root -o Acquire::Languages=none)
  log "fetching docker.io and containerd from Debian $SUITE ($MIRROR)"
  apt-get "${opts[@]}" -q update >&2 || die "apt-get update for $SUITE failed"
  rm -f "$apt_dir/debs/"*.deb
  (cd "$apt_dir/debs" && apt-get "${opts[@]}" -q download docker.io containerd >&2) || die "apt-get download failed"
  version=$(dpkg-deb -f "$apt_dir/debs/"docker.io_*.deb Version)
  dir="$PKG_DIR/docker.io_$version"
  rm -rf "$dir"
  mkdir -p "$dir/root"
  for deb in "$apt_dir/debs/"*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  rm -f "$dir/root/usr/sbin/runc" "$dir/root/usr/bin/runc"
  "$dir/root/usr/sbin/dockerd" --version >/dev/null || die "the fetched dockerd does not run on this system"
  printf '%s\n' "$version" >"$dir/version"
  ln -sfn "$dir" "$PKG_DIR/current"
  rm -f "$apt_dir/debs/"*.deb
  log "unpacked docker.io $version into $dir/root"
}

ping_engine() { # host -> version
  timeout 20 docker -H "$1" version --format '{{.Server.Version}}' 2>/dev/null
}

start_one() {
  local name=$1 store pool dir host root pid waited=0
  read -r store pool < <(engine_spec "$name")
  dir="$BASE/$name"
  host="unix://$dir/docker.sock"
  if ping_engine "$host" >/dev/null; then
    echo "$name=$host"
    return 0
  fi
  root=$(current_root)
  [[ -n "$root" ]] || die "no engine fetched: run '$0 fetch' first"
  command -v runc >/dev/null || die "runc not found: install Debian's runc (a dependency of docker.io)"
  mkdir -p "$dir"
  if [[ "$store" == containerd ]]; then
    printf '{"features":{"containerd-snapshotter":true}}\n' >"$dir/daemon.json"
  else
    local lan
    lan=$(ip -4 -o route get 1.0.0.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
    if [[ -n "$lan" ]]; then printf '{"insecure-registries":["%s/32"]}\n' "$lan" >"$dir/daemon.json"; else printf '{}\n' >"$dir/daemon.json"; fi
  fi
  log "starting $name (Engine $(cat "$PKG_DIR/current/version"), $store image store) on $host (log: $dir/dockerd.log)"
  # setsid: a Ctrl-C aimed at the test run must not kill the engine before `stop` cleans up; fd 8 (the lock) is
  # closed so the daemon does not hold it.
  PATH="$root/usr/bin:$root/usr/sbin:$PATH" setsid "$root/usr/sbin/dockerd" \
    --config-file "$dir/daemon.json" --iptables=false --ip6tables=false --bridge=none \
    --default-address-pool "base=$pool,size=24" \
    --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" -H "$host" \
    --containerd-namespace "dc-$name" --containerd-plugins-namespace "dc-$name-plugins" \
    </dev/null >>"$dir/dockerd.log" 2>&1 8>&- &
  pid=$!
  printf '%s\n' "$pid" >"$dir/started-by-script"
  until ping_engine "$host" >/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/dockerd.log" >&2 || true
      rm -f "$dir/started-by-script"
      die "$name exited during startup"
    fi
    ((waited < START_TIMEOUT * 4)) || die "$name did not answer within ${START_TIMEOUT}s (log: $dir/dockerd.log)"
    sleep 0.25
    waited=$((waited + 1))
  done
  echo "$name=$host"
}

cmd_start() {
  (($#)) || die "usage: $0 start NAME..."
  with_lock
  cmd_fetch
  local name
  for name in "$@"; do start_one "$name"; done
}

stop_one() {
  local name=$1 dir="$BASE/$1" pid n=0
  [[ -f "$dir/started-by-script" ]] || return 0
  pid=$(cat "$dir/started-by-script")
  rm -f "$dir/started-by-script"
  if kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid"
    # dockerd stops the containerd it started before it exits.
    while kill -0 "$pid" 2>/dev/null; do
      if ((n >= 600)); then kill -KILL "$pid" 2>/dev/null || true; break; fi
      sleep 0.1
      n=$((n + 1))
    done
  fi
}

cmd_stop() {
  with_lock
  local names=("$@") name
  ((${#names[@]})) || names=(classic26 containerd26)
  for name in "${names[@]}"; do stop_one "$name"; done
}

# The identity of an image's content, the same on every engine and store: its config's creation time and layers.
image_key() { # host image
  docker -H "$1" image inspect --format '{{.Created}} {{json .RootFS.Layers}}' "$2" 2>/dev/null || true
}

cmd_load() {
  local name=$1 host want have_key image missing=()
  shift
  host="unix://$BASE/$name/docker.sock"
  for image in "$@"; do
    want=$(image_key "${DOCKER_HOST:-unix:///var/run/docker.sock}" "$image")
    [[ -n "$want" ]] || die "$image is not in the system daemon: build the test images first"
    have_key=$(image_key "$host" "$image")
    [[ "$have_key" == "$want" ]] || missing+=("$image")
  done
  ((${#missing[@]})) || return 0
  log "loading into $name: ${missing[*]}"
  docker save "${missing[@]}" | docker -H "$host" load -q >&2
  # The builds the new tags replaced: nothing else on this engine uses them.
  docker -H "$host" image prune -f >/dev/null
}

case "${1:-}" in
  fetch) with_lock; cmd_fetch ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  load) shift; (($# >= 2)) || die "usage: $0 load NAME IMAGE..."; cmd_load "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
