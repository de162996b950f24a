"""Session fixtures shared by every test folder: the real Kafka and MongoDB-wire store, started once.

Where a Docker engine answers and HELPDESK_TEST_INFRA=containers, testcontainers starts them instead;
everywhere else the project's own launcher (infra/stack.py) runs them as plain processes.
"""

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "infra"))

import stack  # noqa: E402

from contracts import topics  # noqa: E402


@dataclass(frozen=True)
class Infra:
    """Where the session's Kafka and store are."""

    bootstrap: str
    mongo_url: str
    store_backend: str = "mongod"  # or "ferretdb" (the launcher, with its own index contract)


def _containers() -> Iterator[Infra]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka, MongoDbContainer("mongo:8") as mongo:
        yield Infra(kafka.get_bootstrap_server(), mongo.get_connection_url())


def _processes(tmp: Path) -> Iterator[Infra]:
    kafka = stack.KafkaServer(stack.free_port(), stack.free_port(), tmp / "kafka", libs=stack.ensure_kafka(stack.CACHE))
    store = stack.StoreServer(stack.free_port(), tmp / "store", command=stack.ensure_store(stack.CACHE))
    kafka.start()
    store.start()
    try:
        store.wait_ready()
        kafka.wait_ready()
        yield Infra(kafka.bootstrap, store.url, store.backend)
    finally:
        kafka.stop()
        store.stop()


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Real Kafka and a real MongoDB-wire store for integration tests, with the helpdesk's topics."""
    source = (
        _containers()
        if os.environ.get("HELPDESK_TEST_INFRA") == "containers"
        else _processes(tmp_path_factory.mktemp("infra"))
    )
    for found in source:
        stack.create_topics(found.bootstrap, list(topics.ALL), partitions=3)
        yield found


@pytest.fixture
async def mongo(infra: Infra) -> AsyncIterator[object]:
    """Yield a database of the test's own, dropped afterwards."""
    from hdkit.mongo import make_client

    client = make_client(infra.mongo_url)
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use, so `-m "not integration and not e2e"` selects the fast tier."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "helpdesk" in names:
            item.add_marker(pytest.mark.e2e)
        elif "infra" in names or "mongo" in names:
            item.add_marker(pytest.mark.integration)
