"""Working a ticket on the agent's ticket page: take it, reply, write internal comments."""

import re

import pytest
from fastapi.testclient import TestClient
from portal.domain import User
from portal.security import Passwords
from portal.tickets_client import CommandRefused

from .conftest import PHRASE, add_user, csrf_of, hidden_fields, sign_in
from .fakes import FakeTickets, FakeUsers, ticket

ASSIGN = "/tickets/1/assign"
REPLY = "/tickets/1/comments"


@pytest.fixture
def bea(users: FakeUsers, passwords: Passwords) -> User:
    return add_user(users, passwords, "bea@localhost", PHRASE, "agent", name="Bea Berg", groups=("first-line",))


@pytest.fixture
def agent(client: TestClient, bea: User) -> TestClient:
    assert sign_in(client, email="bea@localhost", password=PHRASE).status_code == 303
    return client


@pytest.fixture
def light_agent(client: TestClient, users: FakeUsers, passwords: Passwords) -> TestClient:
    add_user(users, passwords, "lee@localhost", PHRASE, "light_agent", name="Lee Light")
    assert sign_in(client, email="lee@localhost", password=PHRASE).status_code == 303
    return client


def form_of(client: TestClient, action: str) -> dict[str, str]:
    """Open the ticket page and return the hidden fields of one of its forms."""
    return hidden_fields(client.get("/tickets/1").text, action)


def reply(client: TestClient, text: str, kind: str = "public_reply", **overrides: str):  # noqa: ANN201
    return client.post(REPLY, data={**form_of(client, REPLY), "text": text, "kind": kind, **overrides})


def test_the_ticket_page_offers_assign_to_me_and_a_reply_form_with_labels(agent: TestClient) -> None:
    page = agent.get("/tickets/1").text

    assert re.search(r'<button type="submit"[^>]*id="assign-me"[^>]*>Assign to me</button>', page)
    assert '<label for="reply-text">' in page and '<textarea id="reply-text" name="text"' in page
    assert '<label for="reply-kind">' in page and '<select id="reply-kind" name="kind">' in page
    assert '<option value="public_reply" selected>Public reply</option>' in page
    assert '<option value="internal_comment">Internal comment</option>' in page
    assert re.search(r'<button type="submit"[^>]*id="reply-send"[^>]*>Send</button>', page)


def test_assign_to_me_sends_the_handler_change_as_the_signed_in_agent(
    agent: TestClient, tickets: FakeTickets, bea: User
) -> None:
    form = form_of(agent, ASSIGN)

    response = agent.post(ASSIGN, data=form)

    assert response.status_code == 303
    assert response.headers["location"] == "/tickets/1"
    [sent] = tickets.commands
    assert (sent.name, sent.number, sent.body["fields"]) == ("update", 1, {"handler": bea.id})
    assert (sent.actor.id, sent.actor.role, sent.actor.email) == (bea.id, "agent", "bea@localhost")
    assert sent.body["command_id"] == form["command_id"]
    assert sent.body["expected_version"] == 1  # a ticket someone else took meanwhile is not taken from them
    page = agent.get("/tickets/1").text
    assert "Bea Berg" in page[page.index('id="ticket-handler"') :]
    assert 'id="assign-me"' not in page


def test_the_handler_is_not_offered_assign_to_me(agent: TestClient, tickets: FakeTickets, bea: User) -> None:
    tickets.tickets[1]["handler"] = bea.id

    assert 'id="assign-me"' not in agent.get("/tickets/1").text


def test_an_agent_sees_assign_to_me_on_a_ticket_another_agent_handles(agent: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[1]["handler"] = "someone-else"

    assert 'id="assign-me"' in agent.get("/tickets/1").text


def test_a_public_reply_is_sent_with_its_kind_and_text_and_shows_on_the_ticket(
    agent: TestClient, tickets: FakeTickets, bea: User
) -> None:
    response = reply(agent, "Hello Alice,\r\nwe are on our way.")

    assert response.status_code == 303
    assert response.headers["location"] == "/tickets/1"
    [sent] = tickets.commands
    assert sent.name == "comment" and sent.number == 1
    assert (sent.body["kind"], sent.body["text"]) == ("public_reply", "Hello Alice,\nwe are on our way.")
    assert (sent.actor.id, sent.actor.role, sent.actor.name) == (bea.id, "agent", "Bea Berg")
    assert "we are on our way." in agent.get("/tickets/1").text


def test_an_internal_comment_is_sent_as_an_internal_comment(agent: TestClient, tickets: FakeTickets) -> None:
    assert reply(agent, "Called facilities.", kind="internal_comment").status_code == 303

    assert [(c.body["kind"], c.body["text"]) for c in tickets.commands] == [("internal_comment", "Called facilities.")]
    page = agent.get("/tickets/1").text
    assert "Called facilities." in page[page.index('class="comment internal"') :]


def test_a_reply_submitted_twice_changes_the_ticket_once(agent: TestClient, tickets: FakeTickets) -> None:
    form = {**form_of(agent, REPLY), "text": "On our way.", "kind": "public_reply"}

    assert agent.post(REPLY, data=form).status_code == 303
    assert agent.post(REPLY, data=form).status_code == 303

    assert len(tickets.commands) == 2
    assert tickets.commands[0].body["command_id"] == tickets.commands[1].body["command_id"] == form["command_id"]
    assert agent.get("/tickets/1").text.count("On our way.") == 1


def test_every_form_gets_its_own_fresh_command_id(agent: TestClient) -> None:
    first, second = agent.get("/tickets/1").text, agent.get("/tickets/1").text

    ids = [hidden_fields(page, action)["command_id"] for page in (first, second) for action in (ASSIGN, REPLY)]
    assert len(set(ids)) == 4


def test_a_light_agent_is_offered_internal_comments_only_and_no_assign(light_agent: TestClient) -> None:
    page = light_agent.get("/tickets/1").text

    assert '<option value="internal_comment" selected>Internal comment</option>' in page
    assert 'value="public_reply"' not in page
    assert 'id="assign-me"' not in page


def test_a_light_agent_cannot_send_a_public_reply_even_with_a_forged_form(
    light_agent: TestClient, tickets: FakeTickets
) -> None:
    response = reply(light_agent, "Promise them a new printer.", kind="public_reply")

    assert response.status_code == 403
    assert "Not sent: a light agent may write internal comments only." in response.text
    assert "Promise them a new printer." in response.text  # the draft is kept to send as a comment
    assert tickets.commands == []


def test_a_light_agent_cannot_assign_even_with_a_forged_form(light_agent: TestClient, tickets: FakeTickets) -> None:
    form = {"csrf_token": csrf_of(light_agent.get("/tickets/1").text), "command_id": "forged-command-1"}

    response = light_agent.post(ASSIGN, data=form)

    assert response.status_code == 403
    assert "light agents cannot take tickets" in response.text
    assert tickets.commands == []


def test_a_light_agents_internal_comment_is_sent(light_agent: TestClient, tickets: FakeTickets) -> None:
    assert reply(light_agent, "Seen this before.", kind="internal_comment").status_code == 303
    assert [(c.actor.role, c.body["kind"]) for c in tickets.commands] == [("light_agent", "internal_comment")]


@pytest.mark.parametrize("kind", ["customer_comment", "solution_note", ""])
def test_a_kind_the_form_does_not_offer_is_not_sent(agent: TestClient, tickets: FakeTickets, kind: str) -> None:
    response = reply(agent, "Hi", kind=kind)

    assert response.status_code == 422
    assert "Not sent: choose Public reply or Internal comment." in response.text
    assert tickets.commands == []


@pytest.mark.parametrize("text", ["", "  \r\n "])
def test_an_empty_reply_is_not_sent(agent: TestClient, tickets: FakeTickets, text: str) -> None:
    response = reply(agent, text)

    assert response.status_code == 422
    assert "Not sent: write something first." in response.text
    assert tickets.commands == []


@pytest.mark.parametrize("action", [ASSIGN, REPLY])
@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_form_without_a_valid_csrf_token_is_refused_and_nothing_is_sent(
    agent: TestClient, tickets: FakeTickets, action: str, token: str | None
) -> None:
    form = {**form_of(agent, action), "text": "Hi", "kind": "public_reply"}
    if token is None:
        del form["csrf_token"]
    else:
        form["csrf_token"] = token

    response = agent.post(action, data=form)

    assert response.status_code == 403
    assert "Form expired" in response.text
    assert tickets.commands == []


@pytest.mark.parametrize("action", [ASSIGN, REPLY])
def test_a_form_without_its_command_id_is_refused(agent: TestClient, tickets: FakeTickets, action: str) -> None:
    form = {**form_of(agent, action), "text": "Hi", "kind": "public_reply", "command_id": ""}

    response = agent.post(action, data=form)

    assert response.status_code == 400
    assert "Reload the page and try again." in response.text
    assert tickets.commands == []


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (409, "handler changed since version 1; reload and try again"),
        (403, "an agent cannot add a public reply"),
        (422, "text: String should have at least 1 character"),
    ],
)
def test_a_refused_reply_shows_the_reason_on_the_ticket_page_and_keeps_the_draft(
    agent: TestClient, tickets: FakeTickets, status: int, message: str
) -> None:
    tickets.refusal = CommandRefused(status, message)

    response = reply(agent, "My carefully written answer", kind="internal_comment")

    assert response.status_code == status
    assert re.search(r'role="alert"[^>]*>Not sent: ' + re.escape(message[0].upper() + message[1:] + "."), response.text)
    assert "My carefully written answer</textarea>" in response.text
    assert '<option value="internal_comment" selected>' in response.text
    assert "Traceback" not in response.text


def test_a_refused_assignment_shows_the_reason_on_the_ticket_page(agent: TestClient, tickets: FakeTickets) -> None:
    tickets.refusal = CommandRefused(409, "handler changed since version 1; reload and try again")

    response = agent.post(ASSIGN, data=form_of(agent, ASSIGN))

    assert response.status_code == 409
    assert "Not assigned: Handler changed since version 1; reload and try again." in response.text
    assert "Printer on floor 2 is jammed" in response.text


def test_a_reply_to_a_ticket_the_agent_may_not_see_is_a_404_page(agent: TestClient, tickets: FakeTickets) -> None:
    form = form_of(agent, REPLY)
    del tickets.tickets[1]

    response = agent.post(REPLY, data={**form, "text": "Hi", "kind": "public_reply"})

    assert response.status_code == 404
    assert "Ticket not found" in response.text


def test_a_reply_while_the_tickets_service_is_down_shows_a_503_page(agent: TestClient, tickets: FakeTickets) -> None:
    form = form_of(agent, REPLY)
    tickets.down = True

    response = agent.post(REPLY, data={**form, "text": "Hi", "kind": "public_reply"})

    assert response.status_code == 503
    assert "Tickets service unavailable" in response.text


@pytest.mark.parametrize("action", [ASSIGN, REPLY])
def test_a_signed_in_customer_cannot_use_the_agent_forms(
    client: TestClient, users: FakeUsers, passwords: Passwords, tickets: FakeTickets, action: str
) -> None:
    add_user(users, passwords, "alice@example.com", PHRASE, "customer")
    sign_in(client, email="alice@example.com", password=PHRASE)
    token = csrf_of(client.get("/me").text)

    form = {"csrf_token": token, "command_id": "forged-command-1", "text": "Hi", "kind": "public_reply"}
    response = client.post(action, data=form)

    assert response.status_code == 303
    assert response.headers["location"] == "/my/tickets"
    assert tickets.commands == []


def test_an_admin_may_reply_and_assign(client: TestClient, tickets: FakeTickets) -> None:
    sign_in(client)

    assert reply(client, "Admin here.").status_code == 303
    assert client.post(ASSIGN, data=form_of(client, ASSIGN)).status_code == 303
    assert [c.actor.role for c in tickets.commands] == ["admin", "admin"]


def test_forms_post_only_to_this_ticket(agent: TestClient, tickets: FakeTickets) -> None:
    tickets.tickets[2] = ticket(2, title="Another one")

    page = agent.get("/tickets/2").text

    assert 'action="/tickets/2/assign"' in page and 'action="/tickets/2/comments"' in page
    assert 'action="/tickets/1/' not in page
