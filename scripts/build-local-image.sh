#!/usr/bin/env bash
# Builds capture-image/Dockerfile with podman on a machine that reaches no container registry, for the tests
# that run the agent inside its image. The base is made from Debian packages instead of the digest-pinned
# python image: bookworm's python3 (3.11, the image's version) by mmdebstrap, imported into podman and passed
# as the BASE_IMAGE build argument; the Dockerfile itself runs unchanged (pip from PyPI, tcpdump from Debian).
# The base gets this host's CA bundle, so the build fetches through whatever TLS proxy the host trusts.
# The base is built once per package list and CA bundle: the tarball is kept in build/capture-image/ and the
# imported image in podman's store; podman's layer cache makes an unchanged rebuild take a few seconds.
# Prints the image as a digest reference (localhost/eks-capture-agent@sha256:...) on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

# crun fails on this kind of host's cgroups (v1, no systemd session); runc with cgroupfs works.
podman=(podman --runtime /usr/sbin/runc --cgroup-manager=cgroupfs)
base_packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
image=localhost/eks-capture-agent
cache=build/capture-image

scripts/install-system-tools.sh >&2
key=$( { echo "bookworm minbase ${base_packages}"; cat /etc/ssl/certs/ca-certificates.crt; } | sha256sum | cut -c1-12)
base="localhost/eks-capture-base:bookworm-${key}"
if ! "${podman[@]}" image exists "${base}"; then
  mkdir -p "${cache}"
  tarball="${cache}/base-bookworm-${key}.tar"
  if [ ! -s "${tarball}" ]; then
    echo "making the base from Debian packages: ${base_packages}" >&2
    # shellcheck disable=SC2016  # $1 is the hook's argument (the new root), expanded by mmdebstrap's shell
    mmdebstrap --quiet --format=tar --variant=minbase --aptopt='APT::Install-Recommends "false"' \
      --include="${base_packages}" \
      --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"' \
      bookworm "${tarball}.part" http://deb.debian.org/debian >&2
    mv "${tarball}.part" "${tarball}"
  fi
  "${podman[@]}" import --quiet "${tarball}" "${base}" >&2
fi
"${podman[@]}" build --quiet --network host --build-arg "BASE_IMAGE=${base}" --tag "${image}:local" \
  capture-image >&2
digest=$("${podman[@]}" image inspect --format '{{.Digest}}' "${image}:local")
echo "${image}@${digest}"
