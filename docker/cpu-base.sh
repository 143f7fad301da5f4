#!/usr/bin/env bash
# Makes the local base image that docker-compose.yml's CPU services are built on in place
# of rapidsai/base (docs/deploy.md): Debian's minimal root file system with its python3,
# and the pipeline's dependencies at the versions installed on this host, as wheels this
# host's pip gathers. Nothing is downloaded inside a Docker build, so no image registry
# needs to be reachable. Needs root (debootstrap), a Docker engine, and Python 3.11 with
# the project installed (the wheels must fit Debian bookworm's python3).
#
#   docker/cpu-base.sh          # -> pipeline-cpu-base:local; a rerun with nothing changed
#                               #    does nothing (the image carries a hash of its inputs)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${CPU_BASE_IMAGE:-pipeline-cpu-base:local}
DEBIAN_IMAGE=pipeline-debian:bookworm-minbase
PYTHON=${PYTHON:-python}

fail() { echo "error: docker/cpu-base.sh: $*" >&2; exit 1; }
[ "$("$PYTHON" -c 'import sys; print(sys.version_info[:2] == (3, 11))')" = True ] ||
  fail "the wheels must fit Debian bookworm's python3 (3.11): set PYTHON to a Python 3.11"

work=$(mktemp -d /var/tmp/pipeline-cpu-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/wheels"
{ "$PYTHON" docker/pins.py
  "$PYTHON" -c 'import setuptools; print(f"setuptools=={setuptools.__version__}")'
} > "$work/wheels/requirements.txt" || fail "cannot pin the dependencies (pip install -e . first)"

key=$(cat docker/cpu-base.sh docker/cpu-base.Dockerfile "$work/wheels/requirements.txt" |
      sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "pipeline.key"}}' "$TAG" 2>/dev/null)" = "$key" ]; then
  echo "$TAG is current ($key)"
  exit 0
fi

log() { echo "$TAG: $1 in $((SECONDS - start)) s"; start=$SECONDS; }
start=$SECONDS
if ! docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
  # the Debian mirror apt uses here; debootstrap's own default where there is none
  mirror=$(sed -n 's|^URIs: *\([^ ]*/debian\)/\?$|\1|p' /etc/apt/sources.list.d/*.sources \
           2>/dev/null | head -1)
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$work/rootfs" \
      ${mirror:+"$mirror"} > "$work/debootstrap.log" 2>&1 ||
    { tail -5 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | docker import - "$DEBIAN_IMAGE" > /dev/null
  rm -rf "$work/rootfs"
  log "$DEBIAN_IMAGE made by debootstrap"
fi

# only-binary: every wheel fits the image's Python as is; no compiler runs anywhere
"$PYTHON" -m pip wheel --no-deps --only-binary=:all: --wheel-dir "$work/wheels" \
    -r "$work/wheels/requirements.txt" > "$work/pip.log" 2>&1 ||
  { grep -v '^WARNING: Location' "$work/pip.log" | tail -5 >&2; fail "pip wheel failed"; }
log "$(grep -c . "$work/wheels/requirements.txt") wheels gathered"
docker build --tag "$TAG" --label "pipeline.key=$key" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
    -f docker/cpu-base.Dockerfile "$work" > "$work/build.log" 2>&1 ||
  { tail -10 "$work/build.log" >&2; fail "docker build failed"; }
log "image built (key $key)"
