import json

import httpx
import pytest
from portal.domain import Actor
from portal.tickets_client import CommandRefused, TicketNotFound, TicketsClient, TicketsUnavailable

from .fakes import ticket

ACTOR = Actor(id="u-1", role="agent", email="bea@localhost", groups=("first-line", "billing"))


def client_answering(handler) -> TicketsClient:  # noqa: ANN001
    return TicketsClient("http://tickets:8002/", "t" * 32, transport=httpx.MockTransport(handler))


async def test_every_call_carries_the_service_token_and_who_is_acting() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [ticket(1)], "next_cursor": None})

    page = await client_answering(handler).list_tickets(ACTOR, "unassigned", cursor="c1")

    request = seen[0]
    assert request.url.path == "/api/tickets"
    assert dict(request.url.params) == {"view": "unassigned", "limit": "50", "cursor": "c1"}
    assert request.headers["authorization"] == "Bearer " + "t" * 32
    assert request.headers["x-actor-id"] == "u-1"
    assert request.headers["x-actor-role"] == "agent"
    assert request.headers["x-actor-email"] == "bea@localhost"
    assert request.headers["x-actor-groups"] == "first-line,billing"
    assert [t.number for t in page.items] == [1]


async def test_counts_are_read_per_view() -> None:
    views = {
        "unassigned": 1,
        "mine": 0,
        "waiting_for_agent": 0,
        "waiting_for_customer": 0,
        "all_open": 1,
        "all": 1,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/tickets/counts"
        return httpx.Response(200, json={"views": views})

    assert await client_answering(handler).counts(ACTOR) == views


async def test_a_page_asked_with_its_counts_brings_every_view_s_count_in_the_same_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "next_cursor": None, "counts": {"mine": 3, "all_open": 7}})

    page = await client_answering(handler).list_tickets(ACTOR, "mine", with_counts=True)

    assert [(r.url.path, r.url.params.get("counts")) for r in seen] == [("/api/tickets", "true")]
    assert page.counts == {"mine": 3, "all_open": 7}


async def test_a_read_cut_off_once_is_asked_again_and_twice_is_unavailable() -> None:
    calls: list[str] = []

    def cut_once(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ReadError("connection reset by peer", request=request)
        return httpx.Response(200, json={"items": [ticket(1)], "next_cursor": None})

    page = await client_answering(cut_once).list_tickets(ACTOR, "mine")
    assert [t.number for t in page.items] == [1] and calls == ["/api/tickets", "/api/tickets"]

    def always_cut(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server disconnected", request=request)

    with pytest.raises(TicketsUnavailable):
        await client_answering(always_cut).list_tickets(ACTOR, "mine")


async def test_a_ticket_is_read_with_its_conversation() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/tickets/1"
        return httpx.Response(200, json=ticket(1, new_field="ignored"))

    detail = await client_answering(handler).get_ticket(ACTOR, 1)

    assert detail.comments[0].visibility == "public"
    assert detail.activity[0].action == "ticket_created"


async def test_a_404_means_the_ticket_is_missing_or_not_visible() -> None:
    client = client_answering(lambda request: httpx.Response(404, json={"detail": "not found"}))
    with pytest.raises(TicketNotFound):
        await client.get_ticket(ACTOR, 7)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(401, json={"detail": "bad token"}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"items": "nope"}),
    ],
)
async def test_errors_and_unreadable_answers_mean_the_service_is_unavailable(answer: httpx.Response) -> None:
    client = client_answering(lambda request: answer)
    with pytest.raises(TicketsUnavailable):
        await client.list_tickets(ACTOR, "all")


async def test_a_refused_connection_means_the_service_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TicketsUnavailable):
        await client_answering(handler).counts(ACTOR)


async def test_an_unknown_view_is_never_sent() -> None:
    client = client_answering(lambda request: httpx.Response(200, json={"items": []}))
    with pytest.raises(ValueError, match="unknown view"):
        await client.list_tickets(ACTOR, "everything")


async def test_assigning_patches_the_handler_with_the_command_id_and_version_as_the_actor() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ticket(3))

    await client_answering(handler).update_ticket(
        ACTOR, 3, {"handler": "u-1"}, command_id="cmd-00000001", expected_version=4
    )

    [request] = seen
    assert (request.method, request.url.path) == ("PATCH", "/api/tickets/3")
    assert json.loads(request.content) == {
        "command_id": "cmd-00000001",
        "fields": {"handler": "u-1"},
        "expected_version": 4,
    }
    assert request.headers["x-actor-id"] == "u-1"
    assert request.headers["authorization"] == "Bearer " + "t" * 32


async def test_a_comment_is_posted_with_kind_text_channel_and_command_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"not": "a ticket"})  # the answer is not read: the page reads afresh

    customer = Actor.requester("Alice@Example.com", "Alice Andersson")
    await client_answering(handler).add_comment(
        customer, 1, kind="customer_comment", text="Still jammed", command_id="cmd-00000002", channel="portal"
    )

    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/api/tickets/1/comments")
    assert json.loads(request.content) == {
        "command_id": "cmd-00000002",
        "kind": "customer_comment",
        "text": "Still jammed",
        "channel": "portal",
    }
    assert request.headers["x-actor-role"] == "customer"
    assert request.headers["x-actor-email"] == "alice@example.com"
    assert request.headers["x-actor-id"] == "alice@example.com"
    assert request.headers["x-actor-name"] == "Alice Andersson"


async def test_a_name_that_does_not_fit_in_a_header_is_left_out() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"views": {}})

    await client_answering(handler).counts(Actor(id="u-2", role="agent", email="asa@localhost", name="Åsa Öberg"))

    assert "x-actor-name" not in seen[0].headers


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        (
            httpx.Response(409, json={"detail": "handler changed since version 3", "fields": ["handler"]}),
            409,
            "handler changed since version 3",
        ),
        (httpx.Response(403, json={"detail": "a light agent cannot add a public reply"}), 403, "a light agent"),
        (
            httpx.Response(422, json={"detail": [{"loc": ["body", "text"], "msg": "String too short"}]}),
            422,
            "text: String too short",
        ),
        (httpx.Response(422, text="not json"), 422, "the tickets service refused this (HTTP 422)"),
        (httpx.Response(409, json={"detail": "x" * 2000}), 409, "x" * 400),
    ],
)
async def test_a_refused_command_raises_with_the_services_words(
    answer: httpx.Response, status: int, message: str
) -> None:
    client = client_answering(lambda request: answer)

    with pytest.raises(CommandRefused) as refused:
        await client.add_comment(ACTOR, 1, kind="public_reply", text="Hi", command_id="cmd-00000003")

    assert refused.value.status == status
    assert message in refused.value.message
    assert len(refused.value.message) <= 500


async def test_a_404_on_a_command_means_the_ticket_is_missing_or_not_visible() -> None:
    client = client_answering(lambda request: httpx.Response(404, json={"detail": "ticket #9 not found"}))

    with pytest.raises(TicketNotFound):
        await client.update_ticket(ACTOR, 9, {"handler": "u-1"}, command_id="cmd-00000004")


@pytest.mark.parametrize("status", [500, 503, 401])
async def test_a_failing_or_unauthorised_command_means_the_service_is_unavailable(status: int) -> None:
    client = client_answering(lambda request: httpx.Response(status, json={"detail": "no"}))

    with pytest.raises(TicketsUnavailable):
        await client.add_comment(ACTOR, 1, kind="public_reply", text="Hi", command_id="cmd-00000005")


async def test_a_command_that_cannot_reach_the_service_means_it_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(TicketsUnavailable):
        await client_answering(handler).update_ticket(ACTOR, 1, {"handler": "u-1"}, command_id="cmd-00000006")
