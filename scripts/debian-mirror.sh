#!/usr/bin/env bash
# Prints the Debian mirror to use: DEBIAN_MIRROR, else the URI of the apt sources' entry for SUITE (default
# bookworm), read from deb822 .sources files or one-line .list files. Never hard-coded: a machine's own mirror is
# the one it can reach. Exit 1 when there is none.
#
#   scripts/debian-mirror.sh [SUITE]
set -euo pipefail
SUITE="${1:-bookworm}"

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

detect_mirror
