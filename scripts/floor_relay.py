"""The floor of the stack: the least a streaming relay on privchat's stack can do.

One Quart-Trio route on Hypercorn, `POST /v1/responses`, that opens the same request upstream
with one pooled httpx2 client and relays the raw bytes as they arrive: no authentication, no
database, no middleware, no headers policy. `bench_proxy.py` measures it beside privchat so the
cost of the hop itself (a server request plus a client request in Python) is known in the same
run, apart from what privchat adds on top.

    python scripts/floor_relay.py --upstream http://127.0.0.1:PORT/v1 --port N
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import httpx2
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio


def make_app(upstream: str, client: httpx2.AsyncClient) -> QuartTrio:
    app = QuartTrio("floor")
    app.config["RESPONSE_TIMEOUT"] = None

    @app.post("/v1/responses")
    async def responses() -> Response:
        body = await request.get_data()
        headers = {
            "authorization": request.headers.get("authorization", ""),
            "content-type": "application/json",
        }
        for name in ("x-fake-deltas", "x-fake-delay-ms", "x-fake-first-delay-ms", "x-fake-pace"):
            if name in request.headers:
                headers[name] = request.headers[name]
        req = client.build_request("POST", f"{upstream}/responses", content=body, headers=headers)
        response = await client.send(req, stream=True)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return Response(
            chunks(),
            status=response.status_code,
            content_type=response.headers.get("content-type"),
        )

    return app


async def main(upstream: str, port: int) -> None:
    limits = httpx2.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(60), limits=limits) as client:
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        await serve(make_app(upstream, client), config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    trio.run(main, args.upstream, args.port)
