# One-shot: fetches the default model into the "models" volume with scripts/fetch-model
# (skipped when a verified copy is already there).
FROM python:3.11-slim-bookworm
COPY scripts/fetch-model /usr/local/bin/fetch-model
ENV NL2SQL_CACHE_DIR=/models
CMD ["fetch-model"]
