import httpx
import pytest
from portal.domain import Actor
from portal.tickets_client import TicketNotFound, TicketsClient, TicketsUnavailable

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
