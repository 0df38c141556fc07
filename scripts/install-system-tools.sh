#!/usr/bin/env bash
# Installs the system tools the tests and the demo drive for real (tcpdump, tshark, iptables, ...), and
# podman, runc and mmdebstrap, which build and run the capture image (scripts/build-local-image.sh), and a C
# compiler for the CLI's merge (make env builds it).
# Only root can install; anyone else is told what is missing and the root-only tests skip locally.
set -euo pipefail

needed=(tcpdump:tcpdump tshark:tshark capinfos:tshark mergecap:tshark iptables:iptables ip:iproute2
        ethtool:ethtool conntrack:conntrack chromium:chromium chromedriver:chromium-driver
        podman:podman runc:runc mmdebstrap:mmdebstrap shellcheck:shellcheck jq:jq cc:gcc)
missing=()
for pair in "${needed[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
  echo "note: not root, so not installing: ${packages}(tests that need them will skip)" >&2
  exit 0
fi
echo "installing system tools: ${packages}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends ${packages} >/dev/null
