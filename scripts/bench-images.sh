#!/usr/bin/env bash
# Build the local images the `scan` benchmark uses (`npm run bench -- scan` calls this). Each image is skipped when its
# tag already exists, so the random data (and the image IDs) stay the same from one benchmark run to the next.
#
#   docker-clair-bench/200m:latest   FROM docker-clair-test/debian12 + 4 RUN layers of  21,000,000 random bytes
#   docker-clair-bench/800m:latest   FROM docker-clair-test/debian12 + 4 RUN layers of 175,000,000 random bytes
#
#   docker-clair-bench/many-{a,b,c}:latest   FROM docker-clair-bench/200m + 1 RUN layer of 5,000,000 random bytes
#
# The base is ~116 MB, so the images are ~200 MB and ~816 MB (5 layers each); the three `many` images share the 200m
# image as their base (`npm run bench -- scan-many`). The data comes from /dev/urandom, so it is incompressible
# and every RUN layer is unique to its image. Built with the classic builder (DOCKER_BUILDKIT=0) and
# `--network none` (the test daemon runs with --bridge=none), from a Dockerfile on stdin (no build context).
#
# Usage: scripts/bench-images.sh [--rebuild] [--remove]
#   --rebuild   remove and rebuild every image (new random data, new image IDs)
#   --remove    remove every image and exit
#
# Environment: DOCKER_HOST (daemon to use). Needs docker-clair-test/debian12 (`npm run test-images` builds it).
set -euo pipefail

BASE_TAG="docker-clair-test/debian12:latest"
LAYERS=4
# tag:bytes-per-layer
IMAGES=("docker-clair-bench/200m:latest:21000000" "docker-clair-bench/800m:latest:175000000")
# Built on the 200m image, one layer each.
MANY_BASE="docker-clair-bench/200m:latest"
MANY=("docker-clair-bench/many-a:latest" "docker-clair-bench/many-b:latest" "docker-clair-bench/many-c:latest")
MANY_BYTES=5000000

log() { printf 'bench-images: %s\n' "$*" >&2; }
die() { printf 'bench-images: ERROR: %s\n' "$*" >&2; exit 1; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
now_ms() { date +%s%3N; }

REBUILD=0
REMOVE=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    --remove) REMOVE=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
      exit 0
      ;;
    *) die "unknown argument: $arg (usage: $0 [--rebuild] [--remove])" ;;
  esac
done

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "cannot reach the Docker daemon (DOCKER_HOST=${DOCKER_HOST:-unset})"

for spec in "${MANY[@]}" "${IMAGES[@]}"; do
  tag=${spec%:*}
  [[ "$spec" == *:latest ]] && tag=$spec # a MANY tag has no :bytes
  if (( REBUILD || REMOVE )) && image_exists "$tag"; then
    log "removing $tag"
    docker image rm "$tag" >/dev/null
  fi
done
(( REMOVE )) && exit 0

image_exists "$BASE_TAG" || die "$BASE_TAG is missing: run \`npm run test-images\` first"

# build TAG FROM LAYERS BYTES [PREFIX]: FROM, then LAYERS RUN layers of BYTES random bytes each (in /bench/PREFIXblobN:
# images on one base need different commands, or the build cache would make them one image); skipped when TAG exists.
build() {
  local tag=$1 from=$2 layers=$3 bytes=$4 prefix=${5:-} dockerfile i t0 out n want
  if image_exists "$tag"; then
    log "$tag exists ($(docker image inspect -f '{{.Size}}' "$tag") bytes); skipped (--rebuild to rebuild)"
    return
  fi
  dockerfile="FROM $from"$'\n'
  for i in $(seq 1 "$layers"); do
    dockerfile+="RUN mkdir -p /bench && head -c $bytes /dev/urandom > /bench/${prefix}blob$i"$'\n'
  done
  log "building $tag: $from + $layers layer(s) of $bytes random bytes"
  t0=$(now_ms)
  # No context: the Dockerfile comes on stdin. --rm removes the intermediate containers.
  # The build's output (and the classic builder's deprecation notice) is shown only if it fails.
  if ! out=$(printf '%s' "$dockerfile" | DOCKER_BUILDKIT=0 docker build --network none --rm -t "$tag" - 2>&1); then
    printf '%s\n' "$out" | tail -n 30 >&2
    die "docker build of $tag failed"
  fi
  n=$(docker image inspect -f '{{len .RootFS.Layers}}' "$tag")
  want=$(( $(docker image inspect -f '{{len .RootFS.Layers}}' "$from") + layers ))
  (( n == want )) || die "$tag has $n layers, expected $want"
  log "$tag built in $(( ($(now_ms) - t0) / 1000 )) s: $(docker image inspect -f '{{.Size}}' "$tag") bytes, $n layers"
}

for spec in "${IMAGES[@]}"; do
  build "${spec%:*}" "$BASE_TAG" "$LAYERS" "${spec##*:}"
done
for tag in "${MANY[@]}"; do
  name=${tag#docker-clair-bench/}
  build "$tag" "$MANY_BASE" 1 "$MANY_BYTES" "${name%:latest}-"
done
