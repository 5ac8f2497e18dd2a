# The database: official postgres:15 with the nl2sql extension. The extension is built with the
# same scripts CI runs (scripts/setup-machine build, scripts/install-extension --package). The
# model is not in the image: the compose service "model" fetches it into a volume with
# scripts/fetch-model (checksum-verified, fetched once), so image rebuilds do not re-download 1 GB.
ARG CARGO_FEATURES=""

FROM rust:1.95-bookworm AS build
ARG CARGO_FEATURES
WORKDIR /src
COPY . .
RUN scripts/setup-machine build \
 && scripts/install-extension --release --package /out ${CARGO_FEATURES:+--features "$CARGO_FEATURES"}

FROM postgres:15-bookworm
COPY --from=build /out/usr/share/postgresql/15/extension/ /usr/share/postgresql/15/extension/
COPY --from=build /out/usr/lib/postgresql/15/lib/ /usr/lib/postgresql/15/lib/
COPY data/data.csv /demo/data.csv
COPY sql/demo.sql /demo/demo.sql
COPY docker/db-init.sh /docker-entrypoint-initdb.d/10-nl2sql-demo.sh
