"""The fake as its own process: ``python -m privchat.devtools.fake_cloud`` and its control route."""

from __future__ import annotations

import subprocess
import sys

import httpx2
import trio


async def test_run_as_process_and_drive_by_control_route() -> None:
    cmd = [sys.executable, "-m", "privchat.devtools.fake_cloud", "--port", "0", "--api-key", "sk-p"]
    process = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
    try:
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
        base_url = line.decode().split()[-1]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        root = base_url.removesuffix("/v1")
        async with httpx2.AsyncClient(timeout=10) as client:
            r = await client.post(root + "/_fake/config", json={"deltas": 3, "write": "split"})
            assert r.status_code == 200 and r.json()["write"] == "split"
            body = {"model": "privchat-dev/echo", "input": "hi", "stream": True}
            r = await client.post(
                base_url + "/responses", json=body, headers={"authorization": "Bearer sk-p"}
            )
            assert r.text.count("event: response.output_text.delta\n") == 3
            assert (await client.get(root + "/_fake/streams")).json()["streams"][0]["completed"]
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
