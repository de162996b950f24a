"""What the notify tests share: the fakes as fixtures, and handlers on them."""

import pytest
from hdkit.mongo import OutboxRelay
from notify.handlers import Handlers, MailIdentity
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


def make_handlers(store, publisher, smtp, metrics, naps, **options):
    return Handlers(
        store,
        OutboxRelay(store.collection, publisher),
        smtp,
        identity=MailIdentity(message_id_secret=SECRET, mail_domain=DOMAIN, mailbox_names={}),
        metrics=metrics,
        sleep=naps,
        **options,
    )


@pytest.fixture
def handlers(store, publisher, smtp, metrics, naps):
    return make_handlers(store, publisher, smtp, metrics, naps)


async def handle(handlers, command):
    await handlers.send_notification(envelope_of(command), command)
