# syntax=docker/dockerfile:1
# The operator image: a static release binary on an empty base, running as a non-root user.
#
#   docker build -t amlsecrets:0.1.0 .
#       compiles the binary from source in the Rust image (needs the base image and the crates).
#   docker build --build-arg BINARY=prebuilt -t amlsecrets:0.1.0 DIR
#       takes DIR/amlsecrets, a binary built the same way outside (what scripts/build-image.sh
#       does with buildah where no base image can be pulled); DIR holds nothing else.
#
# Either way the binary is static glibc (`+crt-static`; Debian 12's glibc 2.36 has the files
# and DNS resolvers built in) and needs no system files: TLS roots are compiled in
# (webpki-roots) and an extra CA bundle is mounted by the chart when configured.

ARG RUST_VERSION=1.95
# `source` (default) or `prebuilt`: where /amlsecrets comes from.
ARG BINARY=source

FROM rust:${RUST_VERSION}-bookworm AS source
WORKDIR /src
COPY . .
# An explicit --target keeps build scripts and proc macros dynamic while the binary is static.
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-gnu" \
 && cargo build --release --locked --bin amlsecrets --target "$target" \
 && cp "target/$target/release/amlsecrets" /amlsecrets \
 && /amlsecrets --version

FROM scratch AS prebuilt
COPY amlsecrets /amlsecrets

FROM ${BINARY} AS binary

FROM scratch
COPY --from=binary /amlsecrets /amlsecrets
# 65532: the conventional "nonroot" user; the chart also sets runAsNonRoot and a read-only root.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/amlsecrets"]
CMD ["run"]
