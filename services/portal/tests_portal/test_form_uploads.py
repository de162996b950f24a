"""Files chosen in the agent's reply form and the customer's forms: kept by ingest, sent with the comment."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal.security import Passwords
from portal.settings import Settings

from .conftest import hidden_fields, sign_in
from .customer_kit import ALICE, a_customer, customer_client, customer_tickets, sign_in_customer
from .fakes import CustomerTickets, FakeIngest, FakeTickets, FakeUsers
from .test_customer_pages import new_ticket_route

REPLY = "/tickets/1/comments"


def limit_mb(tickets: FakeTickets, mb: int) -> None:
    tickets.api.route("GET", "/api/config", {"version": 3, "config": {"settings": {"attachment_limit_mb": mb}}})


def test_an_agents_public_reply_carries_the_chosen_files(
    client: TestClient, tickets: FakeTickets, ingest: FakeIngest
) -> None:
    sign_in(client)
    form = hidden_fields(client.get("/tickets/1").text, REPLY)

    response = client.post(
        REPLY,
        data={**form, "kind": "public_reply", "text": "Here is the manual."},
        files=[("files", ("manual.pdf", b"%PDF-1.4 manual", "application/pdf"))],
    )

    assert response.status_code == 303
    (uploaded, by), *_ = ingest.uploads
    assert (uploaded.filename, uploaded.content_type, uploaded.size, by) == (
        "manual.pdf",
        "application/pdf",
        15,
        "admin@localhost",
    )
    assert tickets.commands[-1].body["attachments"] == [uploaded.as_attachment()]


def test_a_reply_without_files_sends_no_attachments_even_with_an_empty_file_part(
    client: TestClient, tickets: FakeTickets, ingest: FakeIngest
) -> None:
    sign_in(client)
    form = hidden_fields(client.get("/tickets/1").text, REPLY)
    asked_before = len(tickets.api.calls)

    client.post(
        REPLY,
        data={**form, "kind": "internal_comment", "text": "No file"},
        files=[("files", ("", b"", "application/octet-stream"))],
    )

    assert ingest.uploads == []
    assert "attachments" not in tickets.commands[-1].body
    # the reply itself asks nothing of the tickets configuration when no file was chosen
    assert tickets.api.calls[asked_before:] == []


def test_a_file_over_the_admins_limit_is_refused_and_nothing_is_sent_or_kept(
    client: TestClient, tickets: FakeTickets, ingest: FakeIngest
) -> None:
    limit_mb(tickets, 1)
    sign_in(client)
    form = hidden_fields(client.get("/tickets/1").text, REPLY)

    response = client.post(
        REPLY,
        data={**form, "kind": "public_reply", "text": "Big one"},
        files=[("files", ("video.mp4", b"x" * (1024 * 1024 + 1), "video/mp4"))],
    )

    assert response.status_code == 422
    assert "video.mp4 is larger than 1 MB" in response.text
    assert "Big one" in response.text  # the draft is kept
    assert ingest.uploads == [] and tickets.commands == []


@pytest.fixture
def customer_app(settings: Settings, users: FakeUsers, passwords: Passwords) -> Iterator[tuple[Any, Any, Any]]:
    tickets, ingest = customer_tickets(), FakeIngest()
    with customer_client(settings, users, tickets, passwords, ingest=ingest) as client:
        a_customer(users, passwords, ALICE, organisation="acme")
        sign_in_customer(client)
        yield client, tickets, ingest


def test_a_customers_new_request_carries_the_chosen_files(customer_app: tuple[Any, Any, Any]) -> None:
    alice, tickets, ingest = customer_app
    made = new_ticket_route(tickets)
    form = hidden_fields(alice.get("/my/tickets/new").text, "/my/tickets/new")

    response = alice.post(
        "/my/tickets/new",
        data={**form, "title": "Broken screen", "description": "See the photo."},
        files=[("files", ("photo.jpg", b"\xff\xd8\xff jpeg", "image/jpeg"))],
    )

    assert response.status_code == 303
    (uploaded, by), *_ = ingest.uploads
    assert by == ALICE
    _, body = made[0]
    assert body["attachments"] == [uploaded.as_attachment()]


def test_a_customers_answer_carries_the_chosen_files(customer_app: tuple[Any, Any, Any]) -> None:
    alice, tickets, ingest = customer_app
    tickets_of: CustomerTickets = tickets
    form = hidden_fields(alice.get("/my/tickets/1").text, "/my/tickets/1/comments")

    alice.post(
        "/my/tickets/1/comments",
        data={**form, "text": "The log file"},
        files=[("files", ("log.txt", b"error 42", "text/plain"))],
    )

    assert [u.filename for u, _ in ingest.uploads] == ["log.txt"]
    assert tickets_of.commands[-1].body["attachments"][0]["filename"] == "log.txt"
