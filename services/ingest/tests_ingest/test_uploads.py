"""Files uploaded through the portal: kept like mail attachments, served by the same download route."""

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from contracts.models import UPLOAD_ID_PATTERN
from fastapi import FastAPI
from ingest.app import api
from ingest.store import Store
from ingest.uploads import Uploads
from prometheus_client import CollectorRegistry

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1000


class MemoryStore:
    """The part of ingest's store that uploads and downloads use, in dicts."""

    def __init__(self) -> None:
        self.raw: dict[str, bytes] = {}
        self.records: dict[str, dict[str, Any]] = {}

    async def save_upload(self, record: dict[str, Any], data: bytes) -> None:
        self.raw[record["_id"]] = data
        self.records[record["_id"]] = record

    async def find_attachment(self, attachment_id: str) -> dict[str, Any] | None:
        return self.records.get(attachment_id)

    async def load_raw(self, raw_id: str) -> bytes | None:
        return self.raw.get(raw_id)


def client_for(store: Any, metrics: CollectorRegistry | None = None) -> httpx.AsyncClient:
    uploads = Uploads(store, metrics or CollectorRegistry(), max_bytes=LIMIT)
    app = FastAPI()
    app.include_router(api(store, None, TOKEN, uploads=uploads))  # type: ignore[arg-type]  # no intake needed
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest")


@pytest.fixture
async def memory() -> AsyncIterator[tuple[MemoryStore, httpx.AsyncClient, CollectorRegistry]]:
    store, metrics = MemoryStore(), CollectorRegistry()
    async with client_for(store, metrics) as client:
        yield store, client, metrics


async def test_an_uploaded_file_is_kept_and_downloads_like_a_mail_attachment(memory: Any) -> None:
    store, client, metrics = memory

    answer = await client.post(
        "/api/attachments",
        headers=AUTH,
        files={"file": ("Offert åäö.pdf", b"%PDF-1.4 hello", "application/pdf")},
        data={"uploaded_by": "u-bea"},
    )

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["filename"] == "Offert åäö.pdf" and body["content_type"] == "application/pdf" and body["size"] == 14
    assert re.fullmatch(UPLOAD_ID_PATTERN, body["attachment_id"])
    record = store.records[body["attachment_id"]]
    assert record["source"] == "upload" and record["uploaded_by"] == "u-bea"
    download = await client.get(f"/api/attachments/{body['attachment_id']}", headers=AUTH)
    assert download.content == b"%PDF-1.4 hello"
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith('attachment; filename="Offert aao.pdf"')
    assert metrics.get_sample_value("helpdesk_ingest_uploads_total", {"outcome": "kept"}) == 1


async def test_two_uploads_of_the_same_file_get_different_unguessable_ids(memory: Any) -> None:
    _, client, _ = memory
    ids = [
        (await client.post("/api/attachments", headers=AUTH, files={"file": ("a.txt", b"same", "text/plain")})).json()[
            "attachment_id"
        ]
        for _ in range(2)
    ]

    assert ids[0] != ids[1]


async def test_a_dangerous_type_is_kept_but_only_ever_served_as_a_download(memory: Any) -> None:
    _, client, _ = memory
    answer = await client.post(
        "/api/attachments",
        headers=AUTH,
        files={"file": ("../../evil.html", b"<script>alert(1)</script>", "text/html; charset=utf-8")},
    )
    attachment = answer.json()

    download = await client.get(f"/api/attachments/{attachment['attachment_id']}", headers=AUTH)

    assert attachment["filename"] == "evil.html" and attachment["content_type"] == "text/html"
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-content-type-options"] == "nosniff"


async def test_the_form_may_name_the_file_and_type_and_an_unusable_type_becomes_octet_stream(memory: Any) -> None:
    _, client, _ = memory
    answer = await client.post(
        "/api/attachments",
        headers=AUTH,
        files={"file": ("blob", b"data", "application/octet-stream")},
        data={"filename": "photo.png", "content_type": "image/png"},
    )
    odd = await client.post(
        "/api/attachments", headers=AUTH, files={"file": ("x.bin", b"data", "not a type\r\nX-Evil: 1")}
    )

    assert (answer.json()["filename"], answer.json()["content_type"]) == ("photo.png", "image/png")
    assert odd.json()["content_type"] == "application/octet-stream"


async def test_an_oversized_file_is_refused_with_413_naming_the_file_and_the_limit(memory: Any) -> None:
    store, client, metrics = memory

    answer = await client.post(
        "/api/attachments", headers=AUTH, files={"file": ("big.zip", b"x" * (LIMIT + 1), "application/zip")}
    )

    assert answer.status_code == 413
    assert answer.json()["detail"] == "big.zip is larger than 1000 bytes, the upload limit."
    assert store.records == {}
    assert metrics.get_sample_value("helpdesk_ingest_uploads_total", {"outcome": "too_large"}) == 1


async def test_a_body_declared_far_over_the_limit_is_refused_before_it_is_read(memory: Any) -> None:
    _, client, _ = memory

    answer = await client.post(
        "/api/attachments",
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(10**9)},
        content=b"--x--\r\n",
    )

    assert answer.status_code == 413


async def test_an_empty_file_or_no_file_is_refused_with_422_and_a_reason(memory: Any) -> None:
    store, client, _ = memory

    empty = await client.post("/api/attachments", headers=AUTH, files={"file": ("notes.txt", b"", "text/plain")})
    missing = await client.post("/api/attachments", headers=AUTH, data={"filename": "notes.txt"})

    assert empty.status_code == 422 and empty.json()["detail"] == "notes.txt is empty."
    assert missing.status_code == 422 and "No file was sent" in missing.json()["detail"]
    assert store.records == {}


async def test_uploading_needs_the_service_token(memory: Any) -> None:
    _, client, _ = memory

    answer = await client.post("/api/attachments", files={"file": ("a.txt", b"hi", "text/plain")})

    assert answer.status_code == 401


async def test_an_upload_larger_than_a_raw_chunk_round_trips_through_the_real_store(mongo: Any) -> None:
    store = Store(mongo)
    await store.ensure_indexes()
    data = bytes(range(256)) * (9 * 4096 + 7)  # over one 8 MB chunk
    uploads = Uploads(store, CollectorRegistry(), max_bytes=len(data))
    app = FastAPI()
    app.include_router(api(store, None, TOKEN, uploads=uploads))  # type: ignore[arg-type]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
        answer = await client.post(
            "/api/attachments", headers=AUTH, files={"file": ("disk.img", data, "application/octet-stream")}
        )
        download = await client.get(f"/api/attachments/{answer.json()['attachment_id']}", headers=AUTH)

    assert answer.status_code == 201, answer.text
    assert download.status_code == 200 and download.content == data
    record = await store.find_attachment(answer.json()["attachment_id"])
    assert record is not None and record["source"] == "upload" and record["size"] == len(data)
