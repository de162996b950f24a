"""Every message in corpus/ parses to what corpus/expected.json says a user would see.

The corpus holds messages written for this project in the shapes real clients produce (Outlook, Gmail,
Apple Mail, Thunderbird, auto-replies, bounces, lists, odd charsets, broken MIME). Entries named
`generated:...` are built in code here instead of stored, to keep the repository small.
"""

from __future__ import annotations

import base64
import json
import random
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ingest.domain import ParsedEmail, UnreadableEmail, parse_email

LOOP = "helpdesk.localhost"
CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
FILES = sorted(p.name for p in CORPUS.glob("*.eml"))

KNOWN_KEYS = {
    "category",
    "note",
    "generated",
    "quarantine",
    "sender",
    "subject",
    "to",
    "cc",
    "message_id",
    "in_reply_to",
    "references",
    "auto",
    "sent_at",
    "text_equals",
    "text_contains",
    "text_not_contains",
    "text_new_equals",
    "text_new_contains",
    "text_new_not_contains",
    "html",
    "attachments",
    "bounce",
}
REQUIRED_FOR_PARSED = {"sender", "subject", "to", "cc", "message_id", "auto", "html"}


def build_huge_message() -> bytes:
    """Return a message with an 8 MB attachment (larger than the default 5 MB limit ingest enforces)."""
    data = bytes(range(256)) * (8 * 1024 * 4)
    body = base64.encodebytes(data).decode().replace("\n", "\r\n")
    head = (
        "From: Big Sender <big@example.se>\r\nTo: support@helpdesk.localhost\r\nSubject: Stor bilaga\r\n"
        "Message-ID: <huge-0001@example.se>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="huge"\r\n\r\n'
        "--huge\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Här är filmen från övervakningskameran.\r\n"
        '--huge\r\nContent-Type: video/mp4\r\nContent-Disposition: attachment; filename="kamera.mp4"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + body.encode() + b"--huge--\r\n"


GENERATORS = {"generated:huge-attachment": build_huge_message}


def _raw(name: str) -> bytes:
    if name in GENERATORS:
        return GENERATORS[name]()
    return (CORPUS / name).read_bytes()


def test_every_corpus_file_has_an_expectation_and_every_expectation_a_file() -> None:
    stored = {name for name in EXPECTED if not name.startswith("generated:")}
    assert set(FILES) - stored == set(), "corpus files without an entry in expected.json"
    assert stored - set(FILES) == set(), "expected.json entries without a corpus file"
    assert set(GENERATORS) == set(EXPECTED) - stored, "generated entries without a generator (or the reverse)"
    assert len(FILES) >= 60


def test_the_corpus_stays_small_enough_for_the_repository() -> None:
    assert sum((CORPUS / name).stat().st_size for name in FILES) < 300_000


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message_parses_as_expected(name: str) -> None:
    expected = EXPECTED[name]
    assert set(expected) <= KNOWN_KEYS, f"unknown keys in expectation: {set(expected) - KNOWN_KEYS}"
    raw = _raw(name)
    if "quarantine" in expected:
        with pytest.raises(UnreadableEmail, match=re.escape(expected["quarantine"])):
            parse_email(raw, loop_domain=LOOP)
        return
    assert REQUIRED_FOR_PARSED <= set(expected), f"missing keys: {REQUIRED_FOR_PARSED - set(expected)}"
    parsed = parse_email(raw, loop_domain=LOOP)
    _check_headers(parsed, expected)
    _check_text(parsed, expected)
    _check_html(parsed, expected["html"])
    _check_attachments(parsed, expected.get("attachments", []))
    _check_bounce(parsed, expected.get("bounce"))


@pytest.mark.parametrize("name", FILES)
def test_damaged_copies_of_corpus_messages_parse_or_are_quarantined_but_never_crash(name: str) -> None:
    rng = random.Random(name)  # noqa: S311 - not for security: the same damage every run
    original = (CORPUS / name).read_bytes()
    junk = [b"=?", b"?=", b"\r\n", b":", b"<", b'"', b"*0*=", b"\\", b"--", b"\x00", b"=?utf-8?B?", b"\n\n", b"\xff"]
    for _ in range(25):
        damaged = bytearray(original)
        position = rng.randrange(len(damaged))
        match rng.randrange(4):
            case 0:
                del damaged[position:]
            case 1:
                for _ in range(rng.randrange(1, 20)):
                    damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            case 2:
                damaged[position:position] = rng.choice(junk) * rng.randrange(1, 4)
            case _:
                del damaged[position : position + rng.randrange(200)]
        try:
            parse_email(bytes(damaged), loop_domain=LOOP)
        except UnreadableEmail:
            pass


def _check_headers(parsed: ParsedEmail, expected: dict[str, Any]) -> None:
    email_address, name = expected["sender"]
    assert parsed.sender.email == email_address
    if name is not None:
        assert parsed.sender.name == name
    assert parsed.subject == expected["subject"]
    assert [a.email for a in parsed.to] == expected["to"]
    assert [a.email for a in parsed.cc] == expected["cc"]
    assert parsed.message_id == expected["message_id"]
    assert list(parsed.in_reply_to) == expected.get("in_reply_to", [])
    assert list(parsed.references) == expected.get("references", [])
    if expected["auto"] is None:
        assert not parsed.auto_submitted, parsed.auto_reason
        assert parsed.auto_reason is None
    else:
        assert parsed.auto_submitted
        assert parsed.auto_reason is not None and expected["auto"] in parsed.auto_reason
    if "sent_at" in expected:
        want = expected["sent_at"]
        assert parsed.sent_at == (datetime.fromisoformat(want) if want else None)


def _check_text(parsed: ParsedEmail, expected: dict[str, Any]) -> None:
    if "text_equals" in expected:
        assert parsed.text.strip() == expected["text_equals"]
    for snippet in expected.get("text_contains", []):
        assert snippet in parsed.text
    for snippet in expected.get("text_not_contains", []):
        assert snippet not in parsed.text
    assert parsed.text_new.strip() in parsed.text or parsed.text_new == parsed.text
    if "text_new_equals" in expected:
        assert parsed.text_new.strip() == expected["text_new_equals"]
    for snippet in expected.get("text_new_contains", []):
        assert snippet in parsed.text_new
    for snippet in expected.get("text_new_not_contains", []):
        assert snippet not in parsed.text_new


def _check_html(parsed: ParsedEmail, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert parsed.html is None
        return
    html = parsed.html
    assert html is not None
    # Whatever the message held, what we keep must be safe to show.
    assert "<script" not in html.lower()
    assert "<style" not in html.lower()
    assert not re.search(r"\son\w+\s*=", html, re.I)
    assert "javascript:" not in html.lower()
    assert not re.search(r"<img[^>]+\ssrc=\"(?!cid:)", html, re.I), "remote images must not load"
    assert not re.search(r"data-remote-src=\"(?!https?://)", html, re.I), "only web addresses are kept to show later"
    for snippet in expected["contains"]:
        assert snippet in html
    for snippet in expected["not_contains"]:
        assert snippet not in html


def _check_attachments(parsed: ParsedEmail, expected: list[dict[str, Any]]) -> None:
    assert [a.filename for a in parsed.attachments] == [e["filename"] for e in expected]
    for got, want in zip(parsed.attachments, expected, strict=True):
        assert got.content_type == want["content_type"]
        if "size" in want:
            assert len(got.data) == want["size"]
        assert got.content_id == want.get("content_id")
        if "data_contains" in want:
            assert want["data_contains"].encode() in got.data
        assert "/" not in got.filename and "\\" not in got.filename
        assert not re.search(r"[\x00-\x1f\x7f]", got.filename)
        assert 0 < len(got.filename) <= 255


def _check_bounce(parsed: ParsedEmail, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert parsed.bounce is None
        return
    bounce = parsed.bounce
    assert bounce is not None
    assert list(bounce.recipients) == expected["recipients"]
    assert bounce.action == expected["action"]
    assert bounce.status == expected["status"]
    assert bounce.permanent is expected["permanent"]
    assert bounce.diagnostic is not None and expected["diagnostic_contains"] in bounce.diagnostic
    assert bounce.original_message_id == expected["original_message_id"]
    assert parsed.auto_submitted, "a delivery report is never answered"
