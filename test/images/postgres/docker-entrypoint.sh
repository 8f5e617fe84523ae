#!/bin/bash
# Entry point of docker-clair-test/postgres: the subset of the official postgres image's docker-entrypoint.sh that
# `docker clair server up` relies on. Env: POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
# POSTGRES_USER (default postgres), POSTGRES_DB (default = user), PGDATA (default /var/lib/postgresql/data),
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256).
# Runs as root: fixes PGDATA's owner, initialises an empty PGDATA, then execs postgres as the postgres user.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

# `docker run IMAGE -c setting=value` means postgres with flags, as in the official image.
if [[ $# -eq 0 || "${1:0:1}" == "-" ]]; then set -- postgres "$@"; fi

if [[ "$1" != "postgres" ]]; then exec "$@"; fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA

if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 00700 "$PGDATA" || :
  chown postgres:postgres /var/run/postgresql
  chmod 2775 /var/run/postgresql
  # Only chown when needed: a large existing PGDATA need not be walked on every start.
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' + 2>/dev/null || chown -R postgres:postgres "$PGDATA"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" && "$POSTGRES_HOST_AUTH_METHOD" != "trust" ]]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
MSG
    exit 1
  fi
  log "initialising the database cluster in $PGDATA (superuser $POSTGRES_USER, database $POSTGRES_DB)"
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  chown postgres "$pwfile"
  pwargs=()
  [[ -n "${POSTGRES_PASSWORD:-}" ]] && pwargs=(--pwfile="$pwfile")
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is word-split on purpose, as in the official image
  as_postgres initdb --username="$POSTGRES_USER" "${pwargs[@]}" --auth-local=trust \
    --auth-host="$POSTGRES_HOST_AUTH_METHOD" --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >&2
  rm -f "$pwfile"
  {
    printf '\n# docker-clair-test/postgres: any host, password (as the official image)\n'
    printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
  } >>"$PGDATA/pg_hba.conf"
  sed -ri "s/^#?(listen_addresses)\s*=\s*\S+.*/\1 = '*'/" "$PGDATA/postgresql.conf"
  grep -q "^listen_addresses = '\*'" "$PGDATA/postgresql.conf" || echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [[ "$POSTGRES_DB" != "postgres" ]]; then
    db=${POSTGRES_DB//\"/\"\"}
    log "creating database $POSTGRES_DB"
    printf 'CREATE DATABASE "%s";\n' "$db" | as_postgres postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  log "initialisation done; starting postgres"
else
  log "$PGDATA holds a database cluster (PG_VERSION $(cat "$PGDATA/PG_VERSION")); starting postgres"
fi

if [[ "$(id -u)" == 0 ]]; then
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
fi
exec "$@"
