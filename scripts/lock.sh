#!/usr/bin/env bash
# Regenerate requirements.lock: every runtime dependency pinned with its wheel hashes, for the
# image build (Dockerfile installs it with --require-hashes --only-binary=:all:).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/uv" && "$tmp/uv/bin/pip" install -q uv
"$tmp/uv/bin/uv" pip compile pyproject.toml --python-version 3.11 \
    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -o requirements.lock
rm -rf "$tmp"
