"""The lower rungs of the relay ladder: how little a streaming relay can cost, layer by layer.

Each rung relays `POST /v1/responses` to the upstream and streams the response back as it
arrives; `bench_proxy.py --capacity` runs them beside `floor_relay.py` (Quart-Trio + httpx2, the
stack's floor) and privchat, so the cost of every layer is known in the same run:

- `splice`: a plain Trio TCP splice, bytes copied both ways, no HTTP at all;
- `h11`: h11 on both sides (server connection, one upstream connection per request), each
  upstream `Data` event re-sent as one chunk;
- `asgi`: Hypercorn serving a raw ASGI app that streams with one pooled httpx2 client.

    python scripts/ladder.py {splice,h11,asgi} --upstream http://127.0.0.1:PORT/v1 --port N
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx2
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

READ = 65536


async def splice(upstream: str, port: int) -> None:
    parts = urlsplit(upstream)

    async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            while data := await source.receive_some(READ):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await sink.aclose()

    async def handle(client: trio.SocketStream) -> None:
        async with client:
            try:
                server = await trio.open_tcp_stream(parts.hostname, parts.port)
            except OSError:
                return
            async with server, trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, server)
                nursery.start_soon(pump, server, client)

    await trio.serve_tcp(handle, port, host="127.0.0.1", backlog=4096)


async def h11_relay(upstream: str, port: int) -> None:
    parts = urlsplit(upstream)
    base = parts.path.rstrip("/").removesuffix("/v1")

    async def next_event(conn: h11.Connection, stream: trio.SocketStream) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await stream.receive_some(READ))

    async def handle(client: trio.SocketStream) -> None:
        server_side = h11.Connection(h11.SERVER)
        async with client:
            try:
                request = await next_event(server_side, client)
                if not isinstance(request, h11.Request):
                    return
                body = b""
                while isinstance(event := await next_event(server_side, client), h11.Data):
                    body += event.data
                headers = [
                    (n, v)
                    for n, v in request.headers
                    if n not in (b"host", b"connection", b"content-length", b"transfer-encoding")
                ]
                headers += [
                    (b"host", parts.netloc.encode()),
                    (b"content-length", b"%d" % len(body)),
                ]
                up = h11.Connection(h11.CLIENT)
                async with await trio.open_tcp_stream(parts.hostname, parts.port) as stream:
                    target = base.encode() + request.target
                    await stream.send_all(
                        up.send(h11.Request(method=request.method, target=target, headers=headers))
                        + up.send(h11.Data(data=body))
                        + up.send(h11.EndOfMessage())
                    )
                    head = await next_event(up, stream)
                    out = [(n, v) for n, v in head.headers if n not in (b"content-length",)]
                    out = [(n, v) for n, v in out if n not in (b"transfer-encoding", b"connection")]
                    out.append((b"transfer-encoding", b"chunked"))
                    await client.send_all(
                        server_side.send(h11.Response(status_code=head.status_code, headers=out))
                    )
                    while isinstance(event := await next_event(up, stream), h11.Data):
                        await client.send_all(server_side.send(h11.Data(data=event.data)))
                    await client.send_all(server_side.send(h11.EndOfMessage()))
            except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError):
                pass

    await trio.serve_tcp(handle, port, host="127.0.0.1", backlog=4096)


async def asgi(upstream: str, port: int) -> None:
    limits = httpx2.Limits(max_connections=4000, max_keepalive_connections=200)
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(60), limits=limits) as client:

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    kind = message["type"].removeprefix("lifespan.")
                    await send({"type": f"lifespan.{kind}.complete"})
                    if kind == "shutdown":
                        return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            headers = [
                (n.decode(), v.decode())
                for n, v in scope["headers"]
                if n in (b"authorization", b"content-type") or n.startswith(b"x-fake-")
            ]
            req = client.build_request(
                "POST", f"{upstream}/responses", content=body, headers=headers
            )
            response = await client.send(req, stream=True)
            try:
                content_type = response.headers.get("content-type", "text/plain").encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": [(b"content-type", content_type)],
                    }
                )
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await response.aclose()

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.backlog = 4096
        await serve(app, config)


RUNGS = {"splice": splice, "h11": h11_relay, "asgi": asgi}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rung", choices=sorted(RUNGS))
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    trio.run(RUNGS[args.rung], args.upstream, args.port)
