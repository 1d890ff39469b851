# syntax=docker/dockerfile:1
# The operator image: a static (musl) release binary on an empty base, running as a non-root user.
# Build:  docker build -t amlsecrets:0.1.0 .
# The binary needs no system files: TLS roots are compiled in (webpki-roots) and an extra CA
# bundle is mounted by the chart when configured.

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-alpine AS build
# musl-dev: the C runtime the ring crate's assembly and the static link need.
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin amlsecrets \
 && cp target/release/amlsecrets /amlsecrets \
 && /amlsecrets --version

FROM scratch
COPY --from=build /amlsecrets /amlsecrets
# 65532: the conventional "nonroot" user; the chart also sets runAsNonRoot and a read-only root.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/amlsecrets"]
CMD ["run"]
