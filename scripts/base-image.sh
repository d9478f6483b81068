#!/usr/bin/env bash
# Make the Debian bookworm + Python 3.11 base image these machines can build (no registry can be
# reached to pull one), and print its reference as the last line: localhost/privchat-base:<key>.
#
#   scripts/base-image.sh            # build (or reuse) the base; prints its reference
#
# The root file system comes from debootstrap and is cached under $PRIVCHAT_BASE_CACHE
# (default /var/tmp/privchat-base), keyed by everything that goes into it, so CI makes it once per
# machine. A real deployment does not use this: it builds on the public, digest-pinned base named
# in docs/deploy.md (BASE_IMAGE=python:3.11-slim-bookworm@sha256:...).
set -euo pipefail

fail() { echo "base-image.sh: $*" >&2; exit 1; }

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=python3,python3-venv,ca-certificates
CACHE=${PRIVCHAT_BASE_CACHE:-/var/tmp/privchat-base}

command -v debootstrap >/dev/null || fail "debootstrap is not installed: apt-get install -y debootstrap"
command -v podman >/dev/null || fail "podman is not installed: apt-get install -y podman runc"
[ "$(id -u)" = 0 ] || fail "debootstrap needs root"

PODMAN=(podman --storage-driver vfs --runtime runc --cgroup-manager cgroupfs)
KEY=$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" "v1" | sha256sum | cut -c1-16)
REF=localhost/privchat-base:$KEY
TARBALL=$CACHE/$KEY.tar

if "${PODMAN[@]}" image exists "$REF"; then
    echo "$REF"
    exit 0
fi

mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    ROOTFS=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$ROOTFS" "$TARBALL.part"' EXIT
    echo "debootstrap $SUITE into $ROOTFS (about a minute)" >&2
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
        || { tail -n 20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; fail "debootstrap failed (see above)"; }
    rm -f "$ROOTFS.log"
    # Residue that differs from one debootstrap to the next, and nothing the image needs.
    rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* \
        "$ROOTFS"/var/cache/ldconfig/aux-cache "$ROOTFS"/tmp/*
    # mktemp makes the directory 0700; as the image's / that would lock out the non-root user.
    chmod 755 "$ROOTFS"
    tar -C "$ROOTFS" --sort=name --numeric-owner --mtime=@0 -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
fi
"${PODMAN[@]}" import --quiet "$TARBALL" "$REF" >/dev/null
echo "$REF"
