#!/usr/bin/env bash
# Builds the capture image (capture-image/) for linux/amd64 and linux/arm64, pushes it, and prints the digest
# reference to pass as the stack's CaptureImageUri. Works with Docker Engine, Docker Desktop and Finch.
#
#   scripts/build-image.sh REPOSITORY [TAG]           one multi-arch build and push (emulates the other arch)
#   scripts/build-image.sh --native REPOSITORY TAG    this machine's arch only, pushed as TAG-<arch>
#   scripts/build-image.sh --join REPOSITORY TAG      TAG-amd64 and TAG-arm64 joined into TAG (one index)
#
# REPOSITORY is e.g. the stack's CaptureImageRepositoryUri output; TAG defaults to the commit (plus a time
# stamp when capture-image/ has uncommitted changes: ECR's immutable tags refuse a second push of a tag).
# Env: PLATFORMS (default linux/amd64,linux/arm64), CONTAINER_TOOL (docker or finch; default: docker when
# installed), BUILDER (the buildx builder created when the current one cannot build multi-platform).
# The base image is pinned by digest in capture-image/Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."

platforms=${PLATFORMS:-linux/amd64,linux/arm64}
builder=${BUILDER:-eks-capture}
mode="multi"
case "${1:-}" in
  --native) mode="native"; shift ;;
  --join) mode="join"; shift ;;
esac
if [ $# -lt 1 ] || [ $# -gt 2 ] || { [ "${mode}" != multi ] && [ $# -ne 2 ]; }; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
repository=$1
if [ $# -eq 2 ]; then
  tag=$2
else
  tag=$(git rev-parse --short=12 HEAD)
  if [ -n "$(git status --porcelain -- capture-image)" ]; then
    tag="${tag}-dirty-$(date -u +%Y%m%dT%H%M%SZ)"
  fi
fi
tool=${CONTAINER_TOOL:-$(command -v docker >/dev/null 2>&1 && echo docker || echo finch)}
command -v "${tool}" >/dev/null 2>&1 || { echo "neither docker nor finch is installed" >&2; exit 1; }

ecr='^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/'
if [[ ${repository} =~ ${ecr} ]]; then
  echo "logging ${tool} in to ${repository%%/*}" >&2
  aws ecr get-login-password --region "${BASH_REMATCH[1]}" \
    | "${tool}" login --username AWS --password-stdin "${repository%%/*}" >&2
fi

say_digest() {
  if ! [[ $1 =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "the push gave no digest (got '$1')" >&2
    exit 1
  fi
  echo "pushed ${repository}:${tag} - deploy with:" >&2
  echo "CaptureImageUri=${repository}@$1"
}

if [ "${tool}" = finch ]; then
  # Finch's VM has QEMU for the other architecture; nerdctl builds the index and pushes every platform.
  [ "${mode}" = multi ] || { echo "--native and --join are for docker; finch builds both arches at once" >&2; exit 2; }
  finch build --platform "${platforms}" --tag "${repository}:${tag}" capture-image >&2
  finch push --all-platforms "${repository}:${tag}" >&2
  # The containerd image's target is the index the push sent (one line per platform inspected: take one).
  say_digest "$(finch image inspect --mode=native --format '{{.Image.Target.Digest}}' "${repository}:${tag}" \
    | head -n 1)"
  exit 0
fi

if ! docker buildx version >/dev/null 2>&1; then
  echo "docker buildx is missing: Docker Desktop has it; on Docker Engine install the docker-buildx-plugin package" >&2
  exit 1
fi

if [ "${mode}" = join ]; then
  docker buildx imagetools create --tag "${repository}:${tag}" "${repository}:${tag}-amd64" \
    "${repository}:${tag}-arm64" >&2
  say_digest "$(docker buildx imagetools inspect "${repository}:${tag}" --format '{{.Manifest.Digest}}')"
  exit 0
fi

if [ "${mode}" = native ]; then
  case "$(uname -m)" in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
  esac
  docker buildx build --platform "linux/${arch}" --tag "${repository}:${tag}-${arch}" --push capture-image >&2
  echo "pushed ${repository}:${tag}-${arch}; once both arches are pushed: $0 --join ${repository} ${tag}" >&2
  exit 0
fi

# The default builder of Docker Engine (driver "docker") refuses multi-platform builds; a docker-container
# builder (BuildKit in a container) can do them, given QEMU binfmt handlers for the foreign architecture.
current=$(docker buildx inspect | sed -n 's/^Driver: *//p' | head -n 1)
if [ "${current}" = docker ]; then
  if ! docker buildx inspect "${builder}" >/dev/null 2>&1; then
    echo "the current builder (driver docker) cannot build multi-platform: creating builder ${builder}" >&2
    docker buildx create --name "${builder}" --driver docker-container >&2
  fi
  use=(--builder "${builder}")
else
  use=()
fi
available=$(docker buildx inspect --bootstrap ${use[@]+"${use[@]}"} | sed -n 's/^Platforms: *//p' | tr -d ' ')
for platform in ${platforms//,/ }; do
  if [[ ",${available}," != *",${platform},"* ]]; then
    cat >&2 <<EOF
the builder cannot build ${platform} (it has: ${available}). Either install QEMU binfmt handlers once:
  docker run --privileged --rm tonistiigi/binfmt --install all
or build each architecture on a machine of that architecture and join them:
  $0 --native ${repository} ${tag}     (on an amd64 and on an arm64 machine)
  $0 --join ${repository} ${tag}
EOF
    exit 1
  fi
done

metadata=$(mktemp)
trap 'rm -f "${metadata}"' EXIT
docker buildx build ${use[@]+"${use[@]}"} --platform "${platforms}" --tag "${repository}:${tag}" --push \
  --metadata-file "${metadata}" capture-image >&2
say_digest "$(sed -n 's/.*"containerimage.digest": *"\(sha256:[0-9a-f]\{64\}\)".*/\1/p' "${metadata}" | head -n 1)"
