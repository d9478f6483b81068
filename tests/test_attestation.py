"""GET /v1/attestation/report against the real dstack SDK, a fake guest agent (HTTP, via
DSTACK_SIMULATOR_ENDPOINT), the fake upstream, and privchat serving HTTPS on a certificate made
in the test (D14)."""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path

import httpx2
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from privchat.attestation import AttestationUnavailable
from privchat.attestation.quote import parse_quote_hex
from privchat.devtools.fake_cloud import ECHO_MODEL, FakeCloud, serve_fake_cloud
from tests.attestation_fixtures import AttestedPrivchat, start_attested
from tests.conftest import start_server
from tests.fakes.dstack_agent import FakeDstackAgent, serve_fake_dstack_agent

REPORT = "/v1/attestation/report"


def served_spki_sha256(cert_file: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def client_for(p: AttestedPrivchat) -> httpx2.AsyncClient:
    verify = p.tls.context() if p.tls else True
    return httpx2.AsyncClient(base_url=p.url, verify=verify, timeout=30)


async def test_report_binds_the_served_tls_key_and_the_nonce(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    assert p.url.startswith("https://")
    nonce = secrets.token_bytes(32)
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"nonce": nonce.hex()})
    assert response.status_code == 200, response.text
    body = response.json()
    binding = served_spki_sha256(p.tls.cert)
    # What the agent was asked to quote, exactly.
    assert p.agent.quoted == [binding + nonce]
    mine = body["chat_api_gateway_attestation"]
    assert list(mine) == ["intel_quote", "event_log", "request_nonce", "info", "tls_spki_sha256"]
    assert mine["request_nonce"] == nonce.hex()
    assert mine["tls_spki_sha256"] == binding.hex()
    assert parse_quote_hex(mine["intel_quote"]).report_data == binding + nonce
    assert mine["event_log"] == p.agent.event_log()  # parsed from the agent's JSON string
    assert mine["info"]["compose_hash"] == p.agent.compose_hash
    assert mine["info"]["tcb_info"]["app_compose"] == p.agent.app_compose
    assert mine["info"]["tcb_info"]["rtmr3"] == p.agent.rtmrs()[3].hex()
    cloud = body["cloud_api_gateway_attestation"]
    assert list(cloud) == ["intel_quote", "event_log", "request_nonce", "info"]
    assert cloud["request_nonce"] == nonce.hex()
    assert isinstance(cloud["event_log"], str)  # as received
    assert "model_attestations" not in body
    # Upstream got the nonce and nothing of the client's request but the API key.
    (sent,) = p.cloud.requests_to("/v1/attestation/report")
    assert sent.query == f"nonce={nonce.hex()}".encode()
    assert sent.header("authorization") == b"Bearer sk-test"
    assert sent.header("cookie") is None and sent.header("user-agent") is None


async def test_info_is_fetched_once_per_process(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    async with client_for(p) as client:
        for _ in range(3):
            response = await client.get(REPORT, params={"nonce": secrets.token_hex(32)})
            assert response.status_code == 200
    assert p.agent.calls.count("Info") == 1
    assert p.agent.calls.count("GetQuote") == 3


async def test_without_tls_files_the_binding_is_zero(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path, tls=False)
    nonce = secrets.token_bytes(32)
    async with client_for(p) as client:
        body = (await client.get(REPORT, params={"nonce": nonce.hex()})).json()
    assert p.agent.quoted == [bytes(32) + nonce]
    assert body["chat_api_gateway_attestation"]["tls_spki_sha256"] is None


async def test_without_a_client_nonce_the_upstream_nonce_is_bound(
    nursery, config, tmp_path
) -> None:
    p = await start_attested(nursery, config, tmp_path)
    async with client_for(p) as client:
        body = (await client.get(REPORT)).json()
    upstream_nonce = bytes.fromhex(body["cloud_api_gateway_attestation"]["request_nonce"])
    assert len(upstream_nonce) == 32
    assert body["chat_api_gateway_attestation"]["request_nonce"] == upstream_nonce.hex()
    assert p.agent.quoted == [served_spki_sha256(p.tls.cert) + upstream_nonce]
    (sent,) = p.cloud.requests_to("/v1/attestation/report")
    assert sent.query == b""


async def test_query_rebuilt_in_fixed_order_with_models(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    nonce = secrets.token_hex(32)
    query = f"signing_address=0xabc&nonce={nonce}&extra=1&signing_algo=ecdsa&model={ECHO_MODEL}"
    async with client_for(p) as client:
        response = await client.get(f"{REPORT}?{query}")
    assert response.status_code == 200, response.text
    (sent,) = p.cloud.requests_to("/v1/attestation/report")
    expected = f"model={ECHO_MODEL.replace('/', '%2F')}&signing_algo=ecdsa&nonce={nonce}"
    assert sent.query == f"{expected}&signing_address=0xabc".encode()
    (model,) = response.json()["model_attestations"]
    assert list(model) == ["signing_address", "intel_quote", "nvidia_payload", "event_log", "info"]


@pytest.mark.parametrize(
    "nonce", ["abc", "zz" * 32, "0x" + "ab" * 31, "ab" * 33, "ab" * 31 + "%20%20"]
)
async def test_bad_nonce_is_400_before_anything_is_asked(nursery, config, tmp_path, nonce) -> None:
    p = await start_attested(nursery, config, tmp_path)
    async with client_for(p) as client:
        response = await client.get(f"{REPORT}?nonce={nonce}")
    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": "Invalid nonce format: expected 64 hex characters",
    }
    assert p.cloud.requests_to("/v1/attestation/report") == []
    assert p.agent.quoted == []


async def test_unknown_signing_algo_is_upstreams_400_as_503(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"signing_algo": "rsa"})
    assert response.status_code == 503
    assert response.json() == {
        "code": "service_unavailable",
        "message": "Attestation service returned error: 400",
    }
    assert p.agent.quoted == []


async def test_upstream_error_status_is_503(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    p.cloud.attestation_error = (503, "backend down")
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"nonce": secrets.token_hex(32)})
    assert response.status_code == 503
    assert response.json()["message"] == "Attestation service returned error: 503"


async def test_upstream_unreachable_is_502(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path, openai_base_url="http://127.0.0.1:9/v1")
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"nonce": secrets.token_hex(32)})
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "bad_gateway"
    assert body["message"].startswith("Failed to fetch attestation report: API error: ")
    assert p.agent.quoted == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"request_nonce": "not hex"}, "Invalid nonce format: "),
        ({"request_nonce": "ab" * 16}, "Invalid nonce format: expected 32 bytes, got 16"),
        ({"intel_quote": None}, "Failed to parse attestation report: "),
        ({"request_nonce": 7}, "Failed to parse attestation report: "),
    ],
)
async def test_malformed_upstream_report_is_500(nursery, config, tmp_path, extra, message) -> None:
    p = await start_attested(nursery, config, tmp_path)
    p.cloud.attestation_extra = extra
    async with client_for(p) as client:
        response = await client.get(REPORT)
    assert response.status_code == 500
    assert response.json()["code"] == "internal_server_error"
    assert response.json()["message"].startswith(message)
    assert p.agent.quoted == []


async def test_agent_failure_is_500(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    p.agent.fail_status = 500
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"nonce": secrets.token_hex(32)})
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal_server_error",
        "message": "Failed to get chat API attestation",
    }


async def test_agent_event_log_not_json_is_500(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    p.agent.bad_event_log = True
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"nonce": secrets.token_hex(32)})
    assert response.status_code == 500
    assert response.json()["message"] == "Failed to deserialize event_log"


async def test_slow_agent_hits_the_quote_deadline(nursery, config, tmp_path) -> None:
    p = await start_attested(nursery, config, tmp_path)
    p.agent.hang_quote = True
    p.running.services.attestation.quote_timeout = 0.5
    started = trio.current_time()
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"nonce": secrets.token_hex(32)})
    assert response.status_code == 500
    assert response.json()["message"] == "Failed to get chat API attestation"
    assert trio.current_time() - started < 5
    assert len(p.agent.quoted) == 1  # the agent was asked, and never answered in time
    p.agent.release()


async def test_unreachable_agent_stops_startup(nursery, config) -> None:
    with pytest.raises(BaseException) as caught:
        await start_server(
            nursery, config, dev=False, dstack_simulator_endpoint="http://127.0.0.1:9"
        )
    error = _find(caught.value, AttestationUnavailable)
    text = str(error)
    assert "\n" not in text
    assert text.startswith(
        "DSTACK_SIMULATOR_ENDPOINT: the dstack guest agent at http://127.0.0.1:9"
    )


async def test_missing_agent_socket_stops_startup(nursery, config, tmp_path) -> None:
    socket = tmp_path / "dstack.sock"
    with pytest.raises(BaseException) as caught:
        await start_server(nursery, config, dev=False, dstack_simulator_endpoint=str(socket))
    text = str(_find(caught.value, AttestationUnavailable))
    assert "\n" not in text and str(socket) in text


async def test_agent_failing_info_at_startup_stops_startup(nursery, config) -> None:
    agent = FakeDstackAgent(fail_status=503)
    endpoint = await nursery.start(serve_fake_dstack_agent, agent)
    with pytest.raises(BaseException) as caught:
        await start_server(nursery, config, dev=False, dstack_simulator_endpoint=endpoint)
    assert "HTTPStatusError 503" in str(_find(caught.value, AttestationUnavailable))


async def test_dev_returns_the_mock_without_contacting_an_agent(nursery, config, tmp_path) -> None:
    agent = FakeDstackAgent()
    endpoint = await nursery.start(serve_fake_dstack_agent, agent)
    cloud = FakeCloud(api_key="sk-test")
    cloud_url = await nursery.start(serve_fake_cloud, cloud)
    running = await start_server(
        nursery, config, dev=True, dstack_simulator_endpoint=endpoint, openai_base_url=cloud_url
    )
    nonce = secrets.token_hex(32)
    async with httpx2.AsyncClient(base_url=running.url) as client:
        response = await client.get(REPORT, params={"nonce": nonce})
    assert response.status_code == 200
    assert response.json()["chat_api_gateway_attestation"] == {
        "intel_quote": "0x1234567890abcdef",
        "request_nonce": nonce,
        "tls_spki_sha256": None,
        "mock": True,
    }
    assert response.json()["cloud_api_gateway_attestation"]["request_nonce"] == nonce
    assert agent.calls == []


def _find(error: BaseException, kind: type[BaseException]) -> BaseException:
    if isinstance(error, kind):
        return error
    for inner in getattr(error, "exceptions", ()):
        try:
            return _find(inner, kind)
        except LookupError:
            pass
    if error.__context__ is not None and error.__context__ is not error:
        try:
            return _find(error.__context__, kind)
        except LookupError:
            pass
    raise LookupError(f"no {kind.__name__} in {error!r}")


async def test_serve_without_an_agent_exits_with_one_line(database_url, tmp_path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "DEV": "false",
        "DSTACK_SIMULATOR_ENDPOINT": "http://127.0.0.1:9",
        "OPENAI_API_KEY": "sk-test",
    }
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "privchat", "serve"],
            cwd=tmp_path,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 2
    last = done.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("privchat: configuration error: DSTACK_SIMULATOR_ENDPOINT: ")
    assert "Traceback" not in done.stderr.decode()


async def test_unknown_model_is_404_not_503(nursery, config, tmp_path) -> None:
    """Deviation A4 (issue 14, finding 11): the upstream answers 503 for a model it does not
    have; privchat asks whether the model exists and answers the caller's 404."""
    p = await start_attested(nursery, config, tmp_path)
    async with client_for(p) as client:
        response = await client.get(REPORT, params={"model": "no-such/model"})
        assert response.status_code == 404
        assert response.json() == {
            "code": "not_found",
            "message": "Model 'no-such/model' not found",
        }
        assert p.agent.quoted == []
        # A known model whose report fails is still the service's 503.
        p.cloud.attestation_error = (503, "backend down")
        response = await client.get(REPORT, params={"model": ECHO_MODEL})
    assert response.status_code == 503
    assert response.json()["message"] == "Attestation service returned error: 503"
