"""The tickets service's handlers on the real store, as the integration tests build them."""

from typing import Any

from hdkit.mongo import OutboxRelay
from tickets.domain import Mailbox
from tickets.handlers import Handlers
from tickets.store import Store

SECRET = "integration-secret-0123456789"


async def handlers_on(mongo: Any, publisher: Any) -> tuple[Handlers, Store]:
    """Return handlers and their store on `mongo` (indexes and default mailbox made), publishing with `publisher`."""
    store = Store(mongo)
    await store.ensure_indexes()
    await store.seed_defaults(Mailbox(address="support@localhost", group="support"))
    handlers = Handlers(
        store,
        OutboxRelay(store.tickets, publisher),
        message_id_secret=SECRET,
        contacts_relay=OutboxRelay(store.contacts, publisher),
    )
    return handlers, store
