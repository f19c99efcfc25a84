#!/usr/bin/env bash
# The project's whole test suite: formatting, lints, every test of the
# workspace. README.md names this script; .ci/run runs it after installing
# the system packages the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

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
