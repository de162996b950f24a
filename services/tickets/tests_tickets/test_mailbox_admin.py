"""Admins add, change and delete mailboxes through the API; nobody else may (an in-memory store, no Kafka)."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tickets.api import install_error_handlers, router
from tickets.config import Config, default_config
from tickets.domain import Mailbox
from tickets.listcache import Writes

TOKEN = "service-token-for-tests-0123456789"
ADMIN = {"X-Actor-Id": "ada", "X-Actor-Role": "admin"}
AGENT = {"X-Actor-Id": "bo", "X-Actor-Role": "agent", "X-Actor-Groups": "support"}


class MailboxStore:
    """The part of `tickets.store.Store` the mailbox routes use, in a dict."""

    def __init__(self) -> None:
        self.writes = Writes()  # the routes' list cache reads it; these tests list no tickets
        self.docs: dict[str, dict[str, Any]] = {
            "support@localhost": {"address": "support@localhost", "name": "Support", "type": "question", "group": None}
        }

    async def page(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the mailbox routes list no tickets")

    async def list_mailboxes(self) -> list[dict[str, Any]]:
        return [dict(self.docs[k]) for k in sorted(self.docs)]

    async def put_mailbox(self, mailbox: Mailbox) -> None:
        self.docs[mailbox.address] = {
            "address": mailbox.address,
            "name": mailbox.name,
            "type": mailbox.type,
            "group": mailbox.group,
        }

    async def delete_mailbox(self, address: str) -> bool:
        return self.docs.pop(address.lower(), None) is not None


class ConfigOnly:
    """The part of `Handlers` the mailbox routes use: the configuration."""

    async def config(self) -> Config:
        return default_config()


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, MailboxStore]]:
    store = MailboxStore()
    app = FastAPI()
    app.include_router(router(store, ConfigOnly(), TOKEN))  # type: ignore[arg-type]
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tickets") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, store


@pytest.mark.asyncio
async def test_an_admin_adds_a_mailbox_with_a_configured_type_and_a_group(api: Any) -> None:
    client, store = api
    kind = default_config().types[0].key
    body = {"name": "Billing", "type": kind, "group": "billing"}
    response = await client.put("/api/mailboxes/Billing@Example.com", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"address": "billing@example.com", "name": "Billing", "type": kind, "group": "billing"}
    listed = (await client.get("/api/mailboxes", headers=ADMIN)).json()
    assert [m["address"] for m in listed] == ["billing@example.com", "support@localhost"]


@pytest.mark.asyncio
async def test_a_mailbox_with_an_unknown_ticket_type_is_refused_at_the_type(api: Any) -> None:
    client, store = api
    body = {"name": "Billing", "type": "no_such_type"}
    response = await client.put("/api/mailboxes/billing@example.com", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "type"]
    assert "billing@example.com" not in store.docs


@pytest.mark.asyncio
async def test_an_agent_can_neither_change_nor_delete_a_mailbox(api: Any) -> None:
    client, store = api
    kind = default_config().types[0].key
    put = await client.put("/api/mailboxes/support@localhost", json={"name": "Mine", "type": kind}, headers=AGENT)
    delete = await client.delete("/api/mailboxes/support@localhost", headers=AGENT)
    assert put.status_code == delete.status_code == 403
    assert store.docs["support@localhost"]["name"] == "Support"


@pytest.mark.asyncio
async def test_the_last_mailbox_cannot_be_deleted_but_another_can(api: Any) -> None:
    client, store = api
    last = await client.delete("/api/mailboxes/support@localhost", headers=ADMIN)
    assert last.status_code == 409
    assert "last mailbox" in last.json()["detail"]
    kind = default_config().types[0].key
    await client.put("/api/mailboxes/sales@example.com", json={"name": "Sales", "type": kind}, headers=ADMIN)
    deleted = await client.delete("/api/mailboxes/support@localhost", headers=ADMIN)
    assert deleted.status_code == 204
    assert list(store.docs) == ["sales@example.com"]


@pytest.mark.asyncio
async def test_deleting_a_mailbox_that_does_not_exist_is_a_404(api: Any) -> None:
    client, _ = api
    response = await client.delete("/api/mailboxes/nobody@example.com", headers=ADMIN)
    assert response.status_code == 404
