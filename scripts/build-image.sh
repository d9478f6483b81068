#!/usr/bin/env bash
# Build the privchat image reproducibly from the committed source and print its manifest digest.
#
#   BASE_IMAGE=REF scripts/build-image.sh [--frontend-dist DIR | --frontend-version COMMIT]
#                                         [--out FILE] [--tag NAME] [--compare OTHER.tar]
#
# - The build context is `git archive HEAD` (a clean checkout: nothing uncommitted, no .venv).
# - BASE_IMAGE must be pinned: `name@sha256:<64 hex>` (a real build, see docs/deploy.md) or a
#   local image made by scripts/base-image.sh (`localhost/...`).
# - Engine: docker buildx where it works, else podman (with the flags these machines need).
#   No cache, SOURCE_DATE_EPOCH=0, every timestamp fixed to 0.
# - Writes an OCI archive (default: privchat-oci.tar in the current directory) and prints its
#   manifest digest (`sha256:...`) as the last line: the digest a deployment pins.
# - --frontend-dist DIR puts an already built frontend (DIR/index.html) at FRONTEND_DIR;
#   --frontend-version COMMIT builds nearai/private-chat at that commit (needs GitHub and a
#   node base); neither: no frontend.
# - --compare OTHER.tar: when the digest differs from OTHER's, name the differing files
#   (scripts/oci_diff.py; diffoscope too when installed) and exit 1.
set -euo pipefail

fail() { echo "build-image.sh: $*" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$PWD/privchat-oci.tar
TAG=localhost/privchat:build
FRONTEND_DIST=
FRONTEND_VERSION=${PRIVATE_CHAT_FRONTEND_VERSION:-}
COMPARE=
while [ $# -gt 0 ]; do
    case "$1" in
        --frontend-dist) FRONTEND_DIST=${2:?}; shift 2 ;;
        --frontend-version) FRONTEND_VERSION=${2:?}; shift 2 ;;
        --out) OUT=$(realpath -m "${2:?}"); shift 2 ;;
        --tag) TAG=${2:?}; shift 2 ;;
        --compare) COMPARE=$(realpath -m "${2:?}"); shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) fail "unknown argument: $1 (see --help)" ;;
    esac
done

BASE_IMAGE=${BASE_IMAGE:-}
[ -n "$BASE_IMAGE" ] || fail "set BASE_IMAGE: a digest-pinned base (see docs/deploy.md) or the reference scripts/base-image.sh prints"
if [[ ! "$BASE_IMAGE" =~ @sha256:[0-9a-f]{64}$ && "$BASE_IMAGE" != localhost/* ]]; then
    fail "BASE_IMAGE $BASE_IMAGE is not pinned: use NAME@sha256:<64 hex> (or a localhost/ image from scripts/base-image.sh)"
fi
[ -z "$FRONTEND_DIST" ] || [ -z "$FRONTEND_VERSION" ] || fail "give --frontend-dist or --frontend-version, not both"
if [ -n "$FRONTEND_DIST" ]; then
    [ -f "$FRONTEND_DIST/index.html" ] || fail "frontend directory $FRONTEND_DIST has no index.html"
elif [ -n "$FRONTEND_VERSION" ]; then
    [[ "$FRONTEND_VERSION" =~ ^[0-9a-f]{40}$ ]] || fail "--frontend-version must be a full 40-hex commit, got $FRONTEND_VERSION"
fi
[ -z "$COMPARE" ] || [ -s "$COMPARE" ] || fail "cannot read $COMPARE to compare with"

ENGINE=
if command -v docker >/dev/null && docker buildx version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
elif command -v podman >/dev/null; then
    ENGINE=podman
else
    fail "no container engine: install podman (apt-get install -y podman buildah runc skopeo) or docker with buildx"
fi
command -v skopeo >/dev/null || fail "skopeo is not installed: apt-get install -y skopeo"
git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || fail "$ROOT is not a git checkout with a commit"
PODMAN=(podman --storage-driver vfs --runtime runc --cgroup-manager cgroupfs)
if [ "$ENGINE" = podman ] && [[ "$BASE_IMAGE" == localhost/* ]] && ! "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
    fail "base image $BASE_IMAGE does not exist here: run scripts/base-image.sh and pass what it prints"
fi

COMMIT=$(git -C "$ROOT" rev-parse HEAD)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]; then
    echo "build-image.sh: note: uncommitted changes are not built; building commit $COMMIT" >&2
fi
CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
git -C "$ROOT" archive --format=tar "$COMMIT" | tar -x -C "$CTX"
mkdir -p "$CTX/.frontend-dist"
[ -z "$FRONTEND_DIST" ] || cp -r "$FRONTEND_DIST/." "$CTX/.frontend-dist/"

ARGS=(--no-cache --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg SOURCE_DATE_EPOCH=0)
START=$(date +%s)
rm -f "$OUT"
echo "build-image.sh: building commit $COMMIT on $BASE_IMAGE with $ENGINE (frontend: ${FRONTEND_DIST:-${FRONTEND_VERSION:-none}})" >&2
if [ -n "$FRONTEND_VERSION" ]; then
    # The optional node stage alone; its /dist becomes the context's frontend.
    FRONT=(--target frontend-github --build-arg "PRIVATE_CHAT_FRONTEND_VERSION=$FRONTEND_VERSION"
           --output "type=local,dest=$CTX/.frontend-build" -f "$CTX/Dockerfile" "$CTX")
    if [ "$ENGINE" = docker ]; then
        docker buildx build "${ARGS[@]}" --platform linux/amd64 "${FRONT[@]}" >&2
    else
        "${PODMAN[@]}" build "${ARGS[@]}" --layers=false --timestamp 0 --network host \
            --ulimit nofile=20000:20000 --ulimit nproc=8192:8192 "${FRONT[@]}" >&2
    fi || fail "the frontend stage failed (it needs GitHub and the node base; output above)"
    cp -r "$CTX/.frontend-build/dist/." "$CTX/.frontend-dist/"
    rm -rf "$CTX/.frontend-build"
fi
if [ "$ENGINE" = docker ]; then
    docker buildx build "${ARGS[@]}" --platform linux/amd64 \
        --output "type=oci,dest=$OUT,rewrite-timestamp=true" -f "$CTX/Dockerfile" "$CTX" >&2
    docker buildx build "${ARGS[@]}" --platform linux/amd64 \
        --output "type=docker,name=$TAG,rewrite-timestamp=true" -f "$CTX/Dockerfile" "$CTX" >&2
else
    CA=()
    [ ! -f /etc/ssl/certs/ca-certificates.crt ] || \
        CA=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
    "${PODMAN[@]}" build "${ARGS[@]}" --layers=false --timestamp 0 --network host \
        --ulimit nofile=20000:20000 --ulimit nproc=8192:8192 "${CA[@]}" \
        -t "$TAG" -f "$CTX/Dockerfile" "$CTX" >&2 \
        || fail "podman build failed (output above)"
    "${PODMAN[@]}" push --quiet "$TAG" "oci-archive:$OUT:$TAG" >&2
fi
DIGEST=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$OUT")
echo "build-image.sh: $(( $(date +%s) - START )) s, archive $OUT ($(du -m "$OUT" | cut -f1) MB)" >&2
if [ -n "$COMPARE" ]; then
    OTHER=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$COMPARE")
    if [ "$OTHER" != "$DIGEST" ]; then
        echo "build-image.sh: NOT REPRODUCED: $DIGEST here, $OTHER in $COMPARE; what differs:" >&2
        python3 "$ROOT/scripts/oci_diff.py" "$COMPARE" "$OUT" >&2 || true
        echo "$DIGEST"
        exit 1
    fi
    echo "build-image.sh: reproduced $COMPARE" >&2
fi
echo "$DIGEST"
