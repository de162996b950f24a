"""The files of an agent's public reply go with its mail, within the size limit; the rest are named in it."""

from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest
from notify.attachments import FileUnavailable, IngestFiles
from notify.domain import MailSettings

from tests_notify.builders import agent_reply
from tests_notify.conftest import handle, make_handlers


class FakeIngest:
    """Ingest's files by id; `down` makes every fetch fail."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = dict(files or {})
        self.down = False
        self.fetched: list[str] = []

    async def fetch(self, attachment_id: str) -> bytes:
        self.fetched.append(attachment_id)
        if self.down or attachment_id not in self.files:
            raise FileUnavailable("connection refused")
        return self.files[attachment_id]


def file(n: int, name: str, size: int, content_type: str = "application/pdf") -> dict[str, Any]:
    return {"attachment_id": f"upload:{n:032x}", "filename": name, "content_type": content_type, "size": size}


def reply_with(files: list[dict[str, Any]], visibility: str = "public", **changes: Any) -> Any:
    command = agent_reply(**changes)
    comment = {**command.context["comment"], "visibility": visibility, "attachments": files}
    return command.model_copy(update={"context": {**command.context, "comment": comment}})


def parsed(smtp: Any) -> Any:
    ((message, _, _),) = smtp.outbox
    return message_from_bytes(message.as_bytes(), policy=policy.default)


def attached(mail: Any) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in mail.iter_attachments()}


@pytest.fixture
def ingest() -> FakeIngest:
    return FakeIngest({f"upload:{n:032x}": bytes([n]) * size for n, size in ((1, 10), (2, 20), (3, 30))})


async def test_the_files_of_an_agents_reply_are_attached_to_its_mail(store, publisher, smtp, metrics, naps, ingest):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, files=ingest)
    command = reply_with([file(1, "manual.pdf", 10), file(2, "skärmbild.png", 20, "image/png")])

    await handle(handlers, command)

    mail = parsed(smtp)
    assert attached(mail) == {"manual.pdf": b"\x01" * 10, "skärmbild.png": b"\x02" * 20}
    assert [p.get_content_type() for p in mail.iter_attachments()] == ["application/pdf", "image/png"]
    assert "The toner was loose" in mail.get_body(("plain",)).get_content()
    assert store.docs[command.notification_id]["attachments"] == ["upload:" + "1".zfill(32), "upload:" + "2".zfill(32)]


async def test_files_past_the_total_limit_are_named_in_the_mail_with_the_ticket_link(
    store, publisher, smtp, metrics, naps, ingest
):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, files=ingest, max_attachments_bytes=35)
    command = reply_with([file(1, "a.pdf", 10), file(3, "stor.zip", 30), file(2, "b.pdf", 20)])

    await handle(handlers, command)

    mail = parsed(smtp)
    assert set(attached(mail)) == {"a.pdf", "b.pdf"}
    text = mail.get_body(("plain",)).get_content()
    assert (
        "Not attached to this email:\n- stor.zip (30 bytes): the attachments of one email may total at most 35" in text
    )
    assert "You find it on your request: http://127.0.0.1:8000/t/secret-link-token" in text
    html = mail.get_body(("html",)).get_content()
    assert "<li>stor.zip (30 bytes)" in html and 'href="http://127.0.0.1:8000/t/secret-link-token"' in html
    assert "upload:" + "3".zfill(32) not in ingest.fetched  # too large by its record: never fetched
    left_out = store.docs[command.notification_id]["attachments_left_out"]
    assert left_out == [{"filename": "stor.zip", "size": 30, "reason": "too_large"}]


async def test_a_file_ingest_cannot_give_now_is_named_and_the_mail_still_goes(
    store, publisher, smtp, metrics, naps, ingest
):
    ingest.down = True
    store.settings = MailSettings.model_validate({"notify_mode": "email"})
    handlers = make_handlers(store, publisher, smtp, metrics, naps, files=ingest)

    await handle(handlers, reply_with([file(1, "manual.pdf", 10)], language="sv"))

    mail = parsed(smtp)
    assert attached(mail) == {}
    assert "- manual.pdf (10 bytes): den kunde inte hämtas just nu" in mail.get_body(("plain",)).get_content()


async def test_a_hostile_file_name_is_escaped_in_the_html_note(store, publisher, smtp, metrics, naps, ingest):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, files=ingest, max_attachments_bytes=1)

    await handle(handlers, reply_with([file(1, "<img src=x onerror=alert(1)>.pdf", 10)]))

    html = parsed(smtp).get_body(("html",)).get_content()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;.pdf" in html


async def test_an_internal_note_or_a_staff_notice_carries_no_files(store, publisher, smtp, metrics, naps, ingest):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, files=ingest)

    await handle(handlers, reply_with([file(1, "intern.pdf", 10)], visibility="internal", notification_id="n-1"))
    await handle(handlers, reply_with([file(1, "svar.pdf", 10)], audience="staff", notification_id="n-2"))

    assert len(smtp.outbox) == 2
    assert all(list(message.iter_attachments()) == [] for message, _, _ in smtp.outbox)
    assert ingest.fetched == []


async def test_in_link_mode_the_files_stay_on_the_ticket(store, publisher, smtp, metrics, naps, ingest):
    store.settings = MailSettings.model_validate({"notify_mode": "link"})
    handlers = make_handlers(store, publisher, smtp, metrics, naps, files=ingest)

    await handle(handlers, reply_with([file(1, "manual.pdf", 10)]))

    mail = parsed(smtp)
    assert attached(mail) == {} and ingest.fetched == []
    assert "manual.pdf" not in mail.get_body(("plain",)).get_content()


async def test_ingest_files_fetches_with_the_service_token_and_names_a_failure() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("missing"):
            return httpx.Response(404)
        return httpx.Response(200, content=b"bytes")

    files = IngestFiles("http://ingest/", "token-0123", transport=httpx.MockTransport(answer))

    assert await files.fetch("upload:abc") == b"bytes"
    with pytest.raises(FileUnavailable):
        await files.fetch("missing")
    await files.aclose()
    assert seen[0].url.path == "/api/attachments/upload:abc"
    assert seen[0].headers["Authorization"] == "Bearer token-0123"
