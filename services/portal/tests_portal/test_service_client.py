import asyncio
import json
from typing import Any

import httpx
import pytest
from portal.service_client import ServiceClient, ServiceNotFound, ServiceRefused, ServiceUnavailable


def client_answering(status: int, body: Any = None, seen: list[httpx.Request] | None = None) -> ServiceClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        content = b"" if body is None else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    return ServiceClient("notify", "http://notify.test/", "t" * 32, transport=httpx.MockTransport(handler))


def call(client: ServiceClient, method: str = "GET", path: str = "/settings", **kwargs: Any) -> Any:
    return asyncio.run(client.call(method, path, **kwargs))


def test_a_call_sends_the_service_token_and_the_body_and_returns_the_json() -> None:
    seen: list[httpx.Request] = []
    answer = call(client_answering(200, {"notify_mode": "link"}, seen), "PUT", json={"notify_mode": "link"})

    assert answer == {"notify_mode": "link"}
    assert seen[0].headers["authorization"] == "Bearer " + "t" * 32
    assert seen[0].url == "http://notify.test/settings"
    assert json.loads(seen[0].content) == {"notify_mode": "link"}


def test_an_empty_answer_is_none() -> None:
    assert call(client_answering(204), "DELETE", "/signatures/x") is None


def test_a_validation_error_is_refused_with_where_and_what() -> None:
    body = {"detail": [{"loc": ["body", "conditions", 0, "op"], "msg": "Input should be 'is'"}]}

    with pytest.raises(ServiceRefused) as refused:
        call(client_answering(422, body), "PUT", "/rules/x")

    assert refused.value.status == 422
    assert refused.value.locations == [("conditions.0.op", "Input should be 'is'")]
    assert "conditions.0.op: Input should be 'is'" in refused.value.message


def test_a_conflict_keeps_the_services_reason() -> None:
    with pytest.raises(ServiceRefused) as refused:
        call(client_answering(409, {"detail": "the configuration changed since version 3"}), "PUT", "/api/config")

    assert refused.value.status == 409
    assert refused.value.message == "the configuration changed since version 3"


def test_a_404_is_not_found() -> None:
    with pytest.raises(ServiceNotFound):
        call(client_answering(404, {"detail": "no such rule"}))


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, None), (502, {"detail": "bad gateway"}), (401, {"detail": "invalid token"}), (403, {"detail": "bad token"})],
)
def test_server_errors_and_a_refused_token_are_unavailable(status: int, body: Any) -> None:
    with pytest.raises(ServiceUnavailable) as down:
        call(client_answering(status, body))

    assert down.value.service == "notify"


def test_a_403_about_the_acting_user_is_a_refusal_not_an_outage() -> None:
    with pytest.raises(ServiceRefused) as refused:
        call(client_answering(403, {"detail": "for admins only"}))

    assert refused.value.status == 403


def test_an_unreachable_service_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = ServiceClient("triggers", "http://triggers.test", "t" * 32, transport=httpx.MockTransport(handler))

    with pytest.raises(ServiceUnavailable):
        call(client)


def test_an_answer_that_is_not_json_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>proxy error</html>")

    client = ServiceClient("notify", "http://notify.test", "t" * 32, transport=httpx.MockTransport(handler))

    with pytest.raises(ServiceUnavailable):
        call(client)
