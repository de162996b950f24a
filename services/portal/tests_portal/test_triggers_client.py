import asyncio

import httpx
import pytest
from portal.triggers_client import TriggersClient, TriggersUnavailable

from .fakes import firing_record

TOKEN = "t" * 32


def client_answering(handler, timeout: float = 2.0) -> TriggersClient:  # noqa: ANN001
    return TriggersClient("http://triggers:8003/", TOKEN, timeout=timeout, transport=httpx.MockTransport(handler))


async def test_the_firing_log_of_a_ticket_is_asked_for_with_the_service_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[firing_record(ticket_id="t-9")])

    records = await client_answering(handler).firings("t-9")

    assert seen[0].url.path == "/firings"
    assert dict(seen[0].url.params) == {"ticket_id": "t-9", "limit": "100"}
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert [f.rule_id for f in records[0].firings] == ["email-agent-reply", "agent-reply-waiting-for-customer"]
    assert records[0].firings[0].conditions_met == ["comment.visibility is 'public'"]


async def test_a_record_with_fields_the_portal_does_not_know_is_still_read() -> None:
    record = firing_record(data={"ticket": {}}, firings=[{"rule_id": "notice", "rule_name": "Notice", "new": 1}])

    records = await client_answering(lambda _: httpx.Response(200, json=[record])).firings("t-1")

    assert records[0].firings[0].depth == 0
    assert records[0].firings[0].name == "Notice"


@pytest.mark.parametrize("status", [401, 403, 404, 422, 500, 503])
async def test_a_refused_or_failing_answer_makes_triggers_unavailable(status: int) -> None:
    with pytest.raises(TriggersUnavailable):
        await client_answering(lambda _: httpx.Response(status, json={"detail": "x"})).firings("t-1")


async def test_an_unreadable_body_makes_triggers_unavailable() -> None:
    with pytest.raises(TriggersUnavailable):
        await client_answering(lambda _: httpx.Response(200, json={"not": "a list"})).firings("t-1")


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout])
async def test_an_unreachable_triggers_is_unavailable(error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("no answer", request=request)

    with pytest.raises(TriggersUnavailable):
        await client_answering(handler).firings("t-1")


async def test_a_slow_triggers_is_unavailable_once_the_timeout_has_passed() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=[])

    with pytest.raises(TriggersUnavailable):
        await client_answering(handler, timeout=0.05).firings("t-1")
