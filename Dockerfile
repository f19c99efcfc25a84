# One image with both binaries: multus-operator (controller and node agent)
# and the multus CNI plugin, statically linked on scratch (no shell).
# Without a container engine, image/build.sh produces the same image as an
# OCI archive.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --locked --release --target x86_64-unknown-linux-gnu \
      -p multus-operator -p multus-plugin

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/multus-operator /usr/bin/multus-operator
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/multus /usr/bin/multus
ENV PATH=/usr/bin
ENTRYPOINT ["/usr/bin/multus-operator"]
