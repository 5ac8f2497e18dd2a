# The database with a CUDA build of the extension (see docker-compose.gpu.yml). Same scripts as
# db.Dockerfile; the build stage adds the CUDA toolkit, the runtime stage the CUDA libraries.
FROM nvidia/cuda:12.4.1-devel-ubuntu22.04 AS cuda

FROM rust:1.95-bookworm AS build
COPY --from=cuda /usr/local/cuda /usr/local/cuda
ENV PATH=/usr/local/cuda/bin:$PATH LD_LIBRARY_PATH=/usr/local/cuda/lib64
WORKDIR /src
COPY . .
RUN scripts/setup-machine build && scripts/install-extension --release --package /out --features cuda

FROM postgres:15-bookworm
COPY --from=cuda /usr/local/cuda/lib64/ /usr/local/cuda/lib64/
ENV LD_LIBRARY_PATH=/usr/local/cuda/lib64
COPY --from=build /out/usr/share/postgresql/15/extension/ /usr/share/postgresql/15/extension/
COPY --from=build /out/usr/lib/postgresql/15/lib/ /usr/lib/postgresql/15/lib/
COPY data/data.csv /demo/data.csv
COPY sql/demo.sql /demo/demo.sql
COPY docker/db-init.sh /docker-entrypoint-initdb.d/10-nl2sql-demo.sh
