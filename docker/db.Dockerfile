# The database: PostgreSQL 15 from Debian with the nl2sql extension, self-contained. On its first
# start (an empty data volume) it runs initdb, creates the extension, loads the demo table and
# the read-only role the web service uses; a healthcheck says when questions can be asked.
#
# The one base image is debian:bookworm-slim (docker pull it, or make it without a registry with
# scripts/docker-base-image). The extension is built from source in a Rust builder stage; CI,
# which has already built it, passes BUILDER_IMAGE=debian:bookworm-slim and puts that build in
# docker/prebuilt/extension (scripts/install-extension --package), so it is not compiled twice.
ARG BUILDER_IMAGE=rust:1.95-bookworm

FROM ${BUILDER_IMAGE} AS build
ARG CARGO_FEATURES=""
WORKDIR /src
COPY . .
RUN if [ -d docker/prebuilt/extension ]; then cp -a docker/prebuilt/extension /out; \
    else scripts/setup-machine build \
      && scripts/install-extension --release --package /out ${CARGO_FEATURES:+--features "$CARGO_FEATURES"}; fi

FROM debian:bookworm-slim
# Debian's package would create a cluster of its own; this image makes its one cluster at first start.
RUN mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres /var/run/postgresql
COPY --from=build /out/usr/share/postgresql/15/extension/ /usr/share/postgresql/15/extension/
COPY --from=build /out/usr/lib/postgresql/15/lib/ /usr/lib/postgresql/15/lib/
COPY data/data.csv sql/demo.sql /demo/
COPY docker/db-entrypoint.sh /usr/local/bin/db-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
# Healthy = the server answers, the extension is installed and its model file is present (or,
# with nl2sql.backend = openai, an inference endpoint is set: docker-compose.remote.yml).
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=60 \
  CMD pg_isready -q -h /var/run/postgresql && \
      psql -h /var/run/postgresql -U "${POSTGRES_USER:-nl2sql}" -d "${POSTGRES_DB:-nl2sql}" -tAc \
        "SELECT nl2sql_status()->>'ready'" | grep -qx true
ENTRYPOINT ["db-entrypoint"]
CMD ["postgres"]
