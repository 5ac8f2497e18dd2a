# The web service: the axum binary; it holds no model (the database does). Built from source in
# a Rust builder stage; CI passes BUILDER_IMAGE=debian:bookworm-slim and the binary it already
# built in docker/prebuilt/nl2sql-web.
ARG BUILDER_IMAGE=rust:1.95-bookworm

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
RUN if [ -x docker/prebuilt/nl2sql-web ]; then cp docker/prebuilt/nl2sql-web /nl2sql-web; \
    else cargo build --release -p nl2sql-web && cp target/release/nl2sql-web /nl2sql-web; fi

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /nl2sql-web /usr/local/bin/nl2sql-web
ENV BIND_ADDRESS=0.0.0.0:8080
EXPOSE 8080
USER nobody
HEALTHCHECK --interval=5s --timeout=5s --retries=24 CMD curl -fsS http://localhost:8080/healthz >/dev/null
CMD ["nl2sql-web"]
