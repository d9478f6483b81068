"""`privchat verify-attestation` against a real privchat serving HTTPS, attesting through the real
dstack SDK and a fake guest agent; and against a replayed report and a man in the middle."""

from __future__ import annotations

import hashlib
import secrets
from functools import partial
from pathlib import Path

import httpx2
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from privchat import verify
from privchat.__main__ import main as privchat_main
from privchat.attestation.report_data import spki_sha256_of_pem
from privchat.devtools.fake_cloud import FakeCloud, serve_fake_cloud
from tests.attestation_fixtures import TlsFiles, make_tls_files, start_attested
from tests.conftest import start_server
from tests.fakes import FakeRequest, Handler, Reply, asgi_app

REPORT = "/v1/attestation/report"


async def serve_tls(
    handler: Handler,
    files: TlsFiles,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler` over HTTPS on 127.0.0.1 with `files`; started with the base URL."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.certfile, config.keyfile = str(files.cert), str(files.key)
    config.accesslog = None
    config.graceful_timeout = 0.0

    class _Status:
        def started(self, binds: list[str]) -> None:
            task_status.started(binds[0])

    await serve(asgi_app(handler), config, task_status=_Status())  # type: ignore[arg-type]


async def run_verifier(capsys, *argv: str) -> tuple[int, dict[str, str], str]:
    """Run the verifier (blocking I/O) in a thread; return its exit code, result per row, output."""
    code = await trio.to_thread.run_sync(verify.main, list(argv))
    out = capsys.readouterr().out
    rows: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        for name in (
            "report fetched",
            "nonce echoed",
            "quote report_data",
            "TLS key binding",
            "upstream nonce",
            "compose hash",
            "image digest",
            "quote signature",
        ):
            if line.startswith(name + " "):
                rows[name] = line[len(name) :].strip().split("  ")[0]
    return code, rows, out


ALL_PASS = {
    "report fetched": "PASS",
    "nonce echoed": "PASS",
    "quote report_data": "PASS",
    "TLS key binding": "PASS",
    "upstream nonce": "PASS",
    "compose hash": "PASS",
    "quote signature": "not checked",
}


async def test_verifier_passes_against_privchat_on_tls(nursery, config, tmp_path, capsys) -> None:
    p = await start_attested(nursery, config, tmp_path)
    code, rows, out = await run_verifier(
        capsys, p.url, "--ca-file", str(p.tls.cert), "--expect-compose-hash", p.agent.compose_hash
    )
    assert code == 0, out
    assert rows == ALL_PASS, out
    assert "dcap-qvl not installed" in out
    # The nonce it sent is fresh and is what the agent quoted, after the served key's hash.
    (quoted,) = p.agent.quoted
    assert quoted[:32] == spki_sha256_of_pem(p.tls.cert.read_bytes())
    assert quoted[32:].hex() in out


async def test_cli_entry_point(nursery, config, tmp_path, capsys) -> None:
    p = await start_attested(nursery, config, tmp_path)
    argv = ["verify-attestation", p.url + REPORT, "--ca-file", str(p.tls.cert)]
    code = await trio.to_thread.run_sync(privchat_main, argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "compose hash" in out and "no --expect-compose-hash" in out


async def test_verifier_fails_a_wrong_compose_hash(nursery, config, tmp_path, capsys) -> None:
    p = await start_attested(nursery, config, tmp_path)
    wrong = hashlib.sha256(b"another compose").hexdigest()
    code, rows, out = await run_verifier(
        capsys, p.url, "--ca-file", str(p.tls.cert), "--expect-compose-hash", wrong
    )
    assert code == 1
    assert rows == {**ALL_PASS, "compose hash": "FAIL"}, out
    assert "FAILED: compose hash" in out


async def test_verifier_fails_when_the_nonce_is_not_echoed(
    nursery, config, tmp_path, capsys
) -> None:
    """A replay: the host's genuine key and certificate, but a report recorded earlier."""
    p = await start_attested(nursery, config, tmp_path)
    async with httpx2.AsyncClient(base_url=p.url, verify=p.tls.context()) as client:
        old = await client.get(REPORT, params={"nonce": secrets.token_hex(32)})
    assert old.status_code == 200

    async def replay(request: FakeRequest) -> Reply:
        return Reply(200, old.content, [("content-type", "application/json")])

    replay_url = await nursery.start(partial(serve_tls, replay, p.tls))
    code, rows, out = await run_verifier(capsys, replay_url, "--ca-file", str(p.tls.cert))
    assert code == 1
    assert rows["nonce echoed"] == "FAIL", out
    assert rows["quote report_data"] == "FAIL"
    assert rows["upstream nonce"] == "FAIL"
    assert rows["TLS key binding"] == "PASS"  # same key: only freshness gives it away
    assert "FAILED: nonce echoed" in out


async def test_verifier_fails_when_the_quote_binds_another_tls_key(
    nursery, config, tmp_path, capsys
) -> None:
    p = await start_attested(nursery, config, tmp_path)
    other = make_tls_files(tmp_path / "other", "other")
    p.agent.tamper_binding = spki_sha256_of_pem(other.cert.read_bytes())
    code, rows, out = await run_verifier(capsys, p.url, "--ca-file", str(p.tls.cert))
    assert code == 1
    assert rows["nonce echoed"] == "PASS", out
    assert rows["quote report_data"] == "FAIL"
    assert rows["TLS key binding"] == "FAIL"
    assert "FAILED: quote report_data, TLS key binding" in out


async def test_verifier_fails_when_the_served_certificate_differs(
    nursery, config, tmp_path, capsys
) -> None:
    """A man in the middle with a certificate the client trusts, relaying to the real privchat."""
    p = await start_attested(nursery, config, tmp_path)
    mitm = make_tls_files(tmp_path / "mitm", "mitm")

    async def relay(request: FakeRequest) -> Reply:
        async with httpx2.AsyncClient(base_url=p.url, verify=p.tls.context()) as client:
            upstream = await client.get(request.path, params=request.query)
        return Reply(upstream.status_code, upstream.content, [("content-type", "application/json")])

    mitm_url = await nursery.start(partial(serve_tls, relay, mitm))
    bundle = tmp_path / "trusted.pem"
    bundle.write_bytes(p.tls.cert.read_bytes() + mitm.cert.read_bytes())
    code, rows, out = await run_verifier(capsys, mitm_url, "--ca-file", str(bundle))
    assert code == 1
    assert rows == {**ALL_PASS, "TLS key binding": "FAIL", "compose hash": "not checked"}, out
    assert "FAILED: TLS key binding" in out


async def test_verifier_fails_the_dev_mock(nursery, config, capsys) -> None:
    cloud = FakeCloud(api_key="sk-test")
    cloud_url = await nursery.start(serve_fake_cloud, cloud)
    running = await start_server(nursery, config, openai_base_url=cloud_url)
    code, rows, out = await run_verifier(capsys, running.url)
    assert code == 1
    assert rows["nonce echoed"] == "PASS", out
    assert rows["quote report_data"] == "FAIL"
    assert "DEV mock" in out
    assert rows["TLS key binding"] == "not checked"


async def test_verifier_fails_when_privchat_is_unreachable(capsys, tmp_path: Path) -> None:
    code, rows, out = await run_verifier(capsys, "https://127.0.0.1:9", "--timeout", "5")
    assert code == 1
    assert rows == {"report fetched": "FAIL"}, out


async def test_verifier_fails_an_error_status(nursery, config, tmp_path, capsys) -> None:
    p = await start_attested(nursery, config, tmp_path)
    p.cloud.attestation_error = (503, "down")
    code, rows, out = await run_verifier(capsys, p.url, "--ca-file", str(p.tls.cert))
    assert code == 1
    assert rows == {"report fetched": "FAIL"}, out
    assert "HTTP 503" in out


# --- the chain from the built image digest to the quote (issue 12) ---------------------------

BUILT = "sha256:" + hashlib.sha256(b"the image build-image.sh printed").hexdigest()


def _rendered(tmp_path: Path, digest: str = BUILT) -> Path:
    """deploy/app-compose.json as scripts/render-deploy.py writes it for `digest`."""
    import subprocess
    import sys

    out = tmp_path / "deploy"
    script = Path(__file__).parent.parent / "scripts" / "render-deploy.py"
    done = subprocess.run(
        [sys.executable, str(script), digest, "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    compose = out / "app-compose.json"
    assert done.stdout.strip() == hashlib.sha256(compose.read_bytes()).hexdigest()
    return compose


async def _attested_with(nursery, config, tmp_path, app_compose: str, **knobs: object):
    from tests.fakes.dstack_agent import FakeDstackAgent

    agent = FakeDstackAgent(app_compose=app_compose, **knobs)  # type: ignore[arg-type]
    return await start_attested(nursery, config, tmp_path, tls=False, agent=agent)


async def test_image_digest_ties_the_quote_to_the_build(nursery, config, tmp_path, capsys) -> None:
    compose = _rendered(tmp_path)
    p = await _attested_with(nursery, config, tmp_path, compose.read_text())
    code, rows, out = await run_verifier(
        capsys, p.url, "--image-digest", BUILT, "--app-compose", str(compose)
    )
    assert code == 0, out
    assert rows["compose hash"] == rows["image digest"] == "PASS", out
    assert f"runs {BUILT}" in out
    # --image-digest alone takes the attested app-compose and still needs it in RTMR3.
    code, rows, out = await run_verifier(capsys, p.url, "--image-digest", BUILT)
    assert code == 0 and rows["compose hash"] == "PASS", out


async def test_image_digest_fails_for_another_digest(nursery, config, tmp_path, capsys) -> None:
    compose = _rendered(tmp_path)
    p = await _attested_with(nursery, config, tmp_path, compose.read_text())
    other = "sha256:" + "ab" * 32
    code, rows, out = await run_verifier(capsys, p.url, "--image-digest", other)
    assert code == 1
    assert rows["compose hash"] == "PASS" and rows["image digest"] == "FAIL", out
    assert f"the compose runs docker.io/nearai/privchat@{BUILT}, not {other}" in out
    assert out.splitlines()[-1] == "FAILED: image digest"


async def test_image_digest_fails_for_a_tag(nursery, config, tmp_path, capsys) -> None:
    from privchat.attestation.app_compose import app_compose, tee_compose

    tagged = app_compose(tee_compose(f"docker.io/nearai/privchat:latest  # was {BUILT}"))
    p = await _attested_with(nursery, config, tmp_path, tagged)
    code, rows, out = await run_verifier(capsys, p.url, "--image-digest", BUILT)
    assert code == 1
    assert rows["image digest"] == "FAIL", out
    assert "names 'docker.io/nearai/privchat:latest' by tag, not by digest" in out
    assert out.splitlines()[-1] == "FAILED: image digest"


async def test_image_digest_fails_for_a_tampered_event_log(
    nursery, config, tmp_path, capsys
) -> None:
    """The report shows the rendered app-compose, but the quote measured another one."""
    from privchat.attestation.app_compose import app_compose, tee_compose

    compose = _rendered(tmp_path)
    booted = app_compose(tee_compose("docker.io/evil/privchat@sha256:" + "66" * 32))
    p = await _attested_with(
        nursery, config, tmp_path, compose.read_text(), measured_app_compose=booted
    )
    code, rows, out = await run_verifier(
        capsys, p.url, "--image-digest", BUILT, "--app-compose", str(compose)
    )
    assert code == 1
    assert rows["compose hash"] == "FAIL" and rows["image digest"] == "PASS", out
    assert "event log does not replay to the quote's RTMR3" in out
    assert out.splitlines()[-1] == "FAILED: compose hash"


async def test_bad_arguments_are_one_line(tmp_path, capsys) -> None:
    """Checked before anything is fetched: exit 2 and one line, never a traceback."""
    unreadable = tmp_path / "missing.json"
    cases = [
        (["--image-digest", "sha256:abc"], "not an image digest (sha256:<64 lowercase hex>)"),
        (["--image-digest", "ab" * 32], "not an image digest"),
        (["--app-compose", str(unreadable)], f"cannot read --app-compose {unreadable}"),
    ]
    for extra, message in cases:
        code = await trio.to_thread.run_sync(verify.main, ["http://127.0.0.1:9", *extra])
        captured = capsys.readouterr()
        assert code == 2
        assert captured.out == ""
        assert captured.err.count("\n") == 1 and message in captured.err, captured.err
