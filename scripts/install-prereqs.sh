#!/usr/bin/env bash
# Installs what the test suite needs on a Debian/Ubuntu machine that has only
# Rust: the real CNI plugins (containernetworking-plugins, in /usr/lib/cni),
# iproute2, python3 (image builder), unzip, and a real `helm` binary
# (scripts/install-helm.sh). Idempotent: installs only what is missing.
# Needs root (or sudo) for the packages.
#   install-prereqs.sh               everything the test suite needs
#   install-prereqs.sh --no-helm     only the packages (the demo)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=()
[ -x /usr/lib/cni/bridge ] || pkgs+=(containernetworking-plugins)
command -v ip >/dev/null || pkgs+=(iproute2)
command -v python3 >/dev/null || pkgs+=(python3)
command -v unzip >/dev/null || pkgs+=(unzip)
with_helm=true
[ "${1:-}" = "--no-helm" ] && with_helm=false
if $with_helm && ! helm version --short 2>/dev/null | grep -q '^v4\.'; then
  command -v npm >/dev/null || pkgs+=(npm)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "install-prereqs: missing ${pkgs[*]} and no apt-get; install them by hand" >&2
    exit 1
  fi
  echo "== installing ${pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

if $with_helm; then ./scripts/install-helm.sh; fi
