import httpx
import pytest
from portal.ingest_client import IngestClient, IngestNotFound, IngestUnavailable

TOKEN = "t" * 32


def client_answering(handler) -> IngestClient:  # noqa: ANN001
    return IngestClient("http://ingest:8001/", TOKEN, transport=httpx.MockTransport(handler))


async def test_an_attachment_is_fetched_with_the_service_token_and_keeps_the_download_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {
            "Content-Type": "application/pdf",
            "Content-Disposition": 'attachment; filename="a.pdf"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Set-Cookie": "ingest=1",
        }
        return httpx.Response(200, content=b"%PDF", headers=headers)

    download = await client_answering(handler).attachment("raw/1:a1")

    assert seen[0].url.raw_path == b"/api/attachments/raw%2F1:a1"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert download.content == b"%PDF"
    assert download.headers == {
        "content-type": "application/pdf",
        "content-disposition": 'attachment; filename="a.pdf"',
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; sandbox",
    }


async def test_a_404_is_not_found_and_a_refused_or_failing_ingest_is_unavailable() -> None:
    def answer(status: int):  # noqa: ANN202
        return client_answering(lambda _: httpx.Response(status, json={"detail": "x"}))

    with pytest.raises(IngestNotFound):
        await answer(404).attachment("a")
    for status in (401, 403, 500, 503):
        with pytest.raises(IngestUnavailable):
            await answer(status).attachment("a")


async def test_an_unreachable_ingest_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(IngestUnavailable):
        await client_answering(handler).quarantine()


async def test_a_dot_segment_id_never_reaches_ingest() -> None:
    seen: list[httpx.Request] = []
    client = client_answering(lambda r: seen.append(r) or httpx.Response(200))

    for bad in ("..", "."):
        with pytest.raises(IngestNotFound):
            await client.quarantine_raw(bad)
    assert seen == []


async def test_the_quarantine_list_is_read_with_its_ids() -> None:
    entry = {"_id": "q1", "mailboxes": ["s@example.com"], "reason": "bad", "size": 10, "received_at": None}
    entries = await client_answering(lambda _: httpx.Response(200, json=[entry])).quarantine()

    assert [(e.id, e.reason, e.size, e.mailboxes) for e in entries] == [("q1", "bad", 10, ["s@example.com"])]


async def test_reprocess_tells_accepted_duplicate_and_still_unreadable_apart() -> None:
    answers = {
        "a": httpx.Response(200, json={"id": "a", "outcome": "accepted"}),
        "d": httpx.Response(200, json={"id": "d", "outcome": "duplicate"}),
        "u": httpx.Response(422, json={"id": "u", "outcome": "unreadable", "reason": "no From", "attempts": 3}),
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[request.url.path.split("/")[3]]

    client = client_answering(handler)

    assert (await client.reprocess("a")).outcome == "accepted"
    assert (await client.reprocess("d")).outcome == "duplicate"
    still = await client.reprocess("u")
    assert (still.outcome, still.reason) == ("unreadable", "no From")
    assert {r.method for r in seen} == {"POST"}
    assert seen[0].url.path == "/api/quarantine/a/reprocess"
