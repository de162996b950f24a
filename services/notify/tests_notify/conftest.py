"""What the notify tests share: the fakes as fixtures, and handlers on them."""

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from hdkit.mongo import OutboxRelay
from notify.app import create_app
from notify.handlers import Handlers, MailIdentity
from notify.settings import Settings
from prometheus_client import CollectorRegistry

from tests_notify.builders import DOMAIN, SECRET, envelope_of
from tests_notify.fakes import FakeMailServer, FakePublisher, FakeStore


class Naps:
    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def publisher():
    return FakePublisher()


@pytest.fixture
def smtp():
    return FakeMailServer()


@pytest.fixture
def metrics():
    return CollectorRegistry()


@pytest.fixture
def naps():
    return Naps()


def make_handlers(store, publisher, smtp, metrics, naps, identity=None, **options):
    return Handlers(
        store,
        OutboxRelay(store.collection, publisher),
        smtp,
        identity=identity or MailIdentity(message_id_secret=SECRET, mail_domain=DOMAIN, mailbox_names={}),
        metrics=metrics,
        sleep=naps,
        **options,
    )


@pytest.fixture
def handlers(store, publisher, smtp, metrics, naps):
    return make_handlers(store, publisher, smtp, metrics, naps)


async def handle(handlers, command):
    await handlers.send_notification(envelope_of(command), command)


TOKEN = "test-service-token-0123456789"  # noqa: S105 (a token for tests only)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app(store, smtp):
    settings = Settings(
        service_token=TOKEN,
        message_id_secret=SECRET,
        mail_domain=DOMAIN,
        mongo_url="mongodb://127.0.0.1:1/",
    )
    return create_app(settings, store=store, sender=smtp)


@pytest.fixture
async def client(app):
    async with (
        TestKafkaBroker(app.state.runtime.broker),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify") as c,
    ):
        yield c
