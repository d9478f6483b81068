"""Unit tests of the fake cloud's pure parts: framing, write patterns, knobs, scripts, signing."""

from __future__ import annotations

import hashlib
import json

import nacl.signing
import pytest

from privchat.devtools.fake_cloud import KnobError, Knobs, multipart
from privchat.devtools.fake_cloud.echo import echo_reply, make_title, split_text
from privchat.devtools.fake_cloud.events import Turn, build_script
from privchat.devtools.fake_cloud.http import choose_encoding
from privchat.devtools.fake_cloud.knobs import from_headers
from privchat.devtools.fake_cloud.signing import (
    Signer,
    recover_eip191_address,
    signed_text,
    vpc_signature,
    vpc_signature_ok,
)
from privchat.devtools.fake_cloud.sse import frame, split_frame, writes


def test_frame_is_exact_upstream_framing() -> None:
    data = frame({"type": "response.output_text.delta", "sequence_number": 4, "delta": "é\n"})
    assert data == (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"sequence_number":4,"delta":"\xc3\xa9\\n"}\n\n'
    )


def test_split_frame_cuts_mid_line_and_mid_utf8() -> None:
    data = frame({"type": "x", "delta": "a ✓ b"})
    pieces = split_frame(data)
    assert b"".join(pieces) == data
    assert len(pieces) >= 3
    assert any(not p.endswith(b"\n") for p in pieces[:-1])
    decodable = []
    for piece in pieces:
        try:
            piece.decode("utf-8")
            decodable.append(True)
        except UnicodeDecodeError:
            decodable.append(False)
    assert not all(decodable), "one cut must fall inside a multi-byte character"


def test_write_patterns_group_frames() -> None:
    frames = [frame({"type": f"e{i}"}) for i in range(7)]
    assert writes(frames, "event") == [[f] for f in frames]
    coalesced = writes(frames, "coalesce", 3)
    assert [len(slot) for slot in coalesced] == [1, 1, 1]
    assert coalesced[0][0] == b"".join(frames[:3]) and coalesced[2][0] == frames[6]
    assert b"".join(b"".join(s) for s in writes(frames, "split")) == b"".join(frames)


def test_knobs_from_headers_and_json() -> None:
    base = Knobs()
    knobs = from_headers(
        base,
        [
            (b"X-Fake-Deltas", b"50"),
            (b"x-fake-delay-ms", b"5"),
            (b"x-fake-write", b"split"),
            (b"x-fake-fail", b"drop"),
            (b"x-fake-gaps", b"3:100,5:2.5"),
            (b"x-fake-compress", b"0"),
            (b"other", b"1"),
        ],
    )
    assert (knobs.deltas, knobs.delay_ms, knobs.write, knobs.fail) == (50, 5.0, "split", "drop")
    assert knobs.gaps == {3: 100.0, 5: 2.5} and knobs.compress is False
    assert base.deltas == 8, "headers never change the base knobs"
    assert Knobs().updated({"gaps": {"2": 7}, "reasoning": True}).gaps == {2: 7.0}
    with pytest.raises(KnobError):
        Knobs().updated({"write": "sideways"})
    with pytest.raises(KnobError):
        Knobs().updated({"nope": 1})


def test_split_text_gives_exact_count() -> None:
    for n in (1, 3, 50, 500):
        pieces = split_text("hello world", n)
        assert len(pieces) == n and all(pieces)
    assert "".join(split_text("hello world", 4)) == "hello world"


def test_echo_reply_is_deterministic_and_honest() -> None:
    reply = echo_reply([{"role": "user", "content": "ping"}])
    assert reply == echo_reply("ping")
    assert "not an LLM" in reply and "ping" in reply
    assert make_title("x" * 80) == "x" * 57 + "..."


def _turn(**request) -> Turn:
    body = {"model": "privchat-dev/echo", "input": "hi", **request}
    return Turn(body, "resp_1", "msg_1", "rs_1", 100, "hello there friend", 3, "conv_1", "Hi")


def test_script_catalogue_order_and_numbering() -> None:
    script = build_script(_turn(), Knobs(deltas=3, reasoning=True, citation=True))
    types = [e["type"] for e in script.events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[2] == "conversation.title.updated"
    assert types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 3
    assert "response.reasoning.delta" in types and "response.output_text.annotation.added" in types
    numbered = [e["sequence_number"] for e in script.events if "sequence_number" in e]
    assert numbered == list(range(len(numbered)))
    assert "sequence_number" not in script.events[2]
    completed = script.events[-1]
    assert completed["usage"] == completed["response"]["usage"]
    assert list(completed)[:3] == ["type", "sequence_number", "response"]
    text = "".join(e["delta"] for e in script.events if e["type"] == "response.output_text.delta")
    assert text == "hello there friend" == script.final["output"][-1]["content"][0]["text"]


def test_script_failure_shapes() -> None:
    only = build_script(_turn(), Knobs(fail="failed_only", fail_status=404, fail_message="gone"))
    assert only.events == [
        {
            "type": "response.failed",
            "text": "gone",
            "error": {"message": "gone", "type": "not_found"},
            "status_code": 404,
        }
    ]
    partial = build_script(_turn(), Knobs(deltas=4, fail="failed_after_partial", fail_after=2))
    types = [e["type"] for e in partial.events]
    assert types.count("response.output_text.delta") == 2
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    assert "usage" in partial.events[-1] and partial.final is None
    old = build_script(_turn(), Knobs(fail="failed_only", profile="jan-2026"))
    assert set(old.events[0]) == {"type", "text"}
    late = build_script(_turn(), Knobs(title="after"))
    assert late.events[-1]["type"] == "response.completed"
    assert [e["type"] for e in late.late] == ["conversation.title.updated"]


def test_ecdsa_eip191_signature_recovers_address() -> None:
    signer = Signer.from_seed(b"unit")
    text = signed_text(b"request", b"response")
    assert (
        text
        == hashlib.sha256(b"request").hexdigest() + ":" + hashlib.sha256(b"response").hexdigest()
    )
    sig = signer.sign("ecdsa", text)
    assert sig.startswith("0x") and len(sig) == 132 and int(sig[-2:], 16) in (27, 28)
    assert recover_eip191_address(text.encode(), sig) == signer.address("ecdsa")
    assert recover_eip191_address(b"other", sig) != signer.address("ecdsa")


def test_ed25519_signature_verifies() -> None:
    signer = Signer.from_seed(b"unit")
    sig = signer.sign("ed25519", "abc:def")
    key = nacl.signing.VerifyKey(bytes.fromhex(signer.address("ed25519")))
    key.verify(b"abc:def", bytes.fromhex(sig))


def test_vpc_hmac_window() -> None:
    secret = b"s3cret"
    sig = vpc_signature(secret, 1000)
    assert vpc_signature_ok(secret, 1000, sig, 1030)
    assert vpc_signature_ok(secret, 1000, sig, 970)
    assert not vpc_signature_ok(secret, 1000, sig, 1031)
    assert not vpc_signature_ok(secret, 1001, sig, 1001)
    assert not vpc_signature_ok(b"other", 1000, sig, 1000)
    assert not vpc_signature_ok(secret, 1000, "zz", 1000)


def test_multipart_parser_is_byte_exact() -> None:
    payload = b"\x00\r\n--not-the-boundary\r\n\xff"
    body = (
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--B--\r\n"
    )
    parts = multipart.parse(body, multipart.boundary_of('multipart/form-data; boundary="B"'))
    assert [(p.name, p.filename) for p in parts] == [("purpose", None), ("file", "a.bin")]
    assert parts[1].data == payload and parts[1].content_type == "application/octet-stream"
    with pytest.raises(multipart.MultipartError):
        multipart.parse(b"garbage", "B")


def test_choose_encoding() -> None:
    assert choose_encoding(None) is None
    assert choose_encoding("gzip, deflate, br, zstd") == "br"
    assert choose_encoding("gzip") == "gzip"
    assert choose_encoding("br;q=0.5, gzip") == "gzip"
    assert choose_encoding("br;q=0, identity") is None


def test_json_is_compact_utf8() -> None:
    data = frame({"type": "t", "x": 1.0, "s": "ü"})
    assert json.loads(data.split(b"data: ")[1]) == {"type": "t", "x": 1.0, "s": "ü"}
    assert b" " not in data.split(b"data: ")[1].strip()


def test_stored_turn_keeps_input_before_output_across_a_second_boundary() -> None:
    """The turn started at t=100; the input is stored later (now), but with the turn's time."""
    from privchat.devtools.fake_cloud.routes_responses import _store_turn
    from privchat.devtools.fake_cloud.store import Conversation

    turn = _turn(input="Hello")
    script = build_script(turn, Knobs())
    conv = Conversation(core="0" * 32, created_at=90)
    _store_turn(conv, turn.request, turn, script)
    assert [item["created_at"] for item in conv.items] == [100] * len(conv.items)
    ordered = sorted(conv.items, key=lambda item: item["created_at"])
    assert [item.get("role") for item in ordered if item["type"] == "message"] == [
        "user",
        "assistant",
    ]
