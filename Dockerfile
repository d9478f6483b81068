# privchat image, reproducible: the same source on the same base gives the same manifest digest.
# Build it with scripts/build-image.sh (no cache, timestamps fixed, OCI archive, digest printed).
#
# What keeps two builds identical (docs/deploy.md, "Reproducibility"):
# - a digest-pinned base (BASE_IMAGE=python:3.11-slim-bookworm@sha256:..., or the debootstrap
#   base of scripts/base-image.sh on machines without a registry);
# - hash-locked wheels only (requirements.lock), and privchat's own wheel built with a
#   hash-locked setuptools (requirements-build.lock) without build isolation, so no unpinned
#   build tool is fetched;
# - no bytecode at install time, then one compileall pass with unchecked-hash .pyc (no source
#   mtimes inside) under PYTHONHASHSEED=0 (set/frozenset constants marshal in hash order);
# - a fixed install prefix (/app/.venv) and the build tree outside the image (bind mount);
# - C.UTF-8 locale; uid/gid 1000 and the "last password change" field of /etc/shadow set to 0;
# - file mtimes and created times fixed by the builder (--timestamp 0 / rewrite-timestamp).

ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG FRONTEND_BUILDER_IMAGE=node:22-slim

# Optional, built only when targeted (`scripts/build-image.sh --frontend-version COMMIT` builds
# `--target frontend-github` first and puts its /dist into the context): the reference's frontend
# stage, nearai/private-chat at a pinned commit, pnpm pinned, frozen lockfile. Needs GitHub.
FROM ${FRONTEND_BUILDER_IMAGE} AS frontend-builder
ARG PRIVATE_CHAT_FRONTEND_VERSION
ARG VITE_PUBLIC_POSTHOG_KEY=
ARG VITE_PUBLIC_POSTHOG_HOST=
ARG SOURCE_DATE_EPOCH=0
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    VITE_PUBLIC_POSTHOG_KEY=${VITE_PUBLIC_POSTHOG_KEY} \
    VITE_PUBLIC_POSTHOG_HOST=${VITE_PUBLIC_POSTHOG_HOST}
WORKDIR /build
RUN test -n "${PRIVATE_CHAT_FRONTEND_VERSION}" \
 && apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && curl -fsSL "https://github.com/nearai/private-chat/archive/${PRIVATE_CHAT_FRONTEND_VERSION}.tar.gz" \
    | tar -xz --strip-components=1 \
 && npm install -g pnpm@10.10.0 \
 && pnpm install --frozen-lockfile \
 && pnpm run build \
 && mv dist /dist

FROM scratch AS frontend-github
COPY --from=frontend-builder /dist /dist

FROM ${BASE_IMAGE}
ARG SOURCE_DATE_EPOCH=0
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONHASHSEED=0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
COPY db ./db

# The source is bind-mounted (not a layer); privchat's wheel is built from a copy in /tmp.
RUN --mount=type=bind,target=/src \
    python3 -m venv /app/.venv \
 && python3 -m venv /tmp/build \
 && /tmp/build/bin/pip install -q --no-compile --require-hashes --no-deps --only-binary=:all: \
    -r /src/requirements-build.lock \
 && mkdir /tmp/src && cp -r /src/pyproject.toml /src/README.md /src/privchat /tmp/src/ \
 && /tmp/build/bin/pip wheel -q --no-deps --no-build-isolation --wheel-dir /tmp/wheels /tmp/src \
 && pip install -q --no-compile --require-hashes --no-deps --only-binary=:all: \
    -r /src/requirements.lock \
 && pip install -q --no-compile --no-deps /tmp/wheels/privchat-*.whl \
 && python -m compileall -q --invalidation-mode unchecked-hash /app/.venv/lib \
 && rm -rf /tmp/build /tmp/src /tmp/wheels /root/.cache \
 && useradd -m -u 1000 app \
 && sed -i -E 's/^(app:[^:]*:)[0-9]+:/\10:/' /etc/shadow \
 && chown -R app:app /app

# The web frontend: a built dist/ in the build context (empty: no frontend). build-image.sh
# fills .frontend-dist; a plain `podman build .` needs `mkdir -p .frontend-dist` first.
ARG FRONTEND_DIST=.frontend-dist
COPY --chown=1000:1000 ${FRONTEND_DIST}/ /app/frontend/dist/

USER app
ENV SERVER_HOST=0.0.0.0 SERVER_PORT=8081 FRONTEND_DIR=/app/frontend/dist \
    DATABASE_MIGRATIONS_PATH=/app/db/migrations
EXPOSE 8081
# privchat owns SIGTERM: it stops accepting, drains in-flight streams, exits 0.
CMD ["privchat", "serve"]
