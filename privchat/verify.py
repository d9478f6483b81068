"""`privchat verify-attestation URL [--image-digest sha256:D] [--app-compose FILE]
[--expect-compose-hash H] [--ca-file PEM]`.

Fetches `/v1/attestation/report` with a fresh random nonce over its own connection, keeps the
TLS certificate the server presented on that connection, and checks, printing one table row each:

  report fetched       HTTP 200 with a JSON report
  nonce echoed         privchat's `request_nonce` is the nonce sent
  quote report_data    the report_data inside privchat's TDX quote = binding ‖ nonce, where the
                       binding is the report's `tls_spki_sha256` (or 32 zero bytes when null)
  TLS key binding      SHA-256 of the SPKI of the certificate on this connection = the quote's
                       report_data[0:32] (this is what stops a man in the middle); skipped when
                       privchat does not terminate TLS itself or the URL is plain http
  upstream nonce       the upstream gateway's `request_nonce` (and its quote) carry the nonce
  compose hash         with --expect-compose-hash (or --app-compose FILE, whose SHA-256 it is, or
                       --image-digest alone, which takes the attested app-compose's hash): the
                       attested compose hash, the app-compose it hashes, the event log entry, and
                       RTMR3 replayed from the event log = the quote's RTMR3
  image digest         with --image-digest: the attested app-compose (bound by the row above)
                       runs only images pinned by digest, one of them exactly this digest, the
                       one `scripts/build-image.sh` prints for this source
  quote signature      Intel DCAP signature via `dcap-qvl` when installed and collateral is
                       reachable, otherwise "not checked"

Exit status 0 when no row failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import secrets
import ssl
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from .attestation.app_compose import DescriptorError, check_digest, compose_hash, runs_exactly
from .attestation.quote import QuoteError, TdxQuote, parse_quote_hex
from .attestation.report_data import NO_BINDING, spki_sha256_of_der

REPORT_PATH = "/v1/attestation/report"
PASS, FAIL, SKIP = "PASS", "FAIL", "not checked"


@dataclass(frozen=True)
class Check:
    name: str
    result: str
    detail: str


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    peer_certificate: bytes | None  # DER of the certificate the server presented, https only


def fetch(url: str, nonce: bytes, *, ca_file: str | None, timeout: float) -> Fetched:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    path = parts.path.rstrip("/")
    if not path.endswith(REPORT_PATH):
        path += REPORT_PATH
    target = f"{path}?{urlencode({'nonce': nonce.hex()})}"
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_file)
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, context=context, timeout=timeout
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.connect()
        peer = None
        if isinstance(conn.sock, ssl.SSLSocket):
            peer = conn.sock.getpeercert(binary_form=True)
        conn.request("GET", target, headers={"Accept": "application/json"})
        response = conn.getresponse()
        return Fetched(response.status, response.read(), peer)
    finally:
        conn.close()


def replay_rtmr(digests: list[str]) -> bytes:
    """RTMR value after extending each digest (SHA-384, zero-padded to 48 bytes) from zero."""
    mr = bytes(48)
    for digest in digests:
        mr = hashlib.sha384(mr + bytes.fromhex(digest).ljust(48, b"\x00")).digest()
    return mr


def _quote(section: dict[str, Any]) -> TdxQuote | str:
    quote = section.get("intel_quote")
    if not isinstance(quote, str):
        return "no intel_quote"
    try:
        return parse_quote_hex(quote)
    except QuoteError as exc:
        return f"not a TDX quote ({exc})" + (
            "; this is the DEV mock" if section.get("mock") else ""
        )


def check_report(
    report: dict[str, Any],
    nonce: bytes,
    peer_certificate: bytes | None,
    expect_compose_hash: str | None,
    image_digest: str | None = None,
) -> list[Check]:
    mine = report.get("chat_api_gateway_attestation")
    mine = mine if isinstance(mine, dict) else {}
    cloud = report.get("cloud_api_gateway_attestation")
    cloud = cloud if isinstance(cloud, dict) else {}
    checks: list[Check] = []

    echoed = str(mine.get("request_nonce", "")).lower()
    checks.append(
        Check("nonce echoed", PASS, echoed)
        if echoed == nonce.hex()
        else Check("nonce echoed", FAIL, f"sent {nonce.hex()}, got {echoed or 'none'}")
    )

    quote = _quote(mine)
    claimed = mine.get("tls_spki_sha256")
    try:
        binding = bytes.fromhex(claimed) if isinstance(claimed, str) else NO_BINDING
    except ValueError:
        binding = b"?"
    expected = binding + nonce
    if isinstance(quote, str):
        checks.append(Check("quote report_data", FAIL, quote))
    elif quote.report_data == expected:
        checks.append(Check("quote report_data", PASS, "binding ‖ nonce"))
    else:
        checks.append(
            Check(
                "quote report_data",
                FAIL,
                f"expected {expected.hex()}, quote has {quote.report_data.hex()}",
            )
        )

    checks.append(_tls_check(quote, claimed, peer_certificate))
    checks.append(_upstream_check(cloud, nonce))
    if expect_compose_hash is None and image_digest is not None:
        # The digest is checked against the attested app-compose, so that document must be the
        # one the event log and RTMR3 carry.
        app = _tcb(mine).get("app_compose")
        expect_compose_hash = compose_hash(app) if isinstance(app, str) else "none attested"
    checks.append(_compose_check(mine, quote, expect_compose_hash))
    if image_digest is not None:
        checks.append(_image_check(mine, image_digest))
    checks.append(_signature_check(quote, mine))
    return checks


def _tls_check(quote: TdxQuote | str, claimed: Any, peer: bytes | None) -> Check:
    name = "TLS key binding"
    if claimed is None:
        if isinstance(quote, TdxQuote) and quote.binding != NO_BINDING:
            return Check(name, FAIL, "report says no TLS binding but the quote binds a key")
        return Check(name, SKIP, "privchat does not terminate TLS itself (no binding)")
    if peer is None:
        return Check(name, SKIP, "plain http: no TLS certificate to compare")
    served = spki_sha256_of_der(peer)
    if isinstance(quote, str):
        return Check(name, FAIL, f"served SPKI {served.hex()}, quote unreadable")
    if served == quote.binding:
        return Check(name, PASS, f"served SPKI sha256 {served.hex()}")
    return Check(
        name, FAIL, f"served SPKI sha256 {served.hex()} but the quote binds {quote.binding.hex()}"
    )


def _upstream_check(cloud: dict[str, Any], nonce: bytes) -> Check:
    name = "upstream nonce"
    echoed = str(cloud.get("request_nonce", "")).lower()
    if echoed != nonce.hex():
        return Check(name, FAIL, f"sent {nonce.hex()}, upstream gateway has {echoed or 'none'}")
    quote = _quote(cloud)
    if isinstance(quote, str):
        return Check(name, FAIL, f"upstream gateway quote: {quote}")
    if quote.nonce != nonce:
        return Check(name, FAIL, "upstream gateway quote binds another nonce")
    return Check(name, PASS, "request_nonce and quote report_data[32:64]")


def _tcb(mine: dict[str, Any]) -> dict[str, Any]:
    info = mine.get("info") if isinstance(mine.get("info"), dict) else {}
    tcb = info.get("tcb_info") if isinstance(info.get("tcb_info"), dict) else {}
    return tcb


def _image_check(mine: dict[str, Any], digest: str) -> Check:
    name = "image digest"
    app = _tcb(mine).get("app_compose")
    if not isinstance(app, str):
        return Check(name, FAIL, "no app_compose attested")
    try:
        problem = runs_exactly(app, digest)
    except DescriptorError as exc:
        problem = str(exc)
    if problem:
        return Check(name, FAIL, problem)
    return Check(name, PASS, f"the attested app-compose runs {digest}")


def _compose_check(mine: dict[str, Any], quote: TdxQuote | str, expected: str | None) -> Check:
    name = "compose hash"
    info = mine.get("info") if isinstance(mine.get("info"), dict) else {}
    tcb = _tcb(mine)
    attested = info.get("compose_hash") or tcb.get("compose_hash")
    if expected is None:
        return Check(name, SKIP, f"no --expect-compose-hash (attested: {attested or 'none'})")
    expected = expected.lower().removeprefix("0x")
    problems = []
    if attested != expected:
        problems.append(f"info has {attested or 'none'}")
    app_compose = tcb.get("app_compose")
    if (
        not isinstance(app_compose, str)
        or hashlib.sha256(app_compose.encode()).hexdigest() != expected
    ):
        problems.append("app_compose does not hash to it")
    events = (
        mine.get("event_log") if isinstance(mine.get("event_log"), list) else tcb.get("event_log")
    )
    events = [e for e in events or [] if isinstance(e, dict)]
    if not any(
        e.get("event") == "compose-hash" and e.get("event_payload") == expected for e in events
    ):
        problems.append("no compose-hash event with it")
    if isinstance(quote, str):
        problems.append("quote unreadable")
    else:
        try:
            rtmr3 = replay_rtmr([e["digest"] for e in events if e.get("imr") == 3])
        except (KeyError, TypeError, ValueError):
            rtmr3 = b""
        if rtmr3 != quote.rtmrs[3]:
            problems.append("event log does not replay to the quote's RTMR3")
    if problems:
        return Check(name, FAIL, f"expected {expected}: " + "; ".join(problems))
    return Check(name, PASS, f"{expected} (info, app_compose, event log, RTMR3)")


def _signature_check(quote: TdxQuote | str, mine: dict[str, Any]) -> Check:
    name = "quote signature"
    if isinstance(quote, str):
        return Check(name, SKIP, "no TDX quote")
    try:
        import dcap_qvl  # type: ignore[import-not-found]
    except ImportError:
        return Check(name, SKIP, "dcap-qvl not installed")
    import asyncio

    raw = bytes.fromhex(str(mine["intel_quote"]).removeprefix("0x"))
    try:
        collateral = asyncio.run(dcap_qvl.get_collateral(dcap_qvl.PHALA_PCCS_URL, raw))
    except Exception as exc:  # no network or no collateral: say so, do not guess
        return Check(name, SKIP, f"collateral unavailable ({type(exc).__name__})")
    try:
        import time

        result = dcap_qvl.verify(raw, collateral, int(time.time()))
    except Exception as exc:
        return Check(name, FAIL, f"dcap-qvl rejected the quote: {exc}")
    status = getattr(result, "status", "verified")
    return Check(name, FAIL if status == "Revoked" else PASS, f"dcap-qvl: {status}")


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  {'result':<11}  detail"]
    lines += [f"{c.name:<{width}}  {c.result:<11}  {c.detail}" for c in checks]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="privchat verify-attestation", description="Verify a privchat attestation report."
    )
    parser.add_argument("url", help="privchat's base URL, e.g. https://chat.example.com")
    parser.add_argument("--expect-compose-hash", metavar="H", help="the app-compose hash to expect")
    parser.add_argument(
        "--image-digest",
        metavar="sha256:D",
        help="the image digest scripts/build-image.sh printed for this source",
    )
    parser.add_argument(
        "--app-compose",
        metavar="FILE",
        help="the app-compose.json expected (scripts/render-deploy.py); its hash is expected",
    )
    parser.add_argument("--ca-file", metavar="PEM", help="trust these CA certificates for TLS")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per network step")
    args = parser.parse_args(argv)
    expect = args.expect_compose_hash
    try:
        if args.image_digest is not None:
            check_digest(args.image_digest)
        if args.app_compose is not None:
            try:
                with open(args.app_compose, encoding="utf-8") as handle:
                    from_file = compose_hash(handle.read())
            except (OSError, UnicodeDecodeError) as exc:
                raise DescriptorError(
                    f"cannot read --app-compose {args.app_compose}: {exc}"
                ) from None
            if expect is not None and expect.lower().removeprefix("0x") != from_file:
                raise DescriptorError("--expect-compose-hash and --app-compose disagree")
            expect = from_file
    except DescriptorError as exc:
        print(f"privchat verify-attestation: {exc}", file=sys.stderr)
        return 2
    nonce = secrets.token_bytes(32)
    try:
        fetched = fetch(args.url, nonce, ca_file=args.ca_file, timeout=args.timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        print(render([Check("report fetched", FAIL, f"{type(exc).__name__}: {exc}")]))
        return 1
    try:
        report = json.loads(fetched.body)
    except ValueError:
        report = None
    if fetched.status != 200 or not isinstance(report, dict):
        detail = f"HTTP {fetched.status}: {fetched.body[:200].decode('utf-8', 'replace')}"
        print(render([Check("report fetched", FAIL, detail)]))
        return 1
    via = "TLS" if fetched.peer_certificate is not None else "plain http"
    checks = [Check("report fetched", PASS, f"HTTP 200 over {via}, nonce {nonce.hex()}")]
    checks += check_report(report, nonce, fetched.peer_certificate, expect, args.image_digest)
    print(render(checks))
    failed = [c.name for c in checks if c.result == FAIL]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print("OK: every check that could be made passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
