# privchat image. Reproducible by construction where this file can make it so:
# a digest-pinned base (pass BASE_IMAGE=python:3.11-slim-bookworm@sha256:...), hash-locked
# wheels only (requirements.lock),
# no bytecode written with timestamps, PYTHONHASHSEED=0 and SOURCE_DATE_EPOCH for stable .pyc,
# a fixed install prefix, a non-root user with a normalised /etc/shadow, no .env in the image.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG SOURCE_DATE_EPOCH=0
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    PYTHONHASHSEED=0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY privchat ./privchat
COPY db ./db

# Dependencies from the hash-locked list (scripts/lock.sh), wheels only; then privchat itself.
RUN python -m venv /app/.venv \
 && pip install --no-compile --require-hashes --no-deps --only-binary=:all: -r requirements.lock \
 && pip install --no-compile --no-deps . \
 && python -m compileall -q --invalidation-mode unchecked-hash /app/.venv/lib /app/privchat \
 && rm -rf /root/.cache \
 && useradd -m -u 1000 app \
 && sed -i -E 's/^(app:[^:]*:)[0-9]+:/\10:/' /etc/shadow \
 && chown -R app:app /app

USER app
ENV SERVER_HOST=0.0.0.0 SERVER_PORT=8081 FRONTEND_DIR=/app/frontend/dist DATABASE_MIGRATIONS_PATH=/app/db/migrations
EXPOSE 8081
# privchat owns SIGTERM: it stops accepting, drains in-flight streams, exits 0.
CMD ["privchat", "serve"]
