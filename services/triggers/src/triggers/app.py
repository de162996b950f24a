"""Wiring of the triggers process: runtime, store, outbox relay, handlers, subscriber and HTTP routes."""

from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from hdkit.mongo import OutboxRelay
from hdkit.service import build_runtime, http_app
from pymongo import AsyncMongoClient

from contracts import SendNotification, topics
from triggers.api import make_router
from triggers.domain import AttachmentLimits
from triggers.handlers import Handlers, RuleCache
from triggers.settings import Settings
from triggers.store import Store

TITLE = "helpdesk triggers"
DESCRIPTION = (
    "The automation engine: runs the rules (event + conditions + actions) on ticket events and sends "
    "the commands they ask for, e.g. `SendNotification` for the auto-reply on a new email ticket, and the "
    "built-in notice to the sender of an email whose attachments were left out for their size."
)


def create_app(
    settings: Settings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    store: Any | None = None,
    configure_logging: bool = False,
) -> FastAPI:
    """Build the triggers app; tests hand in their own broker, store client or store."""
    rt = build_runtime("triggers", settings, broker=broker, mongo=mongo, configure_logging=configure_logging)
    store = store or Store(rt.db)
    relay = OutboxRelay(store.collection, rt.publisher)
    cache = RuleCache(store, ttl=settings.rules_cache_seconds)
    handlers = Handlers(
        store,
        relay,
        public_url=settings.public_url,
        default_mailbox=settings.default_mailbox,
        metrics=rt.metrics,
        rules=cache,
        attachment_limits=AttachmentLimits(
            per_file=settings.max_attachment_bytes, per_message=settings.max_attachments_bytes_per_message
        ),
    )
    rt.consumer.subscribe(
        topics.TICKET_EVENTS, {"TicketCreated": handlers.ticket_created, "CommentAdded": handlers.comment_added}
    )
    rt.on_start.append(store.ensure_indexes)
    rt.on_start.append(relay.ensure_indexes)
    rt.background.append(relay.run_sweeper)
    rt.declare_publisher(topics.NOTIFY_COMMANDS, SendNotification)

    app = http_app(rt, title=TITLE, description=DESCRIPTION)
    app.include_router(make_router(store, token=settings.service_token.get_secret_value(), on_change=cache.invalidate))
    app.state.runtime = rt
    app.state.store = store
    app.state.relay = relay
    app.state.handlers = handlers
    return app
