"""The process shell every service shares: broker, store client, HTTP health/readiness/metrics, background tasks."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pymongo import AsyncMongoClient

from contracts import Envelope, Message
from hdkit.kafka import Consumer, Publisher, make_broker
from hdkit.mongo import make_client
from hdkit.settings import Base, HttpSettings, KafkaSettings, MongoSettings, TelemetrySettings
from hdkit.telemetry import setup_logging, setup_tracing

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class ServiceSettings(Base, KafkaSettings, MongoSettings, HttpSettings, TelemetrySettings):
    """What every service needs; a service's own Settings subclasses this and adds its mixins."""


@dataclass
class Runtime:
    """The adapters of one service process, built in one wiring place and handed to its handlers."""

    name: str
    settings: ServiceSettings
    broker: KafkaBroker
    publisher: Publisher
    consumer: Consumer
    mongo: AsyncMongoClient[dict[str, Any]]
    metrics: CollectorRegistry
    tracer_provider: TracerProvider
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def db(self) -> Any:
        """Return this service's own database."""
        return self.mongo[self.settings.mongo_db]

    def declare_publisher(self, topic: str, *types: type[Message]) -> None:
        """Document (in AsyncAPI) that this service publishes these message types to `topic`."""
        names = ", ".join(t.TYPE for t in types)
        self.broker.publisher(
            topic,
            title=f"{self.name}:{topic}:publish",
            description=f"{self.name} publishes {names} in an Envelope (payload schemas: docs/contracts).",
            schema=Envelope,
        )

    def asyncapi(self, title: str, description: str) -> AsyncAPI:
        """Return the AsyncAPI document of this service's Kafka interface."""
        return AsyncAPI(self.broker, title=title, version="1.0.0", description=description)


def build_runtime(
    name: str,
    settings: ServiceSettings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    configure_logging: bool = False,
) -> Runtime:
    """Build the adapters; tests hand in their own broker or store client."""
    if configure_logging:
        setup_logging(name, settings)
    metrics = CollectorRegistry()
    provider = setup_tracing(name, settings)
    broker = broker or make_broker(settings, service=name, tracer_provider=provider, metrics=metrics)
    publisher = Publisher(broker)
    return Runtime(
        name=name,
        settings=settings,
        broker=broker,
        publisher=publisher,
        consumer=Consumer(
            broker=broker,
            publisher=publisher,
            service=name,
            metrics=metrics,
            workers=settings.consumer_workers,
            tracer_provider=provider,
        ),
        mongo=mongo or make_client(settings.mongo_url),
        metrics=metrics,
        tracer_provider=provider,
    )


async def _guarded(task: Callable[[], Awaitable[None]]) -> None:
    try:
        await task()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s stopped", getattr(task, "__name__", task))


def http_app(rt: Runtime, *, title: str, description: str = "", version: str = "1.0.0") -> FastAPI:
    """Return a FastAPI app with /health, /ready and /metrics whose lifespan runs the broker and tasks."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in rt.on_start:
            await hook()
        await rt.broker.start()
        tasks = [asyncio.create_task(_guarded(t)) for t in rt.background]
        log.info("%s started", rt.name)
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            for hook in rt.on_stop:
                await hook()
            await rt.broker.stop()
            await rt.mongo.close()
            rt.tracer_provider.shutdown()
            log.info("%s stopped", rt.name)

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)

    @app.get("/health", tags=["ops"], summary="Liveness: the process is up.")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": rt.name}

    @app.get("/ready", tags=["ops"], summary="Readiness: Kafka and the store answer.")
    async def ready(response: Response) -> dict[str, Any]:
        checks: dict[str, bool] = {}
        try:
            await asyncio.wait_for(rt.db.command("ping"), 3)
            checks["store"] = True
        except Exception:
            checks["store"] = False
        try:
            checks["kafka"] = bool(await rt.broker.ping(timeout=3))
        except Exception:
            checks["kafka"] = False
        ok = all(checks.values())
        response.status_code = 200 if ok else 503
        return {"status": "ready" if ok else "not ready", "checks": checks}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics.", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(rt.metrics), media_type=CONTENT_TYPE_LATEST)

    return app


# Young objects are collected after this many more allocations than frees (Python's default, 700, ran a collection
# every few requests of a queue page; the cost of a young collection grows with the survivors, not the threshold).
YOUNG_COLLECTION_THRESHOLD = 20_000


def settle_heap() -> None:
    """Keep the collector off what the process built before serving: modules, the app, templates.

    A full collection walks every object that can hold others. A service has some hundred thousands of them from
    its imports alone, so each full collection stopped the event loop for 50-200 ms, and every request in
    flight waited (the queue page's slowest 5 % at a million tickets were mostly these pauses). Frozen objects
    are never walked or freed; they live as long as the process anyway.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def serve(app: FastAPI, settings: HttpSettings) -> None:
    """Run the app with uvicorn until SIGINT/SIGTERM, the start-up heap out of the collector's way."""
    settle_heap()
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)
