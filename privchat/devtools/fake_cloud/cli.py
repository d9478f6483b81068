"""``privchat fake-cloud``: run the fake NEAR AI Cloud as its own process."""

from __future__ import annotations

import argparse
import sys

import trio

from .server import serve_fake_cloud
from .state import FakeCloud


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privchat fake-cloud",
        description="Fake NEAR AI Cloud upstream for tests, benchmarks and development. "
        "Knobs: x-fake-* request headers or POST /_fake/config.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--api-key", default="sk-test", help="API key the fake accepts")
    parser.add_argument(
        "--vpc-secret", default="privchat-fake-vpc-secret", help="shared secret for VPC login"
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    fake = FakeCloud(api_key=args.api_key, vpc_secret=args.vpc_secret.encode())

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_fake_cloud, fake, args.host, args.port)
            print(f"fake NEAR AI Cloud listening on {url}", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
