"""`/docs` renders in a real browser with every remote host unreachable.

Headless Chromium (Debian's `chromium-headless-shell`, installed by `.ci/run`) loads the page with
a resolver that fails every name but 127.0.0.1, runs its JavaScript and dumps the DOM: the
Swagger UI must have drawn the operations and the Authorize button from privchat's own files.
"""

from __future__ import annotations

import shutil

import pytest
import trio

from privchat.runtime import Running

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium here (.ci/run installs chromium-headless-shell)"
)


async def test_docs_render_without_network(server: Running) -> None:
    assert CHROMIUM is not None
    with trio.fail_after(90):
        done = await trio.run_process(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{server.url}/docs",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    dom = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    for path in ("/v1/responses", "/v1/models", "/v1/conversations/{conversation_id}/items"):
        assert f'data-path="{path}"' in dom, path
    assert "authorize" in dom  # the bearer security scheme's button
