# syntax=docker/dockerfile:1
# The ipfsbench-node image: one binary for every role, with DuckDB's library beside it.
#
#   docker build -t ipfsbench-node .
#
# The build fetches crates from crates.io and DuckDB's prebuilt library from the npm registry
# (sql/build.rs; set IPFSBENCH_DUCKDB_DIR to build without the latter).

# The toolchain named by `rust-version` in Cargo.toml; bookworm, as the runtime stage below,
# so the binary finds the glibc it was linked against.
FROM rust:1.89-bookworm AS builder
# sql/build.rs fetches and checks libduckdb.so with Python's standard library.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The build script links libduckdb.so into <target>/release/deps; the binary's rpath starts
# with $ORIGIN, so the two are copied out side by side. The target directory is not a cache
# mount: a library left there by an earlier build of another DuckDB version would be kept.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p ipfsbench-node \
 && mkdir -p /out \
 && cp target/release/ipfsbench-node target/release/deps/libduckdb.so /out/

FROM debian:bookworm-slim
# libduckdb.so is C++: it needs libstdc++ (already in the base image; named so it stays).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ipfsbench \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home ipfsbench \
 && mkdir -p /data \
 && chown 10001:10001 /data
COPY --from=builder /out/ipfsbench-node /out/libduckdb.so /opt/ipfsbench/
ENV PATH=/opt/ipfsbench:$PATH \
    IPFSBENCH_PATH=/data
USER 10001:10001
WORKDIR /data
VOLUME /data
# libp2p (TCP; UDP for QUIC outside a private network), the HTTP API, the HTTP gateway.
EXPOSE 4101/tcp 4101/udp 5101/tcp 8080/tcp
ENTRYPOINT ["/opt/ipfsbench/ipfsbench-node"]
CMD ["--help"]
