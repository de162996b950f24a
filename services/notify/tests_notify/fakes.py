"""In-memory stand-ins for the store, the outbox collection, the Kafka publisher and the SMTP server."""

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from hdkit.mongo import outbox_set
from hdkit.testing import FakePublisher, OutboxCollection  # noqa: F401 - re-exported for the tests
from notify.domain import MailSettings, Signature, Template
from notify.seeds import default_templates
from notify.store import DEFERRED, FAILED, SENDING, SKIPPED, UNCERTAIN, template_id

from contracts import Envelope


def _apply_set(doc: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        *path, last = key.split(".")
        target = doc
        for part in path:
            target = target.setdefault(part, {})
        target[last] = copy.deepcopy(value)


class StoreDown(ConnectionError):
    """The fake store pretending to be unreachable."""


class FakeStore:
    """Same methods as `notify.store.Store`, in memory; `fail_finish` makes the next `finish` calls fail."""

    def __init__(self, templates: Sequence[Template] = ()) -> None:
        self.collection = OutboxCollection()
        self.template_docs = {template_id(t.key, t.language): t for t in (templates or default_templates())}
        self.fail_finish = 0
        self.counts: dict[tuple[str, int, int], int] = {}
        self.suppressed: dict[str, dict[str, Any]] = {}
        self.signature_docs: dict[tuple[str, str | None, str | None, str | None], Signature] = {}
        self.settings = MailSettings()
        self.inapp: dict[str, dict[str, Any]] = {}

    @property
    def docs(self) -> dict[Any, dict[str, Any]]:
        return self.collection.docs

    async def ensure_indexes(self) -> None:
        return None

    async def get(self, notification_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": notification_id})

    async def claim(self, notification_id: str, fields: dict[str, Any]) -> bool:
        doc = self.docs.get(notification_id)
        if doc is not None and doc["state"] != DEFERRED:
            return False
        doc = doc or {"_id": notification_id, "attempts": 0}
        _apply_set(doc, {**fields, "state": SENDING})
        doc["attempts"] += 1
        self.docs[notification_id] = doc
        return True

    async def defer(self, notification_id: str, reason: str) -> int:
        doc = self.docs[notification_id]
        doc.update(state=DEFERRED, reason=reason)
        return int(doc["attempts"])

    async def finish(
        self, notification_id: str, state: str, fields: dict[str, Any], outbox: list[tuple[str, Envelope]]
    ) -> None:
        if self.fail_finish:
            self.fail_finish -= 1
            raise StoreDown("store away")
        _apply_set(self.docs[notification_id], {**fields, "state": state, **outbox_set(outbox)})

    async def fail_before_sending(
        self, notification_id: str, fields: dict[str, Any], outbox: list[tuple[str, Envelope]]
    ) -> bool:
        return self._unsent(notification_id, {**fields, "state": FAILED, **outbox_set(outbox)})

    async def skip(self, notification_id: str, fields: dict[str, Any]) -> bool:
        return self._unsent(notification_id, {**fields, "state": SKIPPED})

    def _unsent(self, notification_id: str, fields: dict[str, Any]) -> bool:
        doc = self.docs.get(notification_id)
        if doc is not None and doc["state"] != DEFERRED:
            return False
        doc = doc or {"_id": notification_id}
        _apply_set(doc, fields)
        self.docs[notification_id] = doc
        return True

    async def mark_uncertain(self, notification_id: str, reason: str) -> bool:
        doc = self.docs.get(notification_id)
        if doc is None or doc["state"] != SENDING:
            return False
        doc.update(state=UNCERTAIN, reason=reason)
        return True

    async def count_automatic(self, key: str, window: timedelta, now: datetime) -> int:
        seconds = int(window.total_seconds())
        slot = (key, seconds, int(now.timestamp()) // seconds)
        self.counts[slot] = self.counts.get(slot, 0) + 1
        return self.counts[slot]

    async def suppress(self, address: str, since: datetime, problem: dict[str, Any]) -> bool:
        return self._change_address(address, since, {"suppressed": True, **problem})

    async def unsuppress(self, address: str, at: datetime, fields: dict[str, Any]) -> bool:
        return self._change_address(address, at, {"suppressed": False, **fields})

    def _change_address(self, address: str, at: datetime, fields: dict[str, Any]) -> bool:
        doc = self.suppressed.get(address.lower())
        if doc is not None and doc["changed_at"] >= at:
            return False
        self.suppressed[address.lower()] = {"_id": address.lower(), **(doc or {}), **fields, "changed_at": at}
        return True

    async def suppression(self, address: str) -> dict[str, Any] | None:
        doc = self.suppressed.get(address.lower())
        return copy.deepcopy(doc) if doc and doc["suppressed"] else None

    async def for_ticket(self, ticket_id: str | None, limit: int = 100) -> list[dict[str, Any]]:
        docs = [copy.deepcopy(d) for d in self.docs.values() if ticket_id in (None, d.get("ticket_id"))]
        for d in docs:
            d.pop("outbox", None)
            d.pop("outbox_since", None)
        return docs[:limit]

    async def find_template(self, key: str, languages: Sequence[str]) -> Template | None:
        for language in languages:
            if (found := self.template_docs.get(template_id(key, language))) is not None:
                return found
        return None

    async def list_templates(self) -> list[Template]:
        return sorted(self.template_docs.values(), key=lambda t: (t.key, t.language))

    async def put_template(self, template: Template) -> Template:
        self.template_docs[template_id(template.key, template.language)] = template
        return template

    async def seed_templates(self, templates: Sequence[Template]) -> int:
        new = [t for t in templates if template_id(t.key, t.language) not in self.template_docs]
        for t in new:
            self.template_docs[template_id(t.key, t.language)] = t
        return len(new)

    async def signatures(self) -> list[Signature]:
        return list(self.signature_docs.values())

    async def put_signature(self, signature: Signature) -> Signature:
        self.signature_docs[signature.key] = signature
        return signature

    async def delete_signature(
        self, scope: str, mailbox: str | None, user_id: str | None, language: str | None
    ) -> bool:
        key = (scope, mailbox.lower() if mailbox else None, user_id, language)
        return self.signature_docs.pop(key, None) is not None

    async def mail_settings(self) -> MailSettings:
        return self.settings

    async def put_mail_settings(self, settings: MailSettings) -> MailSettings:
        self.settings = settings
        return settings

    async def add_inapp(self, docs: list[dict[str, Any]]) -> int:
        new = [d for d in docs if d["_id"] not in self.inapp]
        for d in new:
            self.inapp[d["_id"]] = copy.deepcopy(d)
        return len(new)

    async def list_inapp(self, user_id: str, *, unread: bool, limit: int) -> tuple[list[dict[str, Any]], int]:
        mine = [d for d in self.inapp.values() if d["user_id"] == user_id]
        unread_ones = [d for d in mine if d["read_at"] is None]
        listed = sorted(unread_ones if unread else mine, key=lambda d: d["created_at"], reverse=True)
        return copy.deepcopy(listed[:limit]), len(unread_ones)

    async def mark_inapp_read(self, user_id: str, ids: Sequence[str] | None, at: datetime) -> int:
        marked = 0
        for d in self.inapp.values():
            if d["user_id"] == user_id and d["read_at"] is None and (ids is None or d["_id"] in ids):
                d["read_at"] = at
                marked += 1
        return marked


class FakeMailServer:
    """A `MailSender` that keeps the mail, or raises what it is told to raise for the next sends."""

    def __init__(self) -> None:
        self.outbox: list[tuple[EmailMessage, str, list[str]]] = []
        self.answers: list[Exception] = []

    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> None:
        if self.answers:
            raise self.answers.pop(0)
        self.outbox.append((message, sender, recipients))
