#!/usr/bin/env bash
# Local demo, no cluster needed (root, Debian): the node agent generates the
# Multus config from a bridge default network plus a file-based ptp default
# network, then the multus plugin attaches both to a fresh network namespace
# exactly as a container runtime would (CNI env + config on stdin), prints
# the interfaces and the CNI result, and DELs. Everything it creates is
# removed at the end, also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "demo: run as root (it creates a network namespace)" >&2; exit 1; fi
./scripts/install-prereqs.sh --no-helm   # CNI plugins, iproute2, python3

echo "== building multus-operator and multus"
cargo build --quiet --locked -p multus-operator -p multus-plugin
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

work="$(mktemp -d /tmp/multus-demo.XXXXXX)"
netns="multus-demo-$$"
bridge="mdemo$$"
cleanup() {
  set +e
  if [ -f "$work/added" ]; then
    CNI_COMMAND=DEL CNI_CONTAINERID=demo CNI_NETNS="/var/run/netns/$netns" CNI_IFNAME=eth0 \
      CNI_PATH="$work/bin" CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo" \
      "$work/bin/multus" < "$work/net.d/00-multus.conf" >/dev/null 2>&1
  fi
  ip netns del "$netns" 2>/dev/null
  ip link del "$bridge" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/net.d" "$work/bin" "$work/multus.d" "$work/ipam"
cp /usr/lib/cni/* "$work/bin/"
# The cluster's default network: a bridge with host-local IPAM.
cat > "$work/net.d/10-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "demo-pod-network",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true,
     "ipam": {"type": "host-local", "subnet": "10.77.1.0/24", "dataDir": "$work/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
# An extra network every pod gets (defaultNetworks), from the Multus conf dir.
cat > "$work/multus.d/ptp-net.conf" <<JSON
{"cniVersion": "0.4.0", "name": "ptp-net", "type": "ptp",
 "ipam": {"type": "host-local", "subnet": "10.77.2.0/24", "dataDir": "$work/ipam"}}
JSON
cat > "$work/agent.yaml" <<YAML
logLevel: verbose
defaultNetworks: [ptp-net]
multusConfDir: $work/multus.d
cacheDir: $work/cache
YAML

echo "== node agent: install the plugin and generate the Multus config (--once --no-kube)"
"$target/multus-operator" node-agent --once --no-kube \
  --cni-conf-dir "$work/net.d" --host-cni-conf-dir "$work/net.d" \
  --cni-bin-dir "$work/bin" --plugin-binary "$target/multus" --config "$work/agent.yaml"
echo "-- $work/net.d/00-multus.conf:"
cat "$work/net.d/00-multus.conf"

echo "== multus ADD for a new pod sandbox (network namespace $netns)"
ip netns add "$netns"
touch "$work/added"
CNI_COMMAND=ADD CNI_CONTAINERID=demo CNI_NETNS="/var/run/netns/$netns" CNI_IFNAME=eth0 \
  CNI_PATH="$work/bin" CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo" \
  "$work/bin/multus" < "$work/net.d/00-multus.conf" > "$work/result.json"
echo "-- interfaces in the pod:"
ip -n "$netns" -brief addr show
echo "-- CNI result (the cluster network's, as the runtime receives it):"
python3 -m json.tool "$work/result.json"

echo "== multus DEL"
CNI_COMMAND=DEL CNI_CONTAINERID=demo CNI_NETNS="/var/run/netns/$netns" CNI_IFNAME=eth0 \
  CNI_PATH="$work/bin" CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo" \
  "$work/bin/multus" < "$work/net.d/00-multus.conf"
rm -f "$work/added"
echo "-- interfaces after DEL:"
ip -n "$netns" -brief addr show
echo "== done; cleaning up"
