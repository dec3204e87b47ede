#!/usr/bin/env bash
# Installs what crosswire's build, tests and demo need on a fresh Debian
# machine (run as root). Idempotent; quick when everything is present.
set -euo pipefail

pkgs=(nftables iproute2 iperf3 tcpdump wireguard-tools iputils-ping procps make gcc)
# The real-node tests (kubelet + containerd per node; containerd, kubelet and
# the registry themselves are built from Go modules by test/tools/build.sh):
# runc, the CNI plugins bridge/host-local/loopback/portmap in /usr/lib/cni,
# iptables for kube-proxy's iptables mode (Debian's default nf_tables
# backend), conntrack for kube-proxy's stale-UDP-flow cleanup.
pkgs+=(runc containernetworking-plugins iptables conntrack)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "install-deps: Go 1.26 is required (expected in /usr/local/go)"; exit 1; }
case "$(iptables --version)" in
*nf_tables*) ;;
*) echo "install-deps: warning: iptables is not the nf_tables backend ($(iptables --version)); kube-proxy's iptables mode is tested with it (update-alternatives --set iptables /usr/sbin/iptables-nft)" >&2 ;;
esac
echo "install-deps: ok ($(go version | awk '{print $3}'), $(nft --version), $(tcpdump --version 2>&1 | head -1), runc $(runc --version | awk 'NR == 1 {print $3}'), $(iptables --version))"
