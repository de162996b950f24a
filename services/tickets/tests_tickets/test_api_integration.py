"""The tickets API on the real store and Kafka: commands, queue views, counts, access and bad input."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from contracts.commands import UpdateTicket
from contracts.models import Actor
from fastapi import FastAPI
from hdkit.testing import read_envelopes, started_publisher
from tickets.api import install_error_handlers, router
from tickets.handlers import Handlers, Indexer
from tickets.search import SearchIndex
from tickets.store import Store

from contracts import Envelope, topics
from tests_tickets.wiring import SECRET, handlers_on

TOKEN = "service-token-for-tests-0123456789"
ADMIN = {"X-Actor-Id": "ada", "X-Actor-Role": "admin", "X-Actor-Email": "ada@helpdesk.example"}
AGENT = {"X-Actor-Id": "bo", "X-Actor-Role": "agent", "X-Actor-Groups": "support"}
BILLING = {"X-Actor-Id": "cy", "X-Actor-Role": "agent", "X-Actor-Groups": "billing"}
LIGHT = {"X-Actor-Id": "li", "X-Actor-Role": "light_agent", "X-Actor-Groups": "support,billing"}
KUND = {"X-Actor-Id": "kund", "X-Actor-Role": "customer", "X-Actor-Email": "kund@example.se"}
OTHER = {"X-Actor-Id": "annan", "X-Actor-Role": "customer", "X-Actor-Email": "annan@example.se"}


class Api:
    """A client that acts as one person per call."""

    def __init__(self, client: httpx.AsyncClient, store: Store, handlers: Handlers) -> None:
        self.client, self.store, self.handlers = client, store, handlers

    async def call(self, method: str, path: str, who: dict[str, str], **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}", **who}
        return await self.client.request(method, f"/api{path}", headers=headers, **kw)

    async def create(self, who: dict[str, str] = ADMIN, **fields: Any) -> dict[str, Any]:
        body = {"requester": {"email": "kund@example.se", "name": "Kund"}, "fields": {"title": "Trasig", **fields}}
        response = await self.call("POST", "/tickets", who, json=body)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
async def api(infra: Any, mongo: Any) -> AsyncIterator[Api]:
    async with started_publisher(infra.bootstrap) as publisher:
        handlers, store = await handlers_on(mongo, publisher)
        search = SearchIndex(mongo)
        await search.ensure_indexes()
        app = FastAPI()
        app.include_router(router(store, handlers, TOKEN, search=search))
        install_error_handlers(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tickets") as client:
            yield Api(client, store, handlers)


@pytest.mark.asyncio
async def test_the_same_command_sent_twice_changes_the_ticket_once_and_publishes_once(infra: Any, api: Api) -> None:
    body = {"command_id": "create-twice-0001", "requester": {"email": "kund@example.se"}, "fields": {"title": "Två"}}
    first = await api.call("POST", "/tickets", ADMIN, json=body)
    second = await api.call("POST", "/tickets", ADMIN, json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["number"] == second.json()["number"]
    number = first.json()["number"]
    patch = {"command_id": "update-twice-0001", "fields": {"priority": "high"}}
    for _ in range(2):
        response = await api.call("PATCH", f"/tickets/{number}", ADMIN, json=patch)
        assert response.status_code == 200, response.text
    ticket = (await api.call("GET", f"/tickets/{number}", ADMIN)).json()
    assert ticket["version"] == 2 and ticket["priority"] == "high"
    assert sum(1 for a in ticket["activity"] if a["action"] == "field") == 1
    updated = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: e["type"] == "TicketUpdated" and e["key"] == ticket["ticket_id"],
        expect=1,
    )
    assert len(updated) == 1
    assert updated[0]["payload"]["changes"] == [{"field": "priority", "old": "medium", "new": "high"}]


@pytest.mark.asyncio
async def test_a_stale_edit_gets_a_409_naming_the_field_changed_meanwhile(api: Api) -> None:
    ticket = await api.create()
    n = ticket["number"]
    ok = await api.call("PATCH", f"/tickets/{n}", ADMIN, json={"expected_version": 1, "fields": {"priority": "high"}})
    assert ok.status_code == 200
    stale = await api.call("PATCH", f"/tickets/{n}", ADMIN, json={"expected_version": 1, "fields": {"priority": "low"}})
    assert stale.status_code == 409
    assert stale.json()["fields"] == ["priority"] and "changed since version 1" in stale.json()["detail"]
    merged = await api.call("PATCH", f"/tickets/{n}", ADMIN, json={"expected_version": 1, "fields": {"title": "Ny"}})
    assert merged.status_code == 200 and merged.json()["version"] == 3


@pytest.mark.asyncio
async def test_workflow_rules_answer_with_a_clear_error(api: Api) -> None:
    n = (await api.create())["number"]
    refused = await api.call("PATCH", f"/tickets/{n}", ADMIN, json={"fields": {"status": "open"}})
    assert refused.status_code == 409 and "needs a handler" in refused.json()["detail"]
    customer = await api.call("PATCH", f"/tickets/{n}", KUND, json={"fields": {"status": "closed"}})
    assert customer.status_code == 403
    ok = await api.call("PATCH", f"/tickets/{n}", ADMIN, json={"fields": {"status": "open", "handler": "bo"}})
    assert ok.status_code == 200 and ok.json()["status"] == "open"
    reply = await api.call("POST", f"/tickets/{n}/comments", KUND, json={"kind": "customer_comment", "text": "Hej"})
    assert reply.status_code == 200 and reply.json()["status"] == "open"  # triggers' default rule moves it
    assert [c["kind"] for c in reply.json()["comments"]] == ["customer_comment"]


@pytest.mark.asyncio
async def test_every_query_and_command_as_the_wrong_person_is_refused(api: Api) -> None:
    support = await api.create(group="support")
    billing = await api.create(group="billing")
    s, b = support["number"], billing["number"]
    # reading
    assert (await api.call("GET", f"/tickets/{b}", AGENT)).status_code == 404
    assert (await api.call("GET", f"/tickets/{s}", AGENT)).status_code == 200
    assert (await api.call("GET", f"/tickets/{s}", OTHER)).status_code == 404
    assert (await api.call("GET", f"/tickets/{s}", KUND)).status_code == 200
    listed = (await api.call("GET", "/tickets?view=all", AGENT)).json()["items"]
    assert {t["number"] for t in listed} == {s}
    assert (await api.call("GET", "/tickets?view=all", OTHER)).json()["items"] == []
    assert (await api.call("GET", "/tickets?view=unassigned", KUND)).status_code == 403
    assert (await api.call("GET", "/tickets", {"X-Actor-Id": "x", "X-Actor-Role": "root"})).status_code == 403
    star = {"X-Actor-Id": "x", "X-Actor-Role": "agent", "X-Actor-Groups": "*"}
    assert (await api.call("GET", f"/tickets/{b}", star)).status_code == 404
    assert (await api.client.get("/api/tickets", headers=AGENT)).status_code in (401, 403)
    # changing
    for who, method, path, body in (
        (AGENT, "PATCH", f"/tickets/{b}", {"fields": {"priority": "high"}}),
        (BILLING, "PATCH", f"/tickets/{s}", {"fields": {"priority": "high"}}),
        (LIGHT, "PATCH", f"/tickets/{s}", {"fields": {"priority": "high"}}),
        (KUND, "PATCH", f"/tickets/{s}", {"fields": {"title": "mine now"}}),
        (OTHER, "POST", f"/tickets/{s}/comments", {"kind": "customer_comment", "text": "hi"}),
        (LIGHT, "POST", f"/tickets/{s}/comments", {"kind": "public_reply", "text": "hi"}),
        (KUND, "POST", f"/tickets/{s}/comments", {"kind": "internal_comment", "text": "hi"}),
        (KUND, "POST", f"/tickets/{s}/follow", {"follow": True}),
        (KUND, "POST", f"/tickets/{s}/close", {}),
        (AGENT, "POST", f"/tickets/{b}/close", {}),
        (AGENT, "PUT", "/ticket-templates/printer", {"name": "Printer"}),
        (LIGHT, "POST", "/tickets", {"requester": {"email": "a@b.se"}, "fields": {"title": "x"}}),
        (KUND, "POST", "/tickets", {"fields": {"title": "x", "handler": "bo"}}),
    ):
        response = await api.call(method, path, who, json=body)
        assert response.status_code in (403, 404), (who, path, response.status_code, response.text)
    config = (await api.call("GET", "/config", ADMIN)).json()
    assert (await api.call("PUT", "/config", AGENT, json=config)).status_code == 403
    assert (await api.call("GET", "/config", KUND)).status_code == 403
    after = (await api.call("GET", f"/tickets/{s}", ADMIN)).json()
    assert after["version"] == 1 and after["comments"] == []


@pytest.mark.asyncio
async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(api: Api) -> None:
    n = (await api.create())["number"]
    for body in (
        {"fields": {"title": {"$gt": ""}}},
        {"fields": {"status": {"$ne": None}}},
        {"fields": {"$set": {"handler": "bo"}}},
        {"fields": {"custom": {"$where": "sleep(1000)"}}},
        {"fields": {"priority": "high", "nope": 1}},
        {"fields": {"priority": "high"}, "unknown": True},
        {"fields": {"title": "x" * 5000}},
        {"fields": {}},
    ):
        response = await api.call("PATCH", f"/tickets/{n}", ADMIN, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    for query in ("status=%7B%22%24gt%22%3A%22%22%7D", "group=$where", "cursor=bm9wZQ", "limit=100000"):
        response = await api.call("GET", f"/tickets?view=all&{query}", ADMIN)
        assert response.status_code == 422, (query, response.text)
    # a parameter that is not a filter is ignored, never read as an operator
    response = await api.call("GET", "/tickets?view=all&status[$gt]=", ADMIN)
    assert [t["number"] for t in response.json()["items"]] == [n]
    ticket = (await api.call("GET", f"/tickets/{n}", ADMIN)).json()
    assert ticket["version"] == 1 and ticket["priority"] == "medium"


@pytest.mark.asyncio
async def test_views_counts_and_pages_agree_for_an_agent_in_two_groups(api: Api) -> None:
    two = {"X-Actor-Id": "bo", "X-Actor-Role": "agent", "X-Actor-Groups": "support,billing"}
    made = []
    for i in range(13):
        group = ("support", "billing", "sales", None)[i % 4]
        made.append(await api.create(group=group, handler="bo" if i % 3 == 0 else None))
    # stamp identical update times on some, so the keyset cursor must break ties by number
    same = datetime(2026, 11, 1, tzinfo=UTC)
    await api.store.tickets.update_many({"number": {"$lte": made[6]["number"]}}, {"$set": {"updated_at": same}})
    visible = {t["number"] for t in made if t["group"] != "sales"}
    pages, cursor = [], None
    while True:
        response = await api.call(
            "GET", "/tickets?view=all_open&limit=3" + (f"&cursor={cursor}" if cursor else ""), two
        )
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([t["number"] for t in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    numbers = [n for page in pages for n in page]
    assert len(numbers) == len(set(numbers)) and set(numbers) == visible
    expected = sorted(made, key=lambda t: (t["number"] > made[6]["number"], t["number"]), reverse=True)
    assert numbers == [t["number"] for t in expected if t["number"] in visible]
    counts = (await api.call("GET", "/tickets/counts", two)).json()["views"]
    assert counts["all_open"] == len(visible)
    assert counts["mine"] == len([t for t in made if t["handler"] == "bo" and t["number"] in visible])
    assert counts["unassigned"] == len(visible) - counts["mine"]
    assert body["counts"] is None  # only when asked: a queue page takes its tabs' counts with its first page
    with_counts = (await api.call("GET", "/tickets?view=mine&limit=3&counts=true", two)).json()
    assert with_counts["counts"] == counts
    assert [t["number"] for t in with_counts["items"]] == [
        t["number"] for t in expected if t["number"] in visible and t["handler"] == "bo"
    ][:3]
    only_billing = (await api.call("GET", "/tickets?view=all_open&group=billing", two)).json()["items"]
    assert {t["group"] for t in only_billing} == {"billing"}
    assert (await api.call("GET", "/tickets?view=all_open&group=sales", two)).json()["items"] == []


@pytest.mark.asyncio
async def test_each_default_view_holds_the_tickets_it_names(api: Api) -> None:
    def nums(items: list[dict[str, Any]]) -> set[int]:
        return {t["number"] for t in items}

    unassigned = await api.create()
    mine = await api.create(handler="ada", status="open")
    waiting_agent = await api.create(handler="bo", status="waiting_for_agent")
    waiting_customer = await api.create(handler="bo", status="waiting_for_customer")
    dormant = await api.create(handler="bo", status="dormant", dormant_for="2d")
    closed = await api.create(handler="bo", status="closed")
    await api.call(
        "POST", f"/tickets/{waiting_customer['number']}/comments", KUND, json={"kind": "customer_comment", "text": "?"}
    )

    async def view(name: str) -> set[int]:
        response = await api.call("GET", f"/tickets?view={name}", ADMIN)
        assert response.status_code == 200, response.text
        return nums(response.json()["items"])

    assert await view("unassigned") == {unassigned["number"]}
    assert await view("mine") == {mine["number"]}
    assert await view("waiting_for_agent") == {waiting_agent["number"]}
    assert await view("waiting_for_customer") == {waiting_customer["number"]}  # the customer's reply moves no status
    assert await view("dormant") == {dormant["number"]}
    assert closed["number"] not in await view("all_open")
    assert await view("recently_updated_by_customers") == {waiting_customer["number"]}
    assert dormant["wake_at"] is not None
    counts = (await api.call("GET", "/tickets/counts", ADMIN)).json()["views"]
    assert counts["all"] == 6 and counts["all_open"] == 4 and counts["dormant"] == 1


@pytest.mark.asyncio
async def test_a_command_from_kafka_is_carried_out_and_a_refused_one_is_dead_lettered(infra: Any, api: Api) -> None:
    n = (await api.create())["number"]
    ok = UpdateTicket(
        command_id="kafka-cmd-0001", actor=Actor(role="agent", id="bo"), number=n, fields={"priority": "low"}
    )
    bad = UpdateTicket(
        command_id="kafka-cmd-0002", actor=Actor(role="agent", id="bo"), number=n, fields={"status": "open"}
    )
    await api.handlers.command_received(Envelope.wrap(ok, event_id=ok.command_id), ok)
    from hdkit.kafka import Rejected

    with pytest.raises(Rejected, match="needs a handler"):
        await api.handlers.command_received(Envelope.wrap(bad, event_id=bad.command_id), bad)
    ticket = (await api.call("GET", f"/tickets/{n}", ADMIN)).json()
    assert ticket["priority"] == "low" and ticket["status"] == "new"


@pytest.mark.asyncio
async def test_concurrent_commands_on_one_ticket_all_land(api: Api) -> None:
    n = (await api.create())["number"]
    replies = await asyncio.gather(
        *(
            api.call("POST", f"/tickets/{n}/comments", ADMIN, json={"kind": "internal_comment", "text": f"note {i}"})
            for i in range(8)
        )
    )
    assert all(r.status_code == 200 for r in replies)
    ticket = (await api.call("GET", f"/tickets/{n}", ADMIN)).json()
    assert len(ticket["comments"]) == 8 and ticket["version"] == 9


@pytest.mark.asyncio
async def test_configuration_is_edited_through_the_api_with_its_version(api: Api) -> None:
    got = (await api.call("GET", "/config", ADMIN)).json()
    config = got["config"]
    config["categories"] = [{"key": "hardware", "name": "Hardware"}]
    config["types"].append(
        {
            "key": "install",
            "name": "Installation",
            "statuses": [
                {"key": "received", "name": "Received", "category": "new"},
                {"key": "done", "name": "Done", "category": "closed"},
            ],
            "transitions": {"received": ["done"]},
        }
    )
    saved = await api.call("PUT", "/config", ADMIN, json={"version": got["version"], "config": config})
    assert saved.status_code == 200, saved.text
    stale = await api.call("PUT", "/config", ADMIN, json={"version": got["version"], "config": config})
    assert stale.status_code == 409
    broken = dict(config, types=[{**config["types"][0], "statuses": config["types"][0]["statuses"][:1]}])
    assert (await api.call("PUT", "/config", ADMIN, json={"version": 2, "config": broken})).status_code == 422
    ticket = await api.create(type="install", category="hardware")
    assert ticket["status"] == "received" and ticket["category"] == "hardware"
    template = {"name": "Printer", "fields": {"title": "Printer fault", "priority": "high"}}
    assert (await api.call("PUT", "/ticket-templates/printer", ADMIN, json=template)).status_code == 200
    body = {"template": "printer", "requester": {"email": "kund@example.se"}}
    made = await api.call("POST", "/tickets", AGENT, json=body)
    assert made.status_code == 201 and made.json()["title"] == "Printer fault" and made.json()["priority"] == "high"
    assert datetime.fromisoformat(made.json()["created_at"]) > datetime.now(UTC) - timedelta(minutes=1)


@pytest.mark.asyncio
async def test_a_bulk_update_changes_each_ticket_it_may_and_names_the_ones_it_refuses(api: Api) -> None:
    support = [await api.create(group="support") for _ in range(3)]
    billing = await api.create(group="billing")
    numbers = [t["number"] for t in support] + [billing["number"], 999_999]
    body = {"command_id": "bulk-0000-0001", "numbers": numbers, "fields": {"priority": "high", "handler": "bo"}}
    result = (await api.call("POST", "/tickets/bulk", AGENT, json=body)).json()
    assert result["updated"] == [t["number"] for t in support]
    assert set(result["refused"]) == {str(billing["number"]), "999999"}
    again = (await api.call("POST", "/tickets/bulk", AGENT, json=body)).json()
    assert again["updated"] == result["updated"]
    for t in support:
        after = (await api.call("GET", f"/tickets/{t['number']}", ADMIN)).json()
        assert after["priority"] == "high" and after["handler"] == "bo" and after["version"] == 2
    assert (await api.call("GET", f"/tickets/{billing['number']}", ADMIN)).json()["priority"] == "medium"
    refused = await api.call("POST", "/tickets/bulk", KUND, json={**body, "command_id": "bulk-0000-0002"})
    assert refused.json()["updated"] == []


async def deliver_follow_ups(infra: Any, api: Api, match: Any, expect: int) -> list[dict[str, Any]]:
    """Do what the tickets consumer does with the follow-up commands the outbox sent to Kafka."""
    from contracts import REGISTRY

    found = await read_envelopes(infra.bootstrap, topics.TICKET_COMMANDS, match, expect=expect)
    for raw in found:
        envelope = Envelope.model_validate(raw)
        await api.handlers.command_received(envelope, REGISTRY.parse(envelope))
    return found


@pytest.mark.asyncio
async def test_linking_children_and_closing_the_parent_closes_them_through_kafka(infra: Any, api: Api) -> None:
    parent = (await api.create(title="Nätverket nere", handler="bo", status="open"))["number"]
    children = [(await api.create(title=f"Inget nät {i}"))["number"] for i in range(3)]
    run = uuid.uuid4().hex
    for child in children:
        body = {"parent": parent, "command_id": f"{run}-link-{child}"}
        linked = await api.call("POST", f"/tickets/{child}/link", AGENT, json=body)
        assert linked.status_code == 200 and linked.json()["parent"] == parent
    await deliver_follow_ups(
        infra, api, lambda e: e["type"] == "RecordChild" and e["causation_id"].startswith(run), expect=3
    )
    assert sorted((await api.call("GET", f"/tickets/{parent}", ADMIN)).json()["children"]) == children
    # a child cannot become a parent's parent, nor link to itself
    assert (await api.call("POST", f"/tickets/{parent}/link", AGENT, json={"parent": children[0]})).status_code == 409
    assert (await api.call("POST", f"/tickets/{parent}/link", AGENT, json={"parent": parent})).status_code == 422
    assert (await api.call("POST", f"/tickets/{children[0]}/link", KUND, json={"parent": None})).status_code == 403
    closed = await api.call("POST", f"/tickets/{parent}/close", AGENT, json={"command_id": f"{run}-close"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    await deliver_follow_ups(
        infra, api, lambda e: e["type"] == "CloseTicket" and e["causation_id"] == f"{run}-close", expect=3
    )
    for child in children:
        ticket = (await api.call("GET", f"/tickets/{child}", ADMIN)).json()
        assert ticket["status"] == "closed", ticket["activity"]
    events = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: (
            e["type"] == "TicketClosed"
            and e["payload"]["parent"] == parent
            and e["key"] != closed.json()["ticket_id"]
            and e["payload"]["ticket"]["title"].startswith("Inget nät")
        ),
        expect=3,
    )
    assert len(events) == 3


@pytest.mark.asyncio
async def test_unlinking_removes_the_child_from_its_parent(infra: Any, api: Api) -> None:
    parent = (await api.create(title="Huvudärende"))["number"]
    child = (await api.create(title="Underärende"))["number"]
    run = uuid.uuid4().hex
    await api.call("POST", f"/tickets/{child}/link", ADMIN, json={"parent": parent, "command_id": f"{run}-1"})
    await api.call("POST", f"/tickets/{child}/link", ADMIN, json={"parent": None, "command_id": f"{run}-2"})
    await deliver_follow_ups(
        infra, api, lambda e: e["type"] == "RecordChild" and e["causation_id"].startswith(run), expect=2
    )
    assert (await api.call("GET", f"/tickets/{parent}", ADMIN)).json()["children"] == []
    assert (await api.call("GET", f"/tickets/{child}", ADMIN)).json()["parent"] is None


@pytest.mark.asyncio
async def test_an_admin_deletes_a_ticket_only_with_a_fresh_confirmation(infra: Any, api: Api) -> None:
    ticket = await api.create(title="Radera mig")
    n = ticket["number"]
    assert (await api.call("POST", f"/tickets/{n}/delete-confirmation", AGENT)).status_code == 403
    token = (await api.call("POST", f"/tickets/{n}/delete-confirmation", ADMIN)).json()["confirmation"]
    assert (await api.call("DELETE", f"/tickets/{n}?confirmation={token}", AGENT)).status_code == 403
    assert (await api.call("DELETE", f"/tickets/{n}?confirmation=not-a-token-at-all", ADMIN)).status_code == 422
    # the ticket changed after the admin asked: the old confirmation no longer counts
    await api.call("PATCH", f"/tickets/{n}", ADMIN, json={"fields": {"priority": "high"}})
    stale = await api.call("DELETE", f"/tickets/{n}?confirmation={token}", ADMIN)
    assert stale.status_code == 409 and "ask for a new one" in stale.json()["detail"]
    other = (await api.create(title="Annat"))["number"]
    other_token = (await api.call("POST", f"/tickets/{other}/delete-confirmation", ADMIN)).json()["confirmation"]
    assert (await api.call("DELETE", f"/tickets/{n}?confirmation={other_token}", ADMIN)).status_code == 409
    token = (await api.call("POST", f"/tickets/{n}/delete-confirmation", ADMIN)).json()["confirmation"]
    assert (await api.call("DELETE", f"/tickets/{n}?confirmation={token}", ADMIN)).status_code == 204
    assert (await api.call("GET", f"/tickets/{n}", ADMIN)).status_code == 404
    assert await api.store.tickets.count_documents({"_id": ticket["ticket_id"]}) == 0
    assert n not in {t["number"] for t in (await api.call("GET", "/tickets?view=all", ADMIN)).json()["items"]}
    deleted = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: e["type"] == "TicketDeleted" and e["key"] == ticket["ticket_id"],
        expect=1,
    )
    assert deleted[0]["payload"]["number"] == n
    assert (await api.create(title="Ny"))["number"] == other + 1  # numbers are never handed out again


@pytest.mark.asyncio
async def test_a_deleted_ticket_left_behind_by_a_crash_is_removed_once_its_event_is_out(api: Api) -> None:
    await api.store.tickets.insert_many(
        [
            {"_id": "gone", "number": 900, "phase": "deleted", "outbox": {}},
            {"_id": "pending", "number": 901, "phase": "deleted", "outbox": {"e1": {"topic": "t", "envelope": {}}}},
        ]
    )
    assert await api.store.purge_deleted() == 1
    assert [d["_id"] async for d in api.store.tickets.find({"phase": "deleted"})] == ["pending"]


@pytest.mark.asyncio
async def test_merging_moves_the_conversation_and_later_commands_go_to_the_survivor(infra: Any, api: Api) -> None:
    source = (await api.create(title="Skrivaren igen"))["number"]
    survivor = (await api.create(title="Skrivaren"))["number"]
    await api.call(
        "POST", f"/tickets/{source}/comments", KUND, json={"kind": "customer_comment", "text": "Fortfarande"}
    )
    assert (await api.call("POST", f"/tickets/{source}/merge", KUND, json={"into": survivor})).status_code == 403
    assert (await api.call("POST", f"/tickets/{source}/merge", ADMIN, json={"into": source})).status_code == 422
    run = uuid.uuid4().hex
    merged = await api.call("POST", f"/tickets/{source}/merge", ADMIN, json={"into": survivor, "command_id": run})
    assert merged.status_code == 200, merged.text
    assert merged.json()["status"] == "closed" and merged.json()["merged_into"] == survivor
    await deliver_follow_ups(infra, api, lambda e: e["type"] == "AbsorbTicket" and e["causation_id"] == run, expect=1)
    after = (await api.call("GET", f"/tickets/{survivor}", ADMIN)).json()
    assert [c["text"] for c in after["comments"]] == ["Fortfarande"]
    assert after["comments"][0]["merged_from"] == source
    # a later comment and a later merge aimed at the merged ticket land on the survivor
    late = await api.call(
        "POST", f"/tickets/{source}/comments", ADMIN, json={"kind": "internal_comment", "text": "Sen"}
    )
    assert late.status_code == 200 and late.json()["number"] == survivor
    again = await api.call("POST", f"/tickets/{source}/merge", ADMIN, json={"into": survivor})
    assert again.status_code == 409 and "already merged" in again.json()["detail"]
    merged_events = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: e["type"] == "TicketMerged" and e["causation_id"] == run,
        expect=1,
    )
    assert merged_events[0]["payload"]["into"] == survivor


@pytest.mark.asyncio
async def test_splitting_starts_a_new_ticket_from_chosen_comments_once(api: Api) -> None:
    source = (await api.create(title="Två problem", group="support"))["number"]
    await api.call("POST", f"/tickets/{source}/comments", KUND, json={"kind": "customer_comment", "text": "Skrivaren"})
    after = await api.call(
        "POST", f"/tickets/{source}/comments", KUND, json={"kind": "customer_comment", "text": "Wifi"}
    )
    wifi = after.json()["comments"][1]["comment_id"]
    body = {"command_id": "split-0000-0001", "comment_ids": [wifi], "title": "Wifi"}
    assert (await api.call("POST", f"/tickets/{source}/split", KUND, json=body)).status_code == 403
    wrong = {**body, "command_id": "split-0000-0002", "comment_ids": ["nope"]}
    bad = await api.call("POST", f"/tickets/{source}/split", ADMIN, json=wrong)
    assert bad.status_code == 422 and "nope" in bad.json()["detail"]
    made = await api.call("POST", f"/tickets/{source}/split", AGENT, json=body)
    again = await api.call("POST", f"/tickets/{source}/split", AGENT, json=body)
    assert made.status_code == again.status_code == 201
    new = made.json()
    assert again.json()["number"] == new["number"] != source
    assert new["title"] == "Wifi" and [c["text"] for c in new["comments"]] == ["Wifi"]
    assert new["requester"]["email"] == "kund@example.se" and new["group"] == "support"
    old = (await api.call("GET", f"/tickets/{source}", ADMIN)).json()
    assert sum(1 for a in old["activity"] if a["action"] == "split") == 1


@pytest.mark.asyncio
async def test_search_finds_words_from_title_contact_and_conversation_only_for_those_who_may_see(api: Api) -> None:
    from contracts.events import Comment
    from tickets.domain import snapshot

    from contracts import CommentAdded, TicketCreated

    indexer = Indexer(api.store, SearchIndex(api.store.db))
    printer = await api.create(title="Skrivaren på plan 3", group="support")
    invoice = await api.create(title="Faktura", group="billing")
    for t in (printer, invoice):
        doc = await api.store.get(t["ticket_id"])
        await indexer.ticket_created(None, TicketCreated(ticket=snapshot(doc), actor=Actor(role="system")))  # type: ignore[arg-type]
    replied = await api.call(
        "POST",
        f"/tickets/{invoice['number']}/comments",
        KUND,
        json={"kind": "customer_comment", "text": "Beloppet är fel på fakturan"},
    )
    comment = Comment.model_validate({k: v for k, v in replied.json()["comments"][-1].items() if k != "kind"})
    doc = await api.store.get(invoice["ticket_id"])
    await indexer.comment_added(None, CommentAdded(ticket=snapshot(doc), comment=comment, author_role="customer"))  # type: ignore[arg-type]

    async def found(q: str, who: dict[str, str]) -> list[int]:
        response = await api.call("GET", f"/tickets/search?q={q}", who)
        assert response.status_code == 200, response.text
        return [t["number"] for t in response.json()["items"]]

    assert await found("skrivaren", ADMIN) == [printer["number"]]
    assert await found("beloppet fakturan", ADMIN) == [invoice["number"]]
    assert await found("kund@example.se", ADMIN) == [invoice["number"], printer["number"]]
    assert await found("beloppet", AGENT) == []  # billing is not the agent's group
    assert await found("skrivaren", OTHER) == []  # another customer's ticket
    assert await found("skrivaren", KUND) == [printer["number"]]
    for hostile in ("%7B%22%24gt%22%3A%22%22%7D", "%24where", "a"):
        assert (await api.call("GET", f"/tickets/search?q={hostile}", ADMIN)).json()["items"] == []
    assert (await api.call("GET", "/tickets/search?q=" + "x" * 1001, ADMIN)).status_code == 422


async def bounced(api: Api, address: str) -> None:
    """Mark an address undeliverable as a permanent bounce report does."""
    problem = {"since": datetime(2026, 3, 2, 9, 15, tzinfo=UTC), "status": "5.1.1", "diagnostic": "550 user unknown"}
    assert await api.store.mark_undeliverable(address, problem, event_id=f"dsn-{address}", outbox=[])


@pytest.mark.asyncio
async def test_an_agent_sees_why_an_address_gets_no_mail_and_lifts_the_mark_once(infra: Any, api: Api) -> None:
    address = "studsar@example.se"
    await bounced(api, address)

    shown = await api.call("GET", "/contacts/Studsar@Example.se", AGENT)
    assert shown.status_code == 200, shown.text
    assert shown.json()["email"] == address
    assert shown.json()["undeliverable"] == {
        "since": "2026-03-02T09:15:00Z",
        "status": "5.1.1",
        "diagnostic": "550 user unknown",
    }

    lifted = await api.call("POST", f"/contacts/{address}/deliverable", AGENT)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["undeliverable"] is None and lifted.json()["lifted"]["by"]["id"] == "bo"
    assert (await api.call("GET", f"/contacts/{address}", AGENT)).json()["undeliverable"] is None

    again = await api.call("POST", f"/contacts/{address}/deliverable", ADMIN)
    assert again.status_code == 409 and "not marked undeliverable" in again.json()["detail"]
    events = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: e["type"] == "AddressDeliverable" and e["key"] == address,
        expect=1,
    )
    assert len(events) == 1 and events[0]["payload"]["actor"]["id"] == "bo"


@pytest.mark.asyncio
async def test_contacts_are_for_agents_and_an_unknown_one_is_not_found(api: Api) -> None:
    address = "kontakt@example.se"
    await bounced(api, address)
    for who in (KUND, OTHER):
        assert (await api.call("GET", f"/contacts/{address}", who)).status_code == 403
        assert (await api.call("POST", f"/contacts/{address}/deliverable", who)).status_code == 403
    assert (await api.call("POST", f"/contacts/{address}/deliverable", LIGHT)).status_code == 403
    assert (await api.call("GET", "/contacts/nobody@example.se", ADMIN)).status_code == 404
    assert (await api.call("POST", "/contacts/nobody@example.se/deliverable", ADMIN)).status_code == 404
    still = (await api.call("GET", f"/contacts/{address}", ADMIN)).json()
    assert still["undeliverable"]["status"] == "5.1.1"


def emailed(message_id: str, sender: str, files: list[str], **fields: Any) -> tuple[Envelope, Any]:
    from contracts.models import Address, Attachment

    from contracts import EmailReceived, derived_id

    event = EmailReceived(
        mailbox="support@localhost",
        message_id=message_id,
        subject="Skrivaren",
        sender=Address(email=sender),
        received_at=datetime.now(UTC),
        text="Se bifogat",
        raw_id=message_id,
        size=10,
        attachments=tuple(
            Attachment(attachment_id=f"{message_id}:a{n}", filename=name, content_type="application/pdf", size=3)
            for n, name in enumerate(files)
        ),
        **fields,
    )
    return Envelope.wrap(event, event_id=derived_id("email", message_id)), event


@pytest.mark.asyncio
async def test_a_customer_sees_only_the_files_of_public_messages_agents_see_all(api: Api) -> None:
    from contracts.message_ids import make_message_id
    from hdkit.staff import StaffDirectory

    staff = StaffDirectory("http://127.0.0.1:1", "token", refresh_seconds=3600)
    staff.set([{"id": "li", "email": "li@helpdesk.example", "name": "Li", "role": "light_agent"}])
    api.handlers._staff = staff
    await api.handlers.email_received(*emailed("files-1@example.se", "kund@example.se", ["faktura.pdf"]))
    ticket = await api.store.tickets.find_one({"source_message_id": "files-1@example.se"})
    ours = make_message_id(ticket_id=ticket["_id"], token="n1", secret=SECRET, domain="helpdesk.localhost")
    note = emailed("files-2@helpdesk.example", "li@helpdesk.example", ["intern.pdf"], in_reply_to=(ours,))
    await api.handlers.email_received(*note)
    number = ticket["number"]

    agent_view = (await api.call("GET", f"/tickets/{number}", ADMIN)).json()
    customer_view = (await api.call("GET", f"/tickets/{number}", KUND)).json()
    link_view = (await api.call("GET", f"/ticket-links/{ticket['link_token']}", {})).json()

    assert sorted(a["filename"] for a in agent_view["attachments"]) == ["faktura.pdf", "intern.pdf"]
    assert [a["filename"] for a in customer_view["attachments"]] == ["faktura.pdf"]
    assert [a["filename"] for a in link_view["attachments"]] == ["faktura.pdf"]


@pytest.mark.asyncio
async def test_a_rules_command_from_kafka_reopens_a_closed_ticket_and_its_events_name_the_rule(
    infra: Any, api: Api
) -> None:
    from contracts.models import Automation

    ticket = await api.create(handler="bo", status="closed")
    rule = Automation(rule_id="r-reopen", rule_name="Customer wrote again → reopen", depth=1, cause="event-x")
    reopen = UpdateTicket(
        command_id="kafka-rule-0001",
        actor=Actor(role="system", name="triggers"),
        number=ticket["number"],
        fields={"status_category": "open"},
        automation=rule,
    )
    await api.handlers.command_received(Envelope.wrap(reopen, event_id=reopen.command_id), reopen)
    after = (await api.call("GET", f"/tickets/{ticket['number']}", ADMIN)).json()
    assert after["status"] == "open" and after["closed_at"] is None
    logged = [a["detail"] for a in after["activity"] if a["action"] == "field"]
    assert "status: closed → open by rule 'Customer wrote again → reopen'" in logged
    (updated,) = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: e["type"] == "TicketUpdated" and e["key"] == ticket["ticket_id"],
        expect=1,
    )
    assert updated["payload"]["automation"] == rule.model_dump(mode="json")
    assert updated["payload"]["ticket"]["status_category"] == "open"


@pytest.mark.asyncio
async def test_the_notify_mode_is_set_through_the_api_and_shown_but_sla_is_the_systems(api: Api) -> None:
    ticket = await api.create(notify_mode="link")
    assert ticket["notify_mode"] == "link"
    n = ticket["number"]
    changed = await api.call("PATCH", f"/tickets/{n}", AGENT, json={"fields": {"notify_mode": "never"}})
    assert changed.status_code == 200 and changed.json()["notify_mode"] == "never"
    bad = await api.call("PATCH", f"/tickets/{n}", AGENT, json={"fields": {"notify_mode": "fax"}})
    assert bad.status_code == 422 and bad.json()["fields"] == ["notify_mode"]
    sla = {"first_response_due": "2026-11-24T09:00:00+00:00", "resolution_due": None}
    refused = await api.call("PATCH", f"/tickets/{n}", ADMIN, json={"fields": {"sla": sla}})
    assert refused.status_code == 403 and refused.json()["fields"] == ["sla"]
    system = {"X-Actor-Id": "triggers", "X-Actor-Role": "system"}
    written = await api.call("PATCH", f"/tickets/{n}", system, json={"fields": {"sla": sla}})
    assert written.status_code == 200, written.text
    assert datetime.fromisoformat(written.json()["sla"]["first_response_due"]) == datetime(2026, 11, 24, 9, tzinfo=UTC)


@pytest.mark.asyncio
async def test_an_agents_comment_names_the_staff_it_mentions_on_its_event(infra: Any, api: Api) -> None:
    from hdkit.staff import StaffDirectory

    staff = StaffDirectory("http://127.0.0.1:1", "token", refresh_seconds=3600)
    staff.set(
        [
            {"id": "bo", "email": "bo@helpdesk.example", "name": "Bo", "role": "agent", "groups": ["support"]},
            {"id": "u-li", "email": "li.lind@helpdesk.example", "name": "Li", "role": "light_agent"},
            {"id": "u-ada", "email": "ada@helpdesk.example", "name": "Ada", "role": "admin"},
        ]
    )
    api.handlers._staff = staff
    ticket = await api.create()
    text = "@Li.Lind kan du kolla? Och @u-ada, @bo (jag själv) och @okänd. Skriv till kund@example.se"
    body = {"kind": "internal_comment", "text": text}
    response = await api.call("POST", f"/tickets/{ticket['number']}/comments", AGENT, json=body)
    assert response.status_code == 200, response.text
    (added,) = await read_envelopes(
        infra.bootstrap,
        topics.TICKET_EVENTS,
        lambda e: e["type"] == "CommentAdded" and e["key"] == ticket["ticket_id"],
        expect=1,
    )
    assert added["payload"]["mentions"] == ["u-li", "u-ada"]


@pytest.mark.asyncio
async def test_a_rules_change_a_person_overtook_is_left_out_without_a_dead_letter(infra: Any, api: Api) -> None:
    from contracts.models import Automation
    from hdkit.kafka import Rejected

    ticket = await api.create(handler="bo", status="open")
    seen = ticket["version"]
    person = UpdateTicket(
        command_id="person-0001",
        actor=Actor(role="agent", id="bo"),
        number=ticket["number"],
        fields={"status": "resolved"},
    )
    await api.handlers.command_received(Envelope.wrap(person, event_id=person.command_id), person)
    rule = Automation(rule_id="r-wait", rule_name="Agent reply → Waiting for customer", depth=1, cause="event-y")
    stale = UpdateTicket(
        command_id="rule-0001",
        actor=Actor(role="system", name="triggers"),
        number=ticket["number"],
        expected_version=seen,
        fields={"status_category": "waiting_for_customer"},
        automation=rule,
    )

    await api.handlers.command_received(Envelope.wrap(stale, event_id=stale.command_id), stale)  # no Rejected

    after = (await api.call("GET", f"/tickets/{ticket['number']}", ADMIN)).json()
    assert after["status"] == "resolved"  # the person's change wins
    same_but_a_person = stale.model_copy(update={"command_id": "person-0002", "automation": None})
    with pytest.raises(Rejected, match="VersionConflict"):
        await api.handlers.command_received(Envelope.wrap(same_but_a_person, event_id="person-0002"), same_but_a_person)
