#!/usr/bin/env bash
# The project's whole test suite: formatting, lints, every test of the
# workspace. README.md names this script; .ci/run runs it with a local
# cluster for the end-to-end tests. Installs what the tests need first
# (scripts/install-prereqs.sh: CNI plugins, iproute2, python3, helm).
# Set MULTUS_E2E_KUBECONFIG (and MULTUS_E2E_IMAGE) to run the end-to-end
# tests against a cluster; without it they are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== prerequisites"
./scripts/install-prereqs.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== generated CRDs are committed"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cargo run --quiet --locked -p multus-operator -- crd --output-dir "$tmp"
for f in "$tmp"/*.yaml; do
  diff -u "crds/$(basename "$f")" "$f"
done
echo "== all tests passed"
