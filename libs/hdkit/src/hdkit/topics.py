"""Create the helpdesk's Kafka topics: `python -m hdkit.topics [--partitions N]`."""

import argparse
import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import topics
from hdkit.settings import KafkaSettings

log = logging.getLogger(__name__)


async def create_topics(bootstrap: str, partitions: int, names: tuple[str, ...] = topics.ALL) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(name=n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
            except TopicAlreadyExistsError:
                log.info("topics were created meanwhile")
        return missing
    finally:
        await admin.close()


def main() -> None:
    """Command-line entry point."""
    settings = KafkaSettings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default=settings.kafka_bootstrap)
    parser.add_argument("--partitions", type=int, default=settings.topic_partitions)
    args = parser.parse_args()
    made = asyncio.run(create_topics(args.bootstrap, args.partitions))
    print(f"created {len(made)} topic(s): {', '.join(made) or 'none (all existed)'}")


if __name__ == "__main__":
    main()
