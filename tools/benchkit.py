"""What the benchmarks share: Kafka and the store on free ports, and services started as processes.

The benchmarks start their own throw-away stack on loopback, never the one `make run` uses.
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))

import stack  # noqa: E402

from contracts import topics  # noqa: E402

BIN = Path(sys.executable).parent
TOKEN = "bench-service-token-0123456789abcdef"  # noqa: S105 - a throw-away stack of its own
SECRET = "bench-message-id-secret-0123456789abcdef"  # noqa: S105


@contextmanager
def kafka_and_store(
    data: Path, *, partitions: int = 6
) -> Iterator[tuple[stack.KafkaServer, stack.StoreServer, dict[str, str]]]:
    """Start Kafka and the store in `data` with the helpdesk's topics; yield them and the services' environment."""
    kafka = stack.KafkaServer(
        stack.free_port(), stack.free_port(), data / "kafka", libs=stack.ensure_kafka(stack.CACHE)
    )
    store = stack.StoreServer(stack.free_port(), data / "store", command=stack.ensure_store(stack.CACHE))
    try:
        kafka.start()
        store.start()
        store.wait_ready()
        kafka.wait_ready()
        stack.create_topics(kafka.bootstrap, list(topics.ALL), partitions=partitions)
        env = {
            **os.environ,
            "HELPDESK_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "HELPDESK_MONGO_URL": store.url,
            "HELPDESK_SERVICE_TOKEN": TOKEN,
            "HELPDESK_MESSAGE_ID_SECRET": SECRET,
            "HELPDESK_LOG_LEVEL": "WARNING",
        }
        yield kafka, store, env
    finally:
        kafka.stop()
        store.stop()


def start_service(name: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start `<name> run` with its HTTP port, logging to `log`, and wait until it is ready."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(  # noqa: S603
            [str(BIN / name), "run"], env={**env, "HELPDESK_HTTP_PORT": str(port)}, stdout=out, stderr=out
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}")
    except BaseException:
        proc.kill()  # a service that never became ready must not outlive the bench
        proc.wait()
        raise
    return proc


def wait_ready(url: str, seconds: float = 300) -> None:
    """Wait until a service's /ready answers 200 (a kept Kafka may wait out a killed run's consumers)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never became ready")
