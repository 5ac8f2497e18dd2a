# The web service: one static binary's worth of axum; it holds no model (the database does).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p nl2sql-web

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/nl2sql-web /usr/local/bin/nl2sql-web
ENV BIND_ADDRESS=0.0.0.0:8080
EXPOSE 8080
USER nobody
CMD ["nl2sql-web"]
