"""Wiring of the tickets process: consumers, store, outbox relay and the query API."""

from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from hdkit.mongo import OutboxRelay
from hdkit.service import build_runtime, http_app
from hdkit.staff import StaffDirectory
from pymongo import AsyncMongoClient

from contracts import (
    AbsorbTicket,
    AddComment,
    AddressDeliverable,
    AddressUndeliverable,
    CloseTicket,
    CommentAdded,
    CreateTicket,
    DeleteTicket,
    FollowTicket,
    LinkTicket,
    MergeTicket,
    RecordChild,
    SplitTicket,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketDeleted,
    TicketLinked,
    TicketMerged,
    TicketUpdated,
    UpdateTicket,
    topics,
)
from tickets.api import install_error_handlers, router
from tickets.handlers import Handlers, Indexer
from tickets.search import SearchIndex
from tickets.settings import Settings
from tickets.store import Store


def create_app(
    settings: Settings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    staff: StaffDirectory | None = None,
    configure_logging: bool = False,
) -> FastAPI:
    """Build the tickets app."""
    rt = build_runtime("tickets", settings, broker=broker, mongo=mongo, configure_logging=configure_logging)
    store = Store(rt.db, list_rows_kept=settings.list_rows_kept)
    relay = OutboxRelay(store.tickets, rt.publisher)
    contacts_relay = OutboxRelay(store.contacts, rt.publisher)
    handlers = Handlers(
        store,
        relay,
        message_id_secret=settings.message_id_secret.get_secret_value(),
        staff=staff
        or StaffDirectory(
            settings.portal_url, settings.service_token.get_secret_value(), settings.staff_refresh_seconds
        ),
        contacts_relay=contacts_relay,
        metrics=rt.metrics,
    )
    rt.consumer.subscribe(topics.INBOUND_EMAIL, {"EmailReceived": handlers.email_received})
    rt.consumer.subscribe(
        topics.NOTIFY_EVENTS,
        {"NotificationSent": handlers.notification_sent, "NotificationFailed": handlers.notification_failed},
    )
    rt.consumer.subscribe_batch(
        topics.TICKET_COMMANDS,
        {
            model.TYPE: handlers.command_received
            for model in (
                CreateTicket,
                UpdateTicket,
                AddComment,
                FollowTicket,
                CloseTicket,
                LinkTicket,
                RecordChild,
                DeleteTicket,
                MergeTicket,
                AbsorbTicket,
                SplitTicket,
            )
        },
    )
    rt.declare_publisher(
        topics.TICKET_EVENTS,
        TicketCreated,
        CommentAdded,
        TicketUpdated,
        TicketAssigned,
        TicketClosed,
        TicketLinked,
        TicketDeleted,
        TicketMerged,
        AddressUndeliverable,
        AddressDeliverable,
    )
    rt.declare_publisher(topics.TICKET_COMMANDS, CloseTicket, RecordChild, AbsorbTicket)
    search = SearchIndex(rt.db)
    indexer = Indexer(store, search)
    rt.consumer.subscribe(
        topics.TICKET_EVENTS,
        {
            TicketCreated.TYPE: indexer.ticket_created,
            CommentAdded.TYPE: indexer.comment_added,
            TicketUpdated.TYPE: indexer.ticket_updated,
            TicketDeleted.TYPE: indexer.ticket_deleted,
        },
        group_id="helpdesk-tickets-search",
    )
    rt.on_start += [
        store.ensure_indexes,
        relay.ensure_indexes,
        contacts_relay.ensure_indexes,
        search.ensure_indexes,
        store.purge_deleted,
    ]
    rt.background += [relay.run_sweeper, contacts_relay.run_sweeper]
    app = http_app(rt, title="helpdesk tickets", description="Ticket documents, workflow rules and ticket queries.")
    app.state.runtime = rt
    app.state.store = store
    app.include_router(
        router(
            store,
            handlers,
            settings.service_token.get_secret_value(),
            search=search,
            counts_cache_seconds=settings.counts_cache_seconds,
            list_cache_seconds=settings.list_cache_seconds,
            metrics=rt.metrics,
        )
    )
    install_error_handlers(app)
    return app
