#!/usr/bin/env python3
"""Render the deployment descriptors for one image digest and print the compose hash.

    python scripts/render-deploy.py sha256:<64 hex> [--image NAME] [--postgres-image REF] [--out DIR]

Writes DIR/docker-compose.yml (single host: privchat by digest + PostgreSQL) and
DIR/app-compose.json (dstack's app-compose for a TEE deployment, serialised exactly as dstack
hashes it), then prints the compose hash as the last line: the value a running instance's
`compose-hash` event and RTMR3 carry, and `privchat verify-attestation --app-compose` expects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from privchat.attestation.app_compose import (
    DEFAULT_IMAGE,
    DescriptorError,
    app_compose,
    check_digest,
    compose_hash,
    single_host_compose,
    tee_compose,
)

DEFAULT_POSTGRES = "docker.io/library/postgres:16-bookworm"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="render-deploy.py", description=__doc__.splitlines()[0])
    parser.add_argument("digest", help="the manifest digest scripts/build-image.sh printed")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="repository the image is pushed to")
    parser.add_argument("--postgres-image", default=DEFAULT_POSTGRES, help="PostgreSQL image")
    parser.add_argument("--out", default=str(Path(__file__).parent.parent / "deploy"))
    args = parser.parse_args(argv)
    try:
        digest = check_digest(args.digest)
        if "@" in args.image or not args.image.strip():
            raise DescriptorError(f"--image is a repository without tag or digest: {args.image!r}")
        image = f"{args.image}@{digest}"
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "docker-compose.yml").write_text(single_host_compose(image, args.postgres_image))
        text = app_compose(tee_compose(image))
        (out / "app-compose.json").write_text(text, encoding="utf-8")
    except (DescriptorError, OSError) as exc:
        print(f"render-deploy.py: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}/docker-compose.yml and {out}/app-compose.json for {image}", file=sys.stderr)
    print(compose_hash(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
