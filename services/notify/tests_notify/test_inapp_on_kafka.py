"""The notify process on the real Kafka and store: an assignment on the tickets topic reaches the handler in-app."""

import asyncio
import time
import uuid
from typing import Any

import httpx
from hdkit.testing import started_publisher
from notify.app import create_app
from notify.settings import Settings

from contracts import Envelope, topics
from tests_notify.builders import DOMAIN, SECRET, ticket_assigned
from tests_notify.conftest import AUTH, TOKEN
from tests_notify.fakes import FakeMailServer


async def test_an_assignment_published_on_kafka_shows_in_the_handlers_in_app_list(infra: Any, mongo: Any) -> None:
    settings = Settings(
        service_token=TOKEN,
        message_id_secret=SECRET,
        mail_domain=DOMAIN,
        kafka_bootstrap=infra.bootstrap,
        mongo_url=infra.mongo_url,
        mongo_db=mongo.name,  # the fixture's own database, dropped after the test
    )
    app = create_app(settings, sender=FakeMailServer())
    user = f"u-{uuid.uuid4().hex[:8]}"
    event = ticket_assigned(handler=user)
    envelope = Envelope.wrap(event, key=event.ticket.ticket_id)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify") as client,
    ):
        async with started_publisher(infra.bootstrap) as publisher:
            await publisher.publish(topics.TICKET_EVENTS, envelope)
            await publisher.publish(topics.TICKET_EVENTS, envelope)  # delivered twice: stored once
        deadline = time.monotonic() + 60
        listed: dict[str, Any] = {"items": []}
        while time.monotonic() < deadline and not listed["items"]:
            await asyncio.sleep(0.25)
            listed = (await client.get("/inapp", params={"user_id": user}, headers=AUTH)).json()
        await asyncio.sleep(1.0)  # time for the second copy to be handled too
        listed = (await client.get("/inapp", params={"user_id": user}, headers=AUTH)).json()

    assert [i["text"] for i in listed["items"]] == ["#1001 assigned to you by Cia Carlsson"]
    assert listed["unread"] == 1
