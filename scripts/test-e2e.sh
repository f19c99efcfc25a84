#!/usr/bin/env bash
# Only the end-to-end tests (tests/tests/*_on_cluster.rs), against the
# cluster MULTUS_E2E_KUBECONFIG points at, with the image MULTUS_E2E_IMAGE
# on its nodes. scripts/test.sh runs them too, with everything else; this
# is for a second cluster (CI proves the suite on two Kubernetes versions)
# or for iterating on one cluster:
#   MULTUS_E2E_KUBECONFIG=... MULTUS_E2E_IMAGE=... sudo -E scripts/test-e2e.sh
#   scripts/test-e2e.sh chart_on_cluster     # only the files named
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${MULTUS_E2E_KUBECONFIG:-}" ]; then
  echo "test-e2e: set MULTUS_E2E_KUBECONFIG (and MULTUS_E2E_IMAGE) to the cluster to test" >&2
  exit 2
fi

tests=()
if [ "$#" -gt 0 ]; then
  for name in "$@"; do tests+=(--test "${name%.rs}"); done
else
  for file in tests/tests/*_on_cluster.rs; do
    name=$(basename "$file" .rs)
    tests+=(--test "$name")
  done
fi
echo "== end-to-end tests: ${tests[*]}"
cargo test --locked -p multus-e2e "${tests[@]}"
echo "== end-to-end tests passed"
