#!/usr/bin/env bash
# Installs what crosswire's build, tests and demo need on a fresh Debian
# machine (run as root). Idempotent; quick when everything is present.
set -euo pipefail

pkgs=(nftables iproute2 iperf3 tcpdump wireguard-tools iputils-ping procps make gcc)
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
echo "install-deps: ok ($(go version | awk '{print $3}'), $(nft --version), $(tcpdump --version 2>&1 | head -1))"
