"""What the customer portal's tests share: an app with customer-aware fakes, customers and their tickets."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from fastapi.testclient import TestClient
from portal.app import create_app
from portal.domain import User
from portal.magic_links import LinkRequestLimiter, MemorySignInLinks
from portal.security import Passwords
from portal.settings import Settings

from .conftest import PHRASE, add_user, memory_stores, sign_in
from .fakes import CustomerTickets, FakeIngest, FakeService, FakeTriggers, FakeUsers, ticket

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"


def customer_tickets() -> CustomerTickets:
    """Return Alice's request #1, Bob's #2 (another customer) and #3 of Carol, Alice's colleague at Acme."""
    return CustomerTickets(
        [
            ticket(1, organisation="acme", updated_at="2025-03-04T10:00:00+00:00"),
            ticket(
                2,
                title="Bob's salary question",
                requester={"email": BOB, "name": "Bob Berg"},
                organisation="other",
                updated_at="2025-03-05T10:00:00+00:00",
                comments=[],
                description="My salary is 40 000.",
            ),
            ticket(
                3,
                title="Acme VPN is down",
                requester={"email": CAROL, "name": "Carol Carlsson"},
                organisation="acme",
                updated_at="2025-03-03T10:00:00+00:00",
            ),
        ]
    )


def a_customer(users: FakeUsers, passwords: Passwords, email: str = ALICE, **fields: Any) -> User:
    """Add a customer with the usual test password (and any other fields, e.g. organisation)."""
    user = add_user(users, passwords, email, PHRASE, "customer", name=fields.pop("name", "Alice Andersson"))
    user = replace(user, **fields)
    users.by_id_[user.id] = user
    return user


def notify_service() -> FakeService:
    """Return notify with `POST /sign-in-links` answering as when the mail server took the mail."""
    notify = FakeService("notify")
    notify.route("POST", "/sign-in-links", {"sent": True})
    return notify


@contextmanager
def customer_client(
    settings: Settings,
    users: FakeUsers,
    tickets: CustomerTickets,
    passwords: Passwords,
    *,
    ingest: FakeIngest | None = None,
    notify: FakeService | None = None,
    links: MemorySignInLinks | None = None,
    limiter: LinkRequestLimiter | None = None,
) -> Iterator[TestClient]:
    """Yield a test client of a portal wired to these fakes."""
    services: dict[str, Any] = {
        **memory_stores(),
        "notify": notify or notify_service(),
        "sign_in_links": links or MemorySignInLinks(),
    }
    if limiter is not None:
        services["sign_in_link_limiter"] = limiter
    app = create_app(
        settings,
        users=users,
        tickets=tickets,
        ingest=ingest or FakeIngest(),
        triggers=FakeTriggers(),
        passwords=passwords,
        services=services,
    )
    try:
        yield TestClient(app, follow_redirects=False)
    finally:
        asyncio.run(app.state.runtime.mongo.close())


def sign_in_customer(client: TestClient, email: str = ALICE) -> None:
    """Sign a customer in with the password and check they land on their requests."""
    response = sign_in(client, email, PHRASE)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/my/tickets"
