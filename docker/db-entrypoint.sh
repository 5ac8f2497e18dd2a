#!/usr/bin/env bash
# The database container's entry point. First start (empty $PGDATA): initdb with the superuser
# $POSTGRES_USER / $POSTGRES_PASSWORD, then the demo (sql/demo.sql: CREATE EXTENSION, the pizza
# table, the read-only role nl2sql_web) on a server that listens on its socket only. Every start:
# the server in the foreground, with the arguments given (e.g. -c nl2sql.model_path=...).
set -euo pipefail
: "${POSTGRES_USER:=nl2sql}" "${POSTGRES_DB:=nl2sql}"
[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "db-entrypoint: set POSTGRES_PASSWORD" >&2; exit 1; }
[ "${1:-postgres}" = postgres ] && shift || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "db-entrypoint: first start: initdb, then the demo database"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    {
        echo "listen_addresses = '*'"
        echo "unix_socket_directories = '/var/run/postgresql'"
    } >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # RUST_BACKTRACE would make every ERROR raised through Rust print a backtrace to the log.
    env -u RUST_BACKTRACE pg_ctl -D "$PGDATA" -o "-c listen_addresses='' $*" -w start >/dev/null
    psql=(psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER")
    [ "$POSTGRES_DB" = postgres ] || "${psql[@]}" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
    "${psql[@]}" -d "$POSTGRES_DB" -v csv=/demo/data.csv -f /demo/demo.sql
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "db-entrypoint: demo database ready"
fi
exec env -u RUST_BACKTRACE postgres -D "$PGDATA" "$@"
