"""Files chosen in a portal form: checked against the limits, kept by ingest, handed on for tickets."""

import io
import json

import httpx
import pytest
from portal.domain import Actor
from portal.ingest_client import IngestClient, IngestUnavailable, UploadRefused
from portal.tickets_client import TicketsClient
from portal.uploads import AttachmentRefused, limit_bytes, store_uploads
from starlette.datastructures import Headers, UploadFile

from tests_portal.fakes import FakeIngest, FakeTickets

TOKEN = "t" * 32


def a_file(name: str, data: bytes, content_type: str = "application/pdf", *, size_known: bool = True) -> UploadFile:
    return UploadFile(
        io.BytesIO(data),
        size=len(data) if size_known else None,
        filename=name,
        headers=Headers({"content-type": content_type}),
    )


def nothing_chosen() -> UploadFile:
    """What a browser sends for a file input left empty: a part with no name and no bytes."""
    return UploadFile(
        io.BytesIO(b""), size=0, filename="", headers=Headers({"content-type": "application/octet-stream"})
    )


async def test_chosen_files_are_kept_by_ingest_and_returned_as_the_tickets_api_takes_them() -> None:
    ingest = FakeIngest()

    kept = await store_uploads(
        ingest,
        [a_file("manual.pdf", b"%PDF-1"), nothing_chosen(), a_file("bild.png", b"PNG", "image/png")],
        max_bytes=100,
        uploaded_by="u-bo",
    )

    assert kept == [
        {"attachment_id": f"upload:{1:032x}", "filename": "manual.pdf", "content_type": "application/pdf", "size": 6},
        {"attachment_id": f"upload:{2:032x}", "filename": "bild.png", "content_type": "image/png", "size": 3},
    ]
    assert [by for _, by in ingest.uploads] == ["u-bo", "u-bo"]
    assert ingest.files[f"upload:{1:032x}"].content == b"%PDF-1"


async def test_no_file_chosen_keeps_nothing() -> None:
    ingest = FakeIngest()

    assert await store_uploads(ingest, [nothing_chosen(), ""], max_bytes=100) == []
    assert ingest.calls == []


async def test_a_file_over_the_limit_is_refused_naming_it_and_the_limit_before_anything_is_kept() -> None:
    ingest = FakeIngest()

    with pytest.raises(AttachmentRefused) as refused:
        await store_uploads(
            ingest, [a_file("ok.pdf", b"x"), a_file("stor.zip", b"x" * 2049)], max_bytes=2048, uploaded_by="u-bo"
        )

    assert refused.value.reason == "stor.zip is larger than 2 kB, the largest file you can attach."
    assert ingest.uploads == []


async def test_a_file_of_unknown_size_is_read_only_one_byte_past_the_limit() -> None:
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    big = UploadFile(Counting(b"x" * 10_000), size=None, filename="big.bin")

    with pytest.raises(AttachmentRefused):
        await store_uploads(FakeIngest(), [big], max_bytes=1000)
    assert reads == [1001]


async def test_too_many_files_are_refused_in_the_persons_language() -> None:
    from portal.i18n import translator

    with pytest.raises(AttachmentRefused) as refused:
        await store_uploads(
            FakeIngest(), [a_file(f"{n}.pdf", b"x") for n in range(3)], max_bytes=100, max_files=2, t=translator("sv")
        )

    assert refused.value.reason == "Du kan bifoga högst 2 filer åt gången."


async def test_an_empty_chosen_file_and_a_file_ingest_refuses_are_named() -> None:
    ingest = FakeIngest()
    ingest.upload_limit = 5

    with pytest.raises(AttachmentRefused) as empty:
        await store_uploads(ingest, [a_file("tom.txt", b"", "text/plain")], max_bytes=100)
    with pytest.raises(AttachmentRefused) as refused:
        await store_uploads(ingest, [a_file("sex.txt", b"123456", "text/plain")], max_bytes=100)

    assert empty.value.reason == "tom.txt is empty."
    assert refused.value.reason == "sex.txt could not be attached: sex.txt is larger than 5 bytes, the upload limit."


def test_the_admins_limit_in_mb_becomes_bytes_within_1_to_100_mb() -> None:
    assert limit_bytes(20) == 20 * 1024 * 1024
    assert limit_bytes(None) == 20 * 1024 * 1024
    assert limit_bytes(0) == 1024 * 1024
    assert limit_bytes(1000) == 100 * 1024 * 1024


def client_answering(handler) -> IngestClient:  # noqa: ANN001
    return IngestClient("http://ingest:8001/", TOKEN, transport=httpx.MockTransport(handler))


async def test_the_client_uploads_a_multipart_form_with_the_service_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {
            "attachment_id": "upload:" + "a" * 32,
            "filename": "a.pdf",
            "content_type": "application/pdf",
            "size": 4,
        }
        return httpx.Response(201, json={**body, "content_id": None})

    uploaded = await client_answering(handler).upload("a.pdf", "application/pdf", b"%PDF", "u-bo")

    assert uploaded.attachment_id == "upload:" + "a" * 32 and uploaded.size == 4
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/api/attachments")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'name="file"; filename="a.pdf"' in body and b"%PDF" in body and b"u-bo" in body


async def test_the_client_turns_413_and_422_into_a_refusal_with_ingests_reason() -> None:
    for status in (413, 422):
        client = client_answering(lambda _, s=status: httpx.Response(s, json={"detail": "big.zip is too large."}))
        with pytest.raises(UploadRefused) as refused:
            await client.upload("big.zip", "application/zip", b"x", "u-bo")
        assert refused.value.reason == "big.zip is too large."


async def test_the_client_reports_a_failing_or_unreachable_ingest_as_unavailable() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler in (unreachable, lambda _: httpx.Response(500), lambda _: httpx.Response(201, content=b"<html>")):
        with pytest.raises(IngestUnavailable):
            await client_answering(handler).upload("a.pdf", "application/pdf", b"x", "u-bo")


async def test_a_comment_sends_its_files_to_tickets_only_when_there_are_some() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={})

    client = TicketsClient("http://tickets", TOKEN, transport=httpx.MockTransport(handler))
    actor = Actor(role="agent", id="u-bo", email="bo@localhost", name="Bo")
    files = [{"attachment_id": "upload:" + "b" * 32, "filename": "a.pdf", "content_type": "application/pdf", "size": 1}]

    await client.add_comment(actor, 7, kind="public_reply", text="Hej", command_id="cmd-00001")
    await client.add_comment(actor, 7, kind="public_reply", text="Hej", command_id="cmd-00002", attachments=files)

    assert "attachments" not in bodies[0]
    assert bodies[1]["attachments"] == files


async def test_the_fake_tickets_keep_a_comments_files_on_the_ticket() -> None:
    tickets = FakeTickets()
    number = next(iter(tickets.tickets))
    files = [{"attachment_id": "upload:" + "c" * 32, "filename": "a.pdf", "content_type": "application/pdf", "size": 1}]
    actor = Actor(role="agent", id="u-bo", email="bo@localhost", name="Bo")

    await tickets.add_comment(actor, number, kind="public_reply", text="Hej", command_id="cmd-00003", attachments=files)

    assert tickets.tickets[number]["attachments"][-1] == files[0]
    assert tickets.tickets[number]["comments"][-1]["attachment_ids"] == [files[0]["attachment_id"]]
