"""What the handler tests share: the default rules in a fake store, a fake publisher, handlers on them."""

from typing import Any

import pytest
from hdkit.mongo import OutboxRelay
from prometheus_client import CollectorRegistry
from triggers.domain import default_rules
from triggers.handlers import Handlers, RuleCache

from tests_triggers.fakes import FakePublisher, FakeTriggerStore


@pytest.fixture
def store():
    return FakeTriggerStore(default_rules())


@pytest.fixture
def publisher():
    return FakePublisher()


def make_handlers(store: FakeTriggerStore, publisher: FakePublisher, **options: Any) -> Handlers:
    """Return handlers on the fakes, with the default rules cached for 5 s (`clock` from options if given)."""
    clock = options.pop("clock", None)
    return Handlers(
        store,  # type: ignore[arg-type]
        OutboxRelay(store.collection, publisher),  # type: ignore[arg-type]
        public_url="https://help.example.com/",
        default_mailbox="support@localhost",
        metrics=CollectorRegistry(),
        rules=RuleCache(store, ttl=5, **({"clock": clock} if clock else {})),  # type: ignore[arg-type]
        **options,
    )
