# One-shot: fetches the default model and the embedding model into the "models" volume with
# scripts/fetch-model (skipped when verified copies are already there; a fetch cut short resumes).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/fetch-model /usr/local/bin/fetch-model
ENV NL2SQL_CACHE_DIR=/models
CMD ["sh", "-c", "fetch-model && fetch-model --embedding"]
