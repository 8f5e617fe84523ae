#!/usr/bin/env bash
# Build the local test images (`npm run test-images`). Each image is skipped when its tag already exists.
#
#   docker-clair-test/debian12:latest    debootstrap --variant=minbase bookworm, then `docker import` (1 layer)
#   docker-clair-test/multilayer:latest  test/images/multilayer/Dockerfile FROM debian12: COPY tree + local .deb
#                                        (dpkg -i) + deletions (whiteouts) = base + 3 layers
#
# Usage: scripts/test-images.sh [--rebuild]
#   --rebuild   rebuild both images even if the tags exist (no build cache)
#
# Environment:
#   DEBIAN_MIRROR            mirror for debootstrap; default: the bookworm entry of the apt sources
#                            (/etc/apt/sources.list.d/*.sources `URIs:`, or `deb` lines of /etc/apt/sources.list)
#   DOCKER_HOST              daemon to use (see scripts/docker-daemon.sh)
#   DOCKER_CLAIR_STATE_DIR   lock file directory (default /var/tmp/docker-clair-test)
#   DOCKER_CLAIR_WORK_DIR    where the temporary rootfs and build context go (default /var/tmp)
set -euo pipefail

PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE_TAG="docker-clair-test/debian12:latest"
MULTI_TAG="docker-clair-test/multilayer:latest"
MULTI_SRC="$ROOT/test/images/multilayer"
SUITE=bookworm
STATE_DIR="${DOCKER_CLAIR_STATE_DIR:-/var/tmp/docker-clair-test}"
WORK_BASE="${DOCKER_CLAIR_WORK_DIR:-/var/tmp}"
# Fixed timestamp for the .deb, so rebuilding it gives the same bytes.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"

log() { printf 'test-images: %s\n' "$*" >&2; }
die() { printf 'test-images: ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
now_ms() { date +%s%3N; }
secs_since() { # start_ms -> "12.3s"
  local d=$(($(now_ms) - $1))
  printf '%d.%01ds' $((d / 1000)) $((d % 1000 / 100))
}
human_size() { # bytes
  awk -v b="$1" 'BEGIN { split("B KB MB GB", u); i = 1; while (b >= 1000 && i < 4) { b /= 1000; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}

REBUILD=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
      exit 0
      ;;
    *) die "unknown argument: $arg (usage: $0 [--rebuild])" ;;
  esac
done

# ---------------------------------------------------------------------------------------------------------------------
# Temporary directories, removed on exit. A failed debootstrap can leave /proc or /sys mounted inside its target, so
# unmount everything below a directory before deleting it, and never cross file systems while deleting.
TEMP_DIRS=()
unmount_below() {
  local dir=$1 mp
  # /proc/mounts escapes spaces as \040; our temp paths contain none.
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mp; do
    umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || log "could not unmount $mp"
  done
}
cleanup() {
  local d
  for d in "${TEMP_DIRS[@]}"; do
    [[ -d "$d" ]] || continue
    unmount_below "$d"
    rm -rf --one-file-system "$d" || log "could not remove $d"
  done
}
trap cleanup EXIT
make_temp_dir() { # prefix -> path
  local d
  mkdir -p "$WORK_BASE"
  d=$(mktemp -d "$WORK_BASE/$1.XXXXXX")
  TEMP_DIRS+=("$d")
  printf '%s\n' "$d"
}

apt_install() {
  [[ "$(id -u)" == 0 ]] || die "need root to install $* (apt-get)"
  have apt-get || die "apt-get not found; install $* by hand"
  log "installing $* with apt-get (apt-get update first)"
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
  } </dev/null >&2 || die "apt-get install $* failed"
}

# ---------------------------------------------------------------------------------------------------------------------
# Mirror: DEBIAN_MIRROR, else the apt sources' bookworm entry. Never hard-coded.
mirror_from_deb822() { # file: first URI of an enabled `Types: deb` stanza whose Suites include $SUITE
  awk -v suite="$SUITE" '
    function has(list, word) { return (" " list " ") ~ (" " word " ") }
    function flush() {
      if (!found && has(f["types"], "deb") && has(f["suites"], suite) && tolower(f["enabled"]) != "no" && f["uris"] != "") {
        split(f["uris"], u, " "); print u[1]; found = 1
      }
      delete f; last = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { if (last != "") { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v); f[last] = f[last] " " v } next }
    {
      i = index($0, ":"); if (!i) next
      k = tolower(substr($0, 1, i - 1)); v = substr($0, i + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", v); gsub(/[ \t]+/, " ", v)
      f[k] = v; last = k
    }
    END { flush() }' "$1" | head -n1
}
mirror_from_list() { # file: URI of the first `deb [opts] URI bookworm ...` line
  awk -v suite="$SUITE" '
    { sub(/#.*/, "") }
    $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit }
    }' "$1"
}
detect_mirror() {
  local f m
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    printf '%s\n' "$DEBIAN_MIRROR"
    return 0
  fi
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    m=$(mirror_from_deb822 "$f")
    if [[ -n "$m" ]]; then printf '%s\n' "$m"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    m=$(mirror_from_list "$f")
    if [[ -n "$m" ]]; then printf '%s\n' "$m"; return 0; fi
  done
  return 1
}

# ---------------------------------------------------------------------------------------------------------------------
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
layers_of() { docker image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | sed '/^$/d'; }
layer_count() { layers_of "$1" | wc -l; }
image_size() { docker image inspect -f '{{.Size}}' "$1"; }

build_debian12() {
  local mirror work rootfs t0 t_all
  t_all=$(now_ms)
  mirror=$(detect_mirror) || die "no '$SUITE' entry found in the apt sources; set DEBIAN_MIRROR to a Debian mirror URL"
  if ! have debootstrap; then
    log "debootstrap not found"
    apt_install debootstrap
  fi
  [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"

  work=$(make_temp_dir docker-clair-rootfs)
  rootfs="$work/rootfs"
  log "debootstrap --variant=minbase $SUITE from $mirror (log: $work/debootstrap.log)"
  t0=$(now_ms)
  if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" </dev/null >"$work/debootstrap.log" 2>&1; then
    log "debootstrap failed; last lines of its log:"
    tail -n 40 "$work/debootstrap.log" >&2 || true
    [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 20 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  log "debootstrap done in $(secs_since "$t0") ($(du -sh --one-file-system "$rootfs" | cut -f1) before cleanup)"

  # Slim the rootfs: package lists and caches, logs, host-specific files debootstrap copied in.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/archives/partial/* \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  printf 'localhost\n' >"$rootfs/etc/hostname"
  : >"$rootfs/etc/resolv.conf"
  grep -q "$SUITE" "$rootfs/etc/os-release" || die "rootfs /etc/os-release does not mention $SUITE"

  log "docker import -> $BASE_TAG"
  t0=$(now_ms)
  # /dev, /proc and /sys stay empty: the runtime mounts them.
  tar --numeric-owner -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
    docker import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $SUITE" - "$BASE_TAG" >/dev/null
  log "import done in $(secs_since "$t0")"
  unmount_below "$work"
  rm -rf --one-file-system "$work"

  [[ "$(layer_count "$BASE_TAG")" == 1 ]] || die "$BASE_TAG should have exactly 1 layer"
  log "$BASE_TAG built in $(secs_since "$t_all"): $(human_size "$(image_size "$BASE_TAG")"), 1 layer"
}

build_multilayer() {
  local work ctx pkg deb t0 base_n n
  t0=$(now_ms)
  have dpkg-deb || die "dpkg-deb not found"
  work=$(make_temp_dir docker-clair-build)
  ctx="$work/context"
  pkg="$work/pkg"
  mkdir -p "$ctx"
  cp "$MULTI_SRC/Dockerfile" "$ctx/Dockerfile"
  cp -a "$MULTI_SRC/tree" "$ctx/tree"
  # dpkg-deb insists on sane modes for DEBIAN/; do not depend on the checkout's umask.
  cp -a "$MULTI_SRC/deb/docker-clair-fixture" "$pkg"
  chmod -R u+rwX,go+rX,go-w "$pkg"
  mkdir -p "$ctx/tree/debs"
  dpkg-deb --root-owner-group --build "$pkg" "$ctx/tree/debs" >&2
  # Same modes and mtimes on every checkout, so the COPY step's cache key does not depend on the clone.
  chmod -R u+rwX,go+rX,go-w "$ctx/tree"
  find "$ctx/tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  deb=$(find "$ctx/tree/debs" -name '*.deb' -print -quit)
  log "built $(basename "$deb") ($(dpkg-deb --field "$deb" Package Version Architecture | tr '\n' ' '))"

  log "docker build (legacy builder, --network none) -> $MULTI_TAG"
  local build_args=(build --network none --force-rm -t "$MULTI_TAG")
  ((REBUILD)) && build_args+=(--no-cache)
  # The legacy builder exists in every engine since 1.x; newer CLIs default to BuildKit via buildx,
  # which may be missing here, so force the classic path. Its deprecation notice is harmless.
  DOCKER_BUILDKIT=0 docker "${build_args[@]}" "$ctx" >&2
  rm -rf --one-file-system "$work"

  base_n=$(layer_count "$BASE_TAG")
  n=$(layer_count "$MULTI_TAG")
  log "docker history $MULTI_TAG:"
  docker history --no-trunc --format '{{.Size}}'$'\t''{{.CreatedBy}}' "$MULTI_TAG" |
    sed 's/^\([^\t]*\)\t\(.\{0,110\}\).*/    \1\t\2/' >&2
  ((n - base_n >= 3)) || die "$MULTI_TAG has $n layers, expected at least $((base_n + 3))"
  docker history --no-trunc --format '{{.CreatedBy}}' "$MULTI_TAG" | grep -q 'dpkg -i' ||
    die "docker history of $MULTI_TAG does not show the dpkg -i step"
  log "$MULTI_TAG built in $(secs_since "$t0"): $(human_size "$(image_size "$MULTI_TAG")"), $n layers ($((n - base_n)) beyond the base)"
}

# multilayer must sit on the current debian12 (its first layers equal the base's).
multilayer_is_current() {
  image_exists "$MULTI_TAG" || return 1
  local base ml
  base=$(layers_of "$BASE_TAG")
  ml=$(layers_of "$MULTI_TAG" | head -n "$(printf '%s\n' "$base" | wc -l)")
  [[ "$base" == "$ml" ]]
}

# ---------------------------------------------------------------------------------------------------------------------
main() {
  local t_start old_base old_multi
  t_start=$(now_ms)
  have docker || die "docker CLI not found (scripts/docker-daemon.sh start installs it)"
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "no Docker daemon reachable${DOCKER_HOST:+ at $DOCKER_HOST}; run scripts/docker-daemon.sh start"

  # Several checkouts/test runs may share one daemon: build one at a time.
  mkdir -p "$STATE_DIR"
  exec 8>"$STATE_DIR/test-images.lock"
  if ! flock -n 8; then
    log "another test-images run holds $STATE_DIR/test-images.lock; waiting"
    flock -w 1800 8 || die "timed out waiting for $STATE_DIR/test-images.lock"
  fi

  old_base=$(image_id "$BASE_TAG")
  old_multi=$(image_id "$MULTI_TAG")

  if ((REBUILD == 0)) && [[ -n "$old_base" ]]; then
    log "$BASE_TAG exists ($(human_size "$(image_size "$BASE_TAG")")); skipping (--rebuild forces)"
  else
    build_debian12
  fi

  if ((REBUILD == 0)) && multilayer_is_current; then
    log "$MULTI_TAG exists ($(human_size "$(image_size "$MULTI_TAG")"), $(layer_count "$MULTI_TAG") layers); skipping"
  else
    [[ -n "$old_multi" ]] && ((REBUILD == 0)) && log "$MULTI_TAG is not based on the current $BASE_TAG; rebuilding"
    build_multilayer
  fi

  # Drop the images the new tags replaced (best effort; they may still be in use).
  local old
  for old in "$old_multi" "$old_base"; do
    [[ -n "$old" ]] || continue
    if [[ "$old" != "$(image_id "$MULTI_TAG")" && "$old" != "$(image_id "$BASE_TAG")" ]]; then
      if docker image rm "$old" >/dev/null 2>&1; then log "removed replaced image ${old#sha256:}"; fi
    fi
  done

  log "ready in $(secs_since "$t_start"): $BASE_TAG $(layer_count "$BASE_TAG") layer(s), $MULTI_TAG $(layer_count "$MULTI_TAG") layers"
}

main
