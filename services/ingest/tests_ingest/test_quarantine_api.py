"""The quarantine and attachment API on the real store and Kafka: reprocessing, .eml and attachment downloads."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hdkit.mongo import OutboxRelay
from hdkit.testing import read_envelopes, started_publisher
from ingest.app import api
from ingest.handlers import EmailIntake, Limits, Outcome
from ingest.store import Store
from prometheus_client import CollectorRegistry

from contracts import topics

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNREADABLE = b"\r\n\r\nthis has no headers at all\r\n"


def mail(message_id: str, parts: list[tuple[str, str, bytes]] | None = None) -> bytes:
    """A message with the given (filename, content type, bytes) attachments."""
    head = f"From: a@example.com\r\nTo: support@localhost\r\nSubject: files\r\nMessage-ID: <{message_id}>\r\n"
    if not parts:
        return (head + "\r\nhello\r\n").encode()
    body = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
    body += "Content-Type: text/plain\r\n\r\nsee files\r\n"
    raw = (head + body).encode()
    for filename, content_type, data in parts:
        raw += (
            (
                f"--XX\r\nContent-Type: {content_type}\r\n"
                f"Content-Disposition: attachment; filename*=utf-8''{filename}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return raw + b"--XX--\r\n"


@pytest.fixture
async def ingest(infra: Any, mongo: Any) -> AsyncIterator[tuple[EmailIntake, Store, httpx.AsyncClient]]:
    """An intake on the real store and Kafka, and an HTTP client for its API."""
    async with started_publisher(infra.bootstrap) as publisher:
        store = Store(mongo)
        await store.ensure_indexes()
        limits = Limits(max_attachment_bytes=1000, max_attachments_bytes_per_message=1500)
        intake = EmailIntake(
            store, OutboxRelay(store.messages, publisher), CollectorRegistry(), loop_domain="x", limits=limits
        )
        app = FastAPI()
        app.include_router(api(store, intake, TOKEN))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            yield intake, store, client


async def quarantined_readable(store: Store, raw: bytes, mailbox: str) -> str:
    """A quarantine entry for bytes a newer parser reads (as if the parser was fixed since it arrived)."""
    entry_id = f"q-{uuid.uuid4().hex[:8]}"
    await store.save_raw(entry_id, raw)
    await store.add_quarantine(
        {"_id": entry_id, "raw_id": entry_id, "mailboxes": [mailbox], "reason": "old parser failed", "attempts": 1}
    )
    return entry_id


async def test_a_message_readable_now_is_published_on_reprocess_and_its_entry_kept_for_audit(
    infra: Any, ingest: Any
) -> None:
    _, store, client = ingest
    message_id = f"{uuid.uuid4().hex[:8]}@example.com"
    entry_id = await quarantined_readable(store, mail(message_id), "support@localhost")

    answer = await client.post(f"/api/quarantine/{entry_id}/reprocess", headers=AUTH)

    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "accepted" and answer.json()["reprocessed_at"]
    events = await read_envelopes(
        infra.bootstrap, topics.INBOUND_EMAIL, lambda e: e["payload"]["message_id"] == message_id, expect=1
    )
    assert len(events) == 1 and events[0]["payload"]["mailbox"] == "support@localhost"
    waiting = (await client.get("/api/quarantine", headers=AUTH)).json()
    assert entry_id not in [e["_id"] for e in waiting]
    everything = (await client.get("/api/quarantine?all=true", headers=AUTH)).json()
    (kept,) = [e for e in everything if e["_id"] == entry_id]
    assert kept["outcome"] == "accepted" and kept["reprocessed_at"]
    again = await client.post(f"/api/quarantine/{entry_id}/reprocess", headers=AUTH)
    assert again.status_code == 200 and again.json()["outcome"] == "accepted"
    assert await store.quarantine.count_documents({}) == 1


async def test_a_message_already_delivered_is_reported_as_a_duplicate_on_reprocess(ingest: Any) -> None:
    intake, store, client = ingest
    raw = mail(f"{uuid.uuid4().hex[:8]}@example.com")
    assert await intake.accept(raw, ["support@localhost"]) is Outcome.ACCEPTED
    entry_id = await quarantined_readable(store, raw, "support@localhost")

    answer = await client.post(f"/api/quarantine/{entry_id}/reprocess", headers=AUTH)

    assert answer.status_code == 200 and answer.json()["outcome"] == "duplicate"


async def test_a_still_unreadable_message_stays_in_quarantine_with_one_more_attempt(ingest: Any) -> None:
    intake, store, client = ingest
    assert await intake.accept(UNREADABLE, ["support@localhost"]) is Outcome.QUARANTINED
    (entry,) = (await client.get("/api/quarantine", headers=AUTH)).json()

    answer = await client.post(f"/api/quarantine/{entry['_id']}/reprocess", headers=AUTH)

    assert answer.status_code == 422
    assert answer.json()["reason"] == entry["reason"] and answer.json()["attempts"] == 2
    (still,) = (await client.get("/api/quarantine", headers=AUTH)).json()
    assert still["_id"] == entry["_id"] and still["attempts"] == 2 and "reprocessed_at" not in still
    assert await store.quarantine.count_documents({}) == 1


async def test_reprocessing_an_unknown_entry_is_404_and_the_api_needs_the_service_token(ingest: Any) -> None:
    _, _, client = ingest
    assert (await client.post("/api/quarantine/nope/reprocess", headers=AUTH)).status_code == 404
    assert (await client.get("/api/quarantine/nope/raw", headers=AUTH)).status_code == 404
    assert (await client.post("/api/quarantine/nope/reprocess")).status_code == 401
    assert (await client.get("/api/quarantine/nope/raw")).status_code == 401
    assert (await client.get("/api/attachments/nope:a0")).status_code == 401


async def test_a_quarantined_message_downloads_as_an_eml_file(ingest: Any) -> None:
    intake, _, client = ingest
    await intake.accept(UNREADABLE, ["support@localhost"])
    (entry,) = (await client.get("/api/quarantine", headers=AUTH)).json()

    answer = await client.get(f"/api/quarantine/{entry['_id']}/raw", headers=AUTH)

    assert answer.status_code == 200 and answer.content == UNREADABLE
    assert answer.headers["content-type"] == "message/rfc822"
    assert answer.headers["content-disposition"] == f'attachment; filename="quarantine-{entry["_id"]}.eml"'
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_attachments_download_and_are_never_rendered(ingest: Any) -> None:
    intake, store, client = ingest
    html = b"<script>alert(1)</script>"
    raw = mail(
        f"{uuid.uuid4().hex[:8]}@example.com",
        [("r%C3%A4kning.pdf", "application/pdf", b"%PDF-1"), ("page.html", "text/html", html)],
    )
    assert await intake.accept(raw, ["support@localhost"]) is Outcome.ACCEPTED
    (message,) = await store.messages.find({}).to_list()
    pdf_id, html_id = f"{message['_id']}:a0", f"{message['_id']}:a1"

    pdf = await client.get(f"/api/attachments/{pdf_id}", headers=AUTH)
    page = await client.get(f"/api/attachments/{html_id}", headers=AUTH)

    assert pdf.status_code == 200 and pdf.content == b"%PDF-1"
    assert pdf.headers["content-type"] == "application/pdf"
    disposition = "attachment; filename=\"rakning.pdf\"; filename*=UTF-8''r%C3%A4kning.pdf"
    assert pdf.headers["content-disposition"] == disposition
    assert page.content == html and page.headers["content-type"] == "application/octet-stream"
    for answer in (pdf, page):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert answer.headers["cache-control"] == "private"
    assert await store.find_attachment(pdf_id) == {
        "_id": pdf_id,
        "raw_id": message["_id"],
        "filename": "räkning.pdf",
        "content_type": "application/pdf",
        "size": 6,
    }
    assert (await client.get(f"/api/attachments/{message['_id']}:a9", headers=AUTH)).status_code == 404
    # a message's own bytes are not an attachment
    assert (await client.get(f"/api/attachments/{message['_id']}", headers=AUTH)).status_code == 404


async def test_attachments_past_the_per_message_total_are_left_out_in_order_with_notes(infra: Any, ingest: Any) -> None:
    intake, store, _ = ingest
    message_id = f"{uuid.uuid4().hex[:8]}@example.com"
    raw = mail(
        message_id,
        [
            ("one.bin", "application/octet-stream", b"1" * 900),
            ("huge.bin", "application/octet-stream", b"h" * 1200),  # over the per-file limit (1000)
            ("two.bin", "application/octet-stream", b"2" * 700),  # 900 + 700 > 1500
            ("three.bin", "application/octet-stream", b"3" * 10),  # fits, but comes after one that did not
        ],
    )
    assert await intake.accept(raw, ["support@localhost"]) is Outcome.ACCEPTED
    (event,) = await read_envelopes(
        infra.bootstrap, topics.INBOUND_EMAIL, lambda e: e["payload"]["message_id"] == message_id, expect=1
    )
    payload = event["payload"]
    assert [a["filename"] for a in payload["attachments"]] == ["one.bin"]
    for name in ("huge.bin", "two.bin", "three.bin"):
        assert name in payload["text"] and name in payload["text_new"]
    assert "1500 bytes" in payload["text"] and "1000 bytes per file" in payload["text"]
    record = await store.find_message(payload["raw_id"])
    assert record is not None and record["left_out"] == [
        {"filename": "huge.bin", "size": 1200, "reason": "file_too_large"},
        {"filename": "two.bin", "size": 700, "reason": "message_total_too_large"},
        {"filename": "three.bin", "size": 10, "reason": "message_total_too_large"},
    ]
