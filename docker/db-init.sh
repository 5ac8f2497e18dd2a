#!/usr/bin/env bash
# First start of the database container only (docker-entrypoint-initdb.d): the extension and the
# demo table, with the same SQL script the local demo uses.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v csv=/demo/data.csv -f /demo/demo.sql
