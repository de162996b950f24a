"""The customer answers on their ticket's secret-link page, without an account."""

import re

import pytest
from fastapi.testclient import TestClient
from portal.tickets_client import CommandRefused

from .conftest import hidden_fields, sign_in
from .fakes import FakeTickets, ticket

TOKEN = "k3y-0f-the-customer-link-xyz"
OTHER_TOKEN = "k3y-0f-bobs-customer-link-abc"
ANSWER = f"/t/{TOKEN}/comments"


@pytest.fixture
def linked(tickets: FakeTickets) -> FakeTickets:
    tickets.tickets[1]["link_token"] = TOKEN
    tickets.tickets[2] = ticket(
        2, title="Bob's laptop", link_token=OTHER_TOKEN, requester={"email": "bob@example.com", "name": "Bob"}
    )
    return tickets


def answer(client: TestClient, text: str, token: str = TOKEN, **overrides: str):  # noqa: ANN201
    form = hidden_fields(client.get(f"/t/{token}").text, f"/t/{token}/comments")
    return client.post(f"/t/{token}/comments", data={**form, "text": text, **overrides})


def test_the_link_page_has_an_answer_form_without_signing_in(client: TestClient, linked: FakeTickets) -> None:
    page = client.get(f"/t/{TOKEN}")

    assert page.status_code == 200
    assert '<label for="customer-reply-text">Your answer</label>' in page.text
    assert '<textarea id="customer-reply-text" name="text"' in page.text
    assert re.search(r'<button type="submit"[^>]*>Send</button>', page.text)
    form = hidden_fields(page.text, ANSWER)
    assert form["csrf_token"] and form["command_id"]
    assert "portal_session" in page.headers["set-cookie"]  # the form's token belongs to this browser


def test_a_customer_answer_is_sent_as_a_customer_comment_of_the_tickets_requester(
    client: TestClient, linked: FakeTickets
) -> None:
    response = answer(client, "It is still jammed.\r\nThanks!")

    assert response.status_code == 303
    assert response.headers["location"] == f"/t/{TOKEN}"
    [sent] = linked.commands
    assert (sent.name, sent.number) == ("comment", 1)
    assert sent.body["kind"] == "customer_comment"
    assert sent.body["text"] == "It is still jammed.\nThanks!"
    assert sent.body["channel"] == "portal"
    assert (sent.actor.role, sent.actor.email, sent.actor.id) == ("customer", "alice@example.com", "alice@example.com")
    assert sent.actor.name == "Alice Andersson"
    assert sent.actor.groups == ()
    assert "It is still jammed." in client.get(f"/t/{TOKEN}").text


def test_an_answer_submitted_twice_is_added_once(client: TestClient, linked: FakeTickets) -> None:
    form = {**hidden_fields(client.get(f"/t/{TOKEN}").text, ANSWER), "text": "Once only."}

    client.post(ANSWER, data=form)
    client.post(ANSWER, data=form)

    assert linked.commands[0].body["command_id"] == linked.commands[1].body["command_id"]
    assert client.get(f"/t/{TOKEN}").text.count("Once only.") == 1


def test_the_customer_sees_the_status_but_a_forged_form_cannot_change_it(
    client: TestClient, linked: FakeTickets
) -> None:
    linked.tickets[1]["status"] = "waiting_for_customer"
    page = client.get(f"/t/{TOKEN}").text
    assert "Waiting for customer" in page
    assert "<select" not in page

    answer(client, "Done, thanks.", status="closed", kind="public_reply", handler="me")

    assert [(c.name, c.body["kind"]) for c in linked.commands] == [("comment", "customer_comment")]
    assert linked.tickets[1]["status"] == "waiting_for_customer"


def test_a_closed_tickets_link_page_has_no_form_and_takes_no_answer(client: TestClient, linked: FakeTickets) -> None:
    linked.tickets[1] |= {"status": "closed", "status_category": "closed"}

    page = client.get(f"/t/{TOKEN}").text
    assert "<form" not in page
    assert "This request is closed" in page

    form = {"csrf_token": _csrf_of_session(client), "command_id": "forged-command-1", "text": "Reopen!"}
    response = client.post(ANSWER, data=form)
    assert response.status_code == 409
    assert "Not sent: this request is closed." in response.text
    assert linked.commands == []


def _csrf_of_session(client: TestClient) -> str:
    # A closed ticket's page has no form: take the token from an open ticket's page in the same session.
    page = client.get(f"/t/{OTHER_TOKEN}").text
    return hidden_fields(page, f"/t/{OTHER_TOKEN}/comments")["csrf_token"]


def test_a_status_key_named_otherwise_in_the_closed_category_counts_as_closed(
    client: TestClient, linked: FakeTickets
) -> None:
    linked.tickets[1] |= {"status": "archived", "status_category": "closed"}

    assert 'id="customer-reply-text"' not in client.get(f"/t/{TOKEN}").text


def test_an_answer_to_another_tickets_wrong_link_is_not_found_and_not_sent(
    client: TestClient, linked: FakeTickets
) -> None:
    form = hidden_fields(client.get(f"/t/{TOKEN}").text, ANSWER)

    for token in ("k3y-0f-a-link-nobody-has-000", "short", "a" * 30 + "$"):
        response = client.post(f"/t/{token}/comments", data={**form, "text": "Let me in"})
        assert response.status_code == 404, token
        assert "Link not found" in response.text or "Page not found" in response.text
    assert linked.commands == []


def test_an_answer_through_one_link_goes_to_that_ticket_as_its_own_requester(
    client: TestClient, linked: FakeTickets
) -> None:
    answer(client, "Bob here.", token=OTHER_TOKEN)

    [sent] = linked.commands
    assert (sent.number, sent.actor.email) == (2, "bob@example.com")


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_an_answer_without_a_valid_csrf_token_is_refused_and_not_sent(
    client: TestClient, linked: FakeTickets, token: str | None
) -> None:
    form = {**hidden_fields(client.get(f"/t/{TOKEN}").text, ANSWER), "text": "Hi"}
    if token is None:
        del form["csrf_token"]
    else:
        form["csrf_token"] = token

    response = client.post(ANSWER, data=form)

    assert response.status_code == 403
    assert linked.commands == []


def test_an_answer_from_a_browser_without_the_pages_session_is_refused(client: TestClient, linked: FakeTickets) -> None:
    form = {**hidden_fields(client.get(f"/t/{TOKEN}").text, ANSWER), "text": "Hi"}
    client.cookies.clear()

    assert client.post(ANSWER, data=form).status_code == 403
    assert linked.commands == []


def test_an_empty_answer_is_not_sent(client: TestClient, linked: FakeTickets) -> None:
    response = answer(client, " \r\n")

    assert response.status_code == 422
    assert "Not sent: write your answer first." in response.text
    assert linked.commands == []


def test_a_refused_answer_shows_the_reason_and_keeps_the_draft(client: TestClient, linked: FakeTickets) -> None:
    linked.refusal = CommandRefused(409, "the ticket is closed; open a new one")

    response = answer(client, "My long answer")

    assert response.status_code == 409
    assert "Not sent: The ticket is closed; open a new one." in response.text
    assert "My long answer</textarea>" in response.text


def test_a_requester_address_that_cannot_go_in_a_header_is_asked_to_answer_by_mail(
    client: TestClient, linked: FakeTickets
) -> None:
    linked.tickets[1]["requester"] = {"email": "åsa@exempel.se", "name": "Åsa"}

    response = answer(client, "Hej")

    assert response.status_code == 409
    assert "Reply to our last email instead." in response.text
    assert linked.commands == []


def test_a_signed_in_agent_opening_the_link_keeps_their_session(client: TestClient, linked: FakeTickets) -> None:
    sign_in(client)

    page = client.get(f"/t/{TOKEN}")

    assert "set-cookie" not in page.headers
    assert client.get("/tickets").status_code == 200
