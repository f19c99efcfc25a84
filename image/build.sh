#!/usr/bin/env bash
# Builds the statically linked binaries and the OCI image archive, with no
# container engine:  image/build.sh [REPO:TAG] [OUTPUT]
# Load it with `ctr -n k8s.io images import OUTPUT` or `docker load -i OUTPUT`.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-ghcr.io/multus-rs/multus:v$(cargo pkgid -p multus-operator | sed 's/.*[#@]//')}"
output="${2:-target/multus-image.tar}"
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --release --target "$target" -p multus-operator -p multus-plugin
bin="target/$target/release"
for b in multus-operator multus; do
  if ldd "$bin/$b" 2>&1 | grep -q '=>'; then
    echo "error: $bin/$b is dynamically linked" >&2; exit 1
  fi
done
python3 image/build-image.py --operator "$bin/multus-operator" --plugin "$bin/multus" \
  --image "$image" --output "$output"
