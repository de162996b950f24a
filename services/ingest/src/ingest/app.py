"""Wiring of the ingest process: SMTP/LMTP receiver, IMAP pollers, store, outbox relay, HTTP ops and quarantine API."""

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from faststream.kafka import KafkaBroker
from hdkit.auth import require_service_token
from hdkit.mongo import OutboxRelay
from hdkit.service import build_runtime, http_app
from pymongo import AsyncMongoClient

from contracts import EmailReceived, topics
from ingest.handlers import EmailIntake, Limits
from ingest.imap import ImapIntake
from ingest.mailboxes import MailboxDirectory
from ingest.settings import Settings
from ingest.smtp import DeliveryHandler, start_receivers
from ingest.store import Store


def create_app(
    settings: Settings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    mailboxes: MailboxDirectory | None = None,
    configure_logging: bool = False,
) -> FastAPI:
    """Build the ingest app; the SMTP listeners start and stop with it."""
    rt = build_runtime("ingest", settings, broker=broker, mongo=mongo, configure_logging=configure_logging)
    store = Store(rt.db)
    relay = OutboxRelay(store.messages, rt.publisher)
    intake = EmailIntake(
        store,
        relay,
        rt.metrics,
        loop_domain=settings.loop_domain,
        limits=Limits(max_attachment_bytes=settings.max_attachment_bytes),
    )
    directory = mailboxes or MailboxDirectory(
        settings.tickets_url, settings.service_token.get_secret_value(), settings.mailbox_refresh_seconds
    )
    receivers: list[Any] = []

    async def start_smtp() -> None:
        receivers.extend(
            await start_receivers(
                DeliveryHandler(intake, directory),
                host=settings.smtp_host,
                smtp_port=settings.smtp_port,
                lmtp_port=settings.lmtp_port,
                hostname=settings.smtp_hostname,
                max_bytes=settings.max_message_bytes,
            )
        )

    async def stop_smtp() -> None:
        for server in receivers:
            server.close()
            await server.wait_closed()

    rt.on_start += [store.ensure_indexes, relay.ensure_indexes, start_smtp]
    rt.on_stop += [stop_smtp, relay.drain]  # receivers first, then empty the outboxes of what was published
    rt.background.append(relay.run_sweeper)
    imap = ImapIntake(settings.imap_accounts, intake, rt.metrics, max_message_bytes=settings.max_message_bytes)
    if imap.pollers:
        # a background task: cancelled on shutdown, when every poller logs out
        rt.background.append(imap.run)
    rt.declare_publisher(topics.INBOUND_EMAIL, EmailReceived)

    app = http_app(rt, title="helpdesk ingest", description="Channels in: email by SMTP/LMTP; quarantine.")
    app.state.runtime = rt
    app.state.intake = intake
    app.state.imap = imap
    app.state.store = store
    app.include_router(api(store, settings.service_token.get_secret_value()))
    return app


def api(store: Store, token: str) -> APIRouter:
    """Return the admin API of ingest."""
    router = APIRouter(prefix="/api", tags=["quarantine"], dependencies=[Depends(require_service_token(token))])

    @router.get("/quarantine", summary="Messages that could not be read, newest first, with the reason.")
    async def quarantine(limit: int = 100) -> list[dict[str, Any]]:
        return await store.list_quarantine(min(max(limit, 1), 1000))

    return router
