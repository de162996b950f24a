"""Files uploaded through the portal: on the comment or new ticket, once on the ticket, on the events."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from contracts.commands import AddComment, CreateTicket
from contracts.models import Address, Attachment
from fastapi import FastAPI
from hdkit.mongo import OutboxRelay
from hdkit.testing import started_publisher
from pydantic import ValidationError
from tickets.api import CommentBody, CreateBody, install_error_handlers, router
from tickets.config import Settings, default_config
from tickets.domain import Mailbox, visible_attachments
from tickets.handlers import Handlers
from tickets.store import Store
from tickets.workflow import Viewer, add_comment, create

from contracts import CommentAdded, TicketCreated

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
AGENT = Viewer(id="bo", role="agent", email="bo@helpdesk.example", groups=("support",))
CUSTOMER = Viewer(id="kund@example.se", role="customer", email="kund@example.se")


def uploaded(name: str = "skärmbild.png") -> Attachment:
    return Attachment(attachment_id=f"upload:{uuid.uuid4().hex}", filename=name, content_type="image/png", size=1234)


def a_ticket(v: Viewer = AGENT, files: tuple[Attachment, ...] = ()) -> tuple[dict[str, Any], list[Any]]:
    cmd = CreateTicket(
        command_id="create-0001",
        actor=v.actor(),
        requester=Address(email="kund@example.se", name="Kund"),
        fields={"title": "Skrivaren är trasig", "description": "Se bild"},
        attachments=files,
    )
    return create(cmd, default_config(), v, ticket_id="t-1", number=1, now=NOW, templates={})


def commented(ticket: dict[str, Any], kind: str, files: tuple[Attachment, ...], v: Viewer = AGENT) -> Any:
    cmd = AddComment(
        command_id=f"comment-{uuid.uuid4().hex[:8]}",
        actor=v.actor(),
        number=ticket["number"],
        kind=kind,  # type: ignore[arg-type]
        text="Här är filen",
        attachments=files,
    )
    return add_comment(ticket, cmd, default_config(), v, now=NOW, html=None)


def test_a_replys_files_are_named_on_the_comment_kept_on_the_ticket_and_carried_on_its_event() -> None:
    ticket, _ = a_ticket()
    files = (uploaded("logg.txt"), uploaded("bild.png"))

    change = commented(ticket, "public_reply", files)

    stored = change.push["comments"][0]
    assert stored["attachment_ids"] == [f.attachment_id for f in files] and "attachments" not in stored
    assert change.push["attachments"] == [f.model_dump() for f in files]
    (event,) = [e for e in change.events if isinstance(e, CommentAdded)]
    assert event.comment.attachments == files


def test_a_file_named_twice_or_already_on_the_ticket_is_listed_on_the_ticket_once() -> None:
    ticket, _ = a_ticket()
    file = uploaded()
    ticket["attachments"] = [file.model_dump()]

    change = commented(ticket, "public_reply", (file, file))

    assert change.push["comments"][0]["attachment_ids"] == [file.attachment_id]
    assert "attachments" not in change.push  # the ticket lists it already
    assert [e for e in change.events if isinstance(e, CommentAdded)][0].comment.attachments == (file,)


def test_a_customers_new_request_keeps_its_files_shows_them_to_the_customer_and_names_them_on_the_event() -> None:
    file = uploaded("kvitto.pdf")

    doc, events = a_ticket(CUSTOMER, (file,))

    assert doc["attachments"] == [file.model_dump()]
    assert visible_attachments(doc, comments=[]) == [file.model_dump()]
    (created,) = [e for e in events if isinstance(e, TicketCreated)]
    assert created.attachments == (file,)


def test_the_customer_does_not_see_the_files_of_an_internal_comment() -> None:
    ticket, _ = a_ticket()
    public, internal = uploaded("svar.pdf"), uploaded("intern.pdf")
    reply = commented(ticket, "public_reply", (public,))
    note = commented(ticket, "internal_comment", (internal,))
    ticket["attachments"] = reply.push["attachments"] + note.push["attachments"]
    ticket["comments"] = reply.push["comments"] + note.push["comments"]

    shown = visible_attachments(ticket, [c for c in ticket["comments"] if c["visibility"] == "public"])

    assert [a["filename"] for a in shown] == ["svar.pdf"]


@pytest.mark.parametrize(
    "attachment_id",
    ["email-1:a0", "upload:1234", "upload:" + "G" * 32, "upload:" + "a" * 32 + "/../x", ""],
)
def test_the_api_accepts_only_ids_of_uploaded_files(attachment_id: str) -> None:
    file = {"attachment_id": attachment_id, "filename": "x.pdf", "content_type": "application/pdf", "size": 1}

    with pytest.raises(ValidationError) as refused:
        CommentBody(kind="public_reply", text="hej", attachments=[file])  # type: ignore[list-item]
    assert refused.value.errors()[0]["loc"][:2] == ("attachments", 0)
    with pytest.raises(ValidationError):
        CreateBody(attachments=[file])  # type: ignore[list-item]


def test_the_api_takes_at_most_twenty_files_at_once() -> None:
    files = [uploaded(f"{n}.png").model_dump() for n in range(21)]

    with pytest.raises(ValidationError):
        CommentBody(kind="public_reply", text="hej", attachments=files)  # type: ignore[arg-type]
    assert len(CommentBody(kind="public_reply", text="hej", attachments=files[:20]).attachments) == 20  # type: ignore[arg-type]


def test_the_upload_limit_is_an_admin_setting_of_1_to_100_mb_defaulting_to_20() -> None:
    assert Settings().attachment_limit_mb == 20
    assert Settings(attachment_limit_mb=100).attachment_limit_mb == 100
    for wrong in (0, 101):
        with pytest.raises(ValidationError):
            Settings(attachment_limit_mb=wrong)


TOKEN = "service-token-for-tests-0123456789"
AGENT_HEADERS = {"X-Actor-Id": "bo", "X-Actor-Role": "agent", "X-Actor-Groups": "support"}
KUND = {"X-Actor-Id": "kund", "X-Actor-Role": "customer", "X-Actor-Email": "kund@example.se"}


@pytest.fixture
async def client(infra: Any, mongo: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with started_publisher(infra.bootstrap) as publisher:
        store = Store(mongo)
        await store.ensure_indexes()
        await store.seed_defaults(Mailbox(address="support@localhost", group="support"))
        handlers = Handlers(store, OutboxRelay(store.tickets, publisher), message_id_secret="s" * 32)
        app = FastAPI()
        app.include_router(router(store, handlers, TOKEN))
        install_error_handlers(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tickets") as http:
            http.headers["Authorization"] = f"Bearer {TOKEN}"
            yield http


async def test_a_reply_with_files_sent_twice_lists_them_once_and_the_customer_sees_them(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/api/tickets",
        headers=KUND,
        json={"fields": {"title": "Trasig"}, "attachments": [uploaded("foto.jpg").model_dump()]},
    )
    number = created.json()["number"]
    reply = {
        "command_id": "reply-with-files-1",
        "kind": "public_reply",
        "text": "Se bifogad manual",
        "attachments": [uploaded("manual.pdf").model_dump()],
    }
    note = {"kind": "internal_comment", "text": "Intern logg", "attachments": [uploaded("logg.txt").model_dump()]}

    first = await client.post(f"/api/tickets/{number}/comments", headers=AGENT_HEADERS, json=reply)
    again = await client.post(f"/api/tickets/{number}/comments", headers=AGENT_HEADERS, json=reply)
    await client.post(f"/api/tickets/{number}/comments", headers=AGENT_HEADERS, json=note)
    agent_view = (await client.get(f"/api/tickets/{number}", headers=AGENT_HEADERS)).json()
    customer_view = (await client.get(f"/api/tickets/{number}", headers=KUND)).json()

    assert created.status_code == 201, created.text
    assert first.status_code == 200 and again.status_code == 200, first.text
    assert [a["filename"] for a in agent_view["attachments"]] == ["foto.jpg", "manual.pdf", "logg.txt"]
    assert [a["filename"] for a in customer_view["attachments"]] == ["foto.jpg", "manual.pdf"]


async def test_a_reply_naming_a_mail_attachment_id_is_refused_with_422(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/tickets", headers=KUND, json={"fields": {"title": "Trasig"}})
    other_mail = {"attachment_id": "0b0e-mail:a0", "filename": "x.pdf", "content_type": "application/pdf", "size": 1}

    answer = await client.post(
        f"/api/tickets/{created.json()['number']}/comments",
        headers=AGENT_HEADERS,
        json={"kind": "public_reply", "text": "hej", "attachments": [other_mail]},
    )

    assert answer.status_code == 422
    assert (await client.get(f"/api/tickets/{created.json()['number']}", headers=AGENT_HEADERS)).json()[
        "attachments"
    ] == []
