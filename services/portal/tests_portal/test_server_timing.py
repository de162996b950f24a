"""The portal tells how long it took to answer (Server-Timing), which the queue-page benchmark reads."""

import re

from fastapi.testclient import TestClient

from .conftest import sign_in

TIMING = re.compile(r"\Aapp;dur=[0-9]+\.[0-9]\Z")


def test_every_answer_carries_the_portals_own_time(client: TestClient) -> None:
    assert sign_in(client).status_code == 303
    answers = [
        client.get("/login?next=/tickets"),
        client.get("/tickets/999999"),
        client.get("/static/portal.css"),
        client.get("/no-such-page"),
    ]
    for answer in answers:
        assert TIMING.match(answer.headers.get("server-timing", "")), (answer.url, answer.headers)


def test_a_signed_out_visitor_sent_to_sign_in_gets_the_timing_too(client: TestClient) -> None:
    answer = client.get("/tickets")
    assert answer.status_code == 303
    assert TIMING.match(answer.headers["server-timing"])
