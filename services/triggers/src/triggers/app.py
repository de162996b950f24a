"""Wiring of the triggers process: runtime, store, outbox relay, scheduler, handlers, subscribers and HTTP routes."""

import asyncio
import logging
import os
import socket
from datetime import timedelta
from typing import Any

import httpx
from contracts.envelope import utcnow
from contracts.events import CustomEventPublished, SlaWarned
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from hdkit.mongo import OutboxRelay
from hdkit.service import build_runtime, http_app
from hdkit.staff import StaffDirectory
from pymongo import AsyncMongoClient

from contracts import AddComment, SendNotification, UpdateTicket, topics
from triggers.api import make_router
from triggers.domain import AttachmentLimits
from triggers.handlers import CalendarCache, Handlers, RuleCache
from triggers.scheduler import Scheduler
from triggers.settings import Settings
from triggers.store import Store

log = logging.getLogger(__name__)

TITLE = "helpdesk triggers"
DESCRIPTION = (
    "The automation engine: runs the rules (the tickets they apply to + event + conditions + actions) on ticket "
    "events and on a durable timer scheduler (time rules, webhook retries), and sends the commands they ask for: "
    "`SendNotification` to notify, `UpdateTicket` / `AddComment` to tickets, `CustomEventPublished` for "
    "integrations. Every firing is logged with the conditions that held; chains of rules are cut off."
)


def create_app(
    settings: Settings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    store: Any | None = None,
    staff: Any | None = None,
    configure_logging: bool = False,
) -> FastAPI:
    """Build the triggers app; tests hand in their own broker, store client, store or staff directory."""
    rt = build_runtime("triggers", settings, broker=broker, mongo=mongo, configure_logging=configure_logging)
    store = store or Store(rt.db)
    relay = OutboxRelay(store.collection, rt.publisher)
    cache = RuleCache(store, ttl=settings.rules_cache_seconds)
    calendars = CalendarCache(store, ttl=settings.rules_cache_seconds)
    # A store without a timers collection (the fakes of fast tests) runs no scheduler.
    scheduler = (
        Scheduler(
            store.timers,
            owner=f"{socket.gethostname()}:{os.getpid()}",
            batch=settings.timer_batch,
            poll_seconds=settings.timer_poll_seconds,
            metrics=rt.metrics,
        )
        if store.timers is not None
        else None
    )
    http = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
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
        staff=staff
        or StaffDirectory(
            settings.portal_url, settings.service_token.get_secret_value(), settings.staff_refresh_seconds
        ),
        timers=scheduler,
        calendars=calendars,
        http=http,
    )
    rt.consumer.subscribe(
        topics.TICKET_EVENTS,
        {
            "TicketCreated": handlers.ticket_created,
            "CommentAdded": handlers.comment_added,
            "TicketUpdated": handlers.ticket_updated,
        },
    )
    rt.consumer.subscribe(topics.AUTOMATION_EVENTS, {"SlaWarned": handlers.sla_warned})
    retention = timedelta(days=settings.firing_retention_days)

    async def purge_old_firings() -> None:
        while True:
            try:
                purged = await store.purge_firings(utcnow() - retention)
                if purged:
                    log.info("purged %d firing records older than %s", purged, retention)
            except Exception:
                log.exception("purging old firing records failed; will try again")
            await asyncio.sleep(3600)

    async def close_http() -> None:
        await http.aclose()

    rt.on_start += [store.ensure_indexes, relay.ensure_indexes, calendars.load]
    rt.on_stop.append(close_http)
    rt.background += [relay.run_sweeper, purge_old_firings]
    if scheduler is not None:
        rt.on_start.append(scheduler.ensure_indexes)
        rt.background.append(lambda: scheduler.run(handlers.timer_fired))
    rt.declare_publisher(topics.NOTIFY_COMMANDS, SendNotification)
    rt.declare_publisher(topics.TICKET_COMMANDS, UpdateTicket, AddComment)
    rt.declare_publisher(topics.AUTOMATION_EVENTS, CustomEventPublished, SlaWarned)

    app = http_app(rt, title=TITLE, description=DESCRIPTION)
    app.include_router(
        make_router(
            store,
            token=settings.service_token.get_secret_value(),
            on_change=cache.invalidate,
            handlers=handlers,
            calendars=calendars,
        )
    )
    app.state.runtime = rt
    app.state.store = store
    app.state.relay = relay
    app.state.handlers = handlers
    app.state.scheduler = scheduler
    return app
