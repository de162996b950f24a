"""Wiring of the notify process: runtime, store, outbox relay, SMTP sender, handlers, subscriber, routes."""

import asyncio
import logging
from typing import Any

from contracts.envelope import utcnow
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from hdkit.mongo import OutboxRelay
from hdkit.service import build_runtime, http_app
from pymongo import AsyncMongoClient

from contracts import (
    AddressDeliverable,
    AddressUndeliverable,
    CommentAdded,
    NotificationFailed,
    NotificationSent,
    TicketAssigned,
    topics,
)
from notify.api import make_router
from notify.attachments import FileSource, IngestFiles
from notify.handlers import AutoMailCaps, Handlers, InAppNotifier, MailIdentity
from notify.settings import Settings
from notify.sign_in_links import SignInLinkMailer
from notify.smtp import MailSender, SmtpSender
from notify.store import Store

log = logging.getLogger(__name__)

TITLE = "helpdesk notify"
DESCRIPTION = (
    "Renders email templates and sends each notification once over SMTP; reports `NotificationSent` "
    "or `NotificationFailed` so tickets can record the Message-ID or show the failure. Mail to an address "
    "that bounced for good (`AddressUndeliverable`) is not sent until an agent lifts the mark. Mail to customers "
    "follows the notify mode (never / link / email); mail an agent speaks in carries their personal signature. "
    "`TicketAssigned` and `CommentAdded` with @mentions become in-app notifications (`GET /inapp`)."
)


async def forget_ended_windows(store: Store, every: float = 3600.0) -> None:
    """Drop the automatic-mail counts of windows that have ended, now and then (a background task)."""
    while True:
        try:
            await store.forget_counts(utcnow())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not drop old automatic-mail counts; will try again")
        await asyncio.sleep(every)


def create_app(
    settings: Settings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    store: Any | None = None,
    sender: MailSender | None = None,
    files: FileSource | None = None,
    configure_logging: bool = False,
) -> FastAPI:
    """Build the notify app; tests hand in their own broker, store client, store, SMTP sender or file source."""
    rt = build_runtime("notify", settings, broker=broker, mongo=mongo, configure_logging=configure_logging)
    store = store or Store(rt.db)
    relay = OutboxRelay(store.collection, rt.publisher)
    sender = sender or SmtpSender(settings)
    if files is None:
        ingest_files = IngestFiles(settings.ingest_url, settings.service_token.get_secret_value())
        rt.on_stop.append(ingest_files.aclose)
        files = ingest_files
    identity = MailIdentity(
        message_id_secret=settings.message_id_secret.get_secret_value(),
        mail_domain=settings.mail_domain,
        mailbox_names={k.lower(): v for k, v in settings.mailbox_names.items()},
        default_from_name=settings.default_from_name,
        mailbox_signatures={k.lower(): v for k, v in settings.mailbox_signatures.items()},
    )
    handlers = Handlers(
        store,
        relay,
        sender,
        identity=identity,
        metrics=rt.metrics,
        max_attempts=settings.smtp_max_attempts,
        max_retry_delay=settings.smtp_retry_max_delay,
        caps=AutoMailCaps(
            per_ticket_per_hour=settings.auto_mail_per_ticket_per_hour,
            per_recipient_per_hour=settings.auto_mail_per_recipient_per_hour,
            per_recipient_per_day=settings.auto_mail_per_recipient_per_day,
            per_staff_per_hour=settings.staff_notices_per_hour,
        ),
        files=files,
        max_attachments_bytes=settings.max_attachments_bytes_per_message,
    )
    inapp = InAppNotifier(store, metrics=rt.metrics)
    rt.consumer.subscribe(topics.NOTIFY_COMMANDS, {"SendNotification": handlers.send_notification})
    rt.consumer.subscribe(
        topics.TICKET_EVENTS,
        {
            AddressUndeliverable.TYPE: handlers.address_undeliverable,
            AddressDeliverable.TYPE: handlers.address_deliverable,
            TicketAssigned.TYPE: inapp.tell_assignee,
            CommentAdded.TYPE: inapp.tell_mentioned,
        },
    )
    rt.on_start.append(store.ensure_indexes)
    rt.on_start.append(relay.ensure_indexes)
    rt.background.append(relay.run_sweeper)
    if isinstance(store, Store):
        real_store = store

        async def forget_automatic_mail_counts() -> None:
            await forget_ended_windows(real_store)

        rt.background.append(forget_automatic_mail_counts)
    rt.declare_publisher(topics.NOTIFY_EVENTS, NotificationSent, NotificationFailed)

    app = http_app(rt, title=TITLE, description=DESCRIPTION)
    sign_in_links = SignInLinkMailer(store, sender, identity)
    app.include_router(make_router(store, token=settings.service_token.get_secret_value(), sign_in_links=sign_in_links))
    app.state.runtime = rt
    app.state.store = store
    app.state.relay = relay
    app.state.handlers = handlers
    app.state.inapp = inapp
    return app
