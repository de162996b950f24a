"""The only module of notify that talks to MongoDB: notifications, templates, signatures, settings, in-app.

A notification document (`_id` = notification id) moves through states:
`sending` (claimed, the SMTP attempt is under way) -> `sent` | `failed` | `deferred` (the server
said "later"; may be claimed again) ; `uncertain` when a redelivery finds it still `sending`;
`skipped` when the notify mode says not to send it at all.
"""

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.envelope import utcnow
from hdkit.mongo import OUTBOX, OUTBOX_SINCE, outbox_set
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from contracts import Envelope
from notify.domain import MailSettings, Signature, SignatureFields, Template, signature_id

SENDING = "sending"
SENT = "sent"
FAILED = "failed"
DEFERRED = "deferred"
UNCERTAIN = "uncertain"
SKIPPED = "skipped"
MAIL_SETTINGS_ID = "mail"


def template_id(key: str, language: str) -> str:
    """Return the document id of a template."""
    return f"{key}:{language}"


def template_from_doc(doc: dict[str, Any]) -> Template:
    """Read a template document back into a `Template`."""
    return Template.model_validate({k: doc[k] for k in ("key", "language", "subject", "text", "html")})


# Templates, signatures and settings are read for every mail; an edit through the API clears this process's
# cache, other edits (another process, the database) show within 5 s.
TEMPLATE_CACHE_SECONDS = 5.0


def signature_from_doc(doc: dict[str, Any]) -> Signature:
    """Read a signature document back into a `Signature`."""
    return Signature.model_validate({k: doc.get(k) for k in SignatureFields.model_fields})


class Store:
    """Notifications, email templates, signatures, the mail settings and in-app notifications.

    Collections: `notifications`, `templates`, `signatures`, `settings`, `inapp` (and the counts and
    suppressed addresses that protect recipients).
    """

    def __init__(self, db: Any) -> None:
        self.collection: AsyncCollection[dict[str, Any]] = db["notifications"]
        self.templates: AsyncCollection[dict[str, Any]] = db["templates"]
        self.auto_counts: AsyncCollection[dict[str, Any]] = db["auto_mail_counts"]
        self.suppressed: AsyncCollection[dict[str, Any]] = db["suppressed_addresses"]
        self.signature_docs: AsyncCollection[dict[str, Any]] = db["signatures"]
        self.settings: AsyncCollection[dict[str, Any]] = db["settings"]
        self.inapp: AsyncCollection[dict[str, Any]] = db["inapp"]
        self._template_cache: dict[str, tuple[float, Template | None]] = {}
        self._signature_cache: tuple[float, list[Signature]] | None = None
        self._settings_cache: tuple[float, MailSettings] | None = None

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need."""
        await self.collection.create_index([("ticket_id", ASCENDING), ("created_at", DESCENDING)], name="ticket")
        await self.collection.create_index([(OUTBOX_SINCE, ASCENDING)], name="outbox_since")  # the sweeper's
        await self.templates.create_index([("key", ASCENDING), ("language", ASCENDING)], name="key_language")
        await self.auto_counts.create_index([("until", ASCENDING)], name="until")
        await self.inapp.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_newest")
        await self.inapp.create_index(
            [("user_id", ASCENDING), ("read_at", ASCENDING), ("created_at", DESCENDING)], name="user_unread"
        )

    async def count_automatic(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one automatic mail for `key` in the current window of that length; return the window's count.

        Windows are fixed (aligned to the epoch), so one atomic upsert per key and window is enough.
        """
        seconds = int(window.total_seconds())
        start = int(now.timestamp()) // seconds * seconds
        doc = await self.auto_counts.find_one_and_update(
            {"_id": f"{key}|{seconds}|{start}"},
            {"$inc": {"n": 1}, "$setOnInsert": {"until": datetime.fromtimestamp(start + seconds, UTC)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["n"]) if doc else 1  # an upsert returning the document after it always finds one

    async def forget_counts(self, now: datetime) -> int:
        """Drop the counts of windows that have ended; return how many."""
        result = await self.auto_counts.delete_many({"until": {"$lt": now}})
        return result.deleted_count

    async def suppress(self, address: str, since: datetime, problem: dict[str, Any]) -> bool:
        """Suppress mail to an address from `since`, unless a later change is recorded; tell whether it applied."""
        return await self._change_address(address, since, {"suppressed": True, **problem})

    async def unsuppress(self, address: str, at: datetime, fields: dict[str, Any]) -> bool:
        """Send mail to an address again from `at`, unless a later change is recorded; tell whether it applied."""
        return await self._change_address(address, at, {"suppressed": False, **fields})

    async def _change_address(self, address: str, at: datetime, fields: dict[str, Any]) -> bool:
        # One document per address; `changed_at` is the time of the change it shows, so a change that is not
        # newer (a redelivery, or an older event arriving late) finds no document to update and cannot insert.
        try:
            result = await self.suppressed.update_one(
                {"_id": address.lower(), "changed_at": {"$lt": at}},
                {"$set": {**fields, "changed_at": at}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return result.modified_count == 1 or result.upserted_id is not None

    async def suppression(self, address: str) -> dict[str, Any] | None:
        """Return why mail to an address is suppressed (`since`, `status`, `diagnostic`), or None."""
        return await self.suppressed.find_one({"_id": address.lower(), "suppressed": True})

    async def get(self, notification_id: str) -> dict[str, Any] | None:
        """Return a notification document, or None."""
        return await self.collection.find_one({"_id": notification_id})

    async def claim(self, notification_id: str, fields: dict[str, Any]) -> bool:
        """Mark a notification `sending` if it is new or deferred; False when it is in any other state."""
        now = utcnow()
        try:
            await self.collection.update_one(
                {"_id": notification_id, "state": DEFERRED},
                {
                    "$set": {**fields, "state": SENDING, "updated_at": now},
                    "$setOnInsert": {"created_at": now},
                    "$inc": {"attempts": 1},
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def defer(self, notification_id: str, reason: str) -> int:
        """Give a claimed notification back as `deferred`; return how many attempts it has had."""
        doc = await self.collection.find_one_and_update(
            {"_id": notification_id},
            {"$set": {"state": DEFERRED, "reason": reason, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        return int((doc or {}).get("attempts", 1))

    async def finish(
        self, notification_id: str, state: str, fields: dict[str, Any], outbox: list[tuple[str, Envelope]]
    ) -> None:
        """Record the outcome of an attempt and the event that reports it, in one update."""
        await self.collection.update_one(
            {"_id": notification_id},
            {"$set": {**fields, "state": state, "updated_at": utcnow(), **outbox_set(outbox)}},
        )

    async def fail_before_sending(
        self, notification_id: str, fields: dict[str, Any], outbox: list[tuple[str, Envelope]]
    ) -> bool:
        """Record a notification that cannot be sent at all (new or deferred); False in another state."""
        return await self._unsent(notification_id, FAILED, {**fields, **outbox_set(outbox)})

    async def skip(self, notification_id: str, fields: dict[str, Any]) -> bool:
        """Record a notification the notify mode says not to send (new or deferred); False in another state."""
        return await self._unsent(notification_id, SKIPPED, fields)

    async def _unsent(self, notification_id: str, state: str, fields: dict[str, Any]) -> bool:
        now = utcnow()
        try:
            await self.collection.update_one(
                {"_id": notification_id, "state": DEFERRED},
                {"$set": {**fields, "state": state, "updated_at": now}, "$setOnInsert": {"created_at": now}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def mark_uncertain(self, notification_id: str, reason: str) -> bool:
        """Turn a `sending` notification into `uncertain`; False when it was not `sending`."""
        result = await self.collection.update_one(
            {"_id": notification_id, "state": SENDING},
            {"$set": {"state": UNCERTAIN, "reason": reason, "updated_at": utcnow()}},
        )
        return result.modified_count == 1

    async def for_ticket(self, ticket_id: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """Return the notifications of one ticket (or the latest of all), newest first, without outbox."""
        flt = {"ticket_id": ticket_id} if ticket_id else {}
        cursor = self.collection.find(flt, {OUTBOX: 0, OUTBOX_SINCE: 0}).sort([("created_at", DESCENDING)]).limit(limit)
        return [d async for d in cursor]

    async def find_template(self, key: str, languages: Sequence[str]) -> Template | None:
        """Return the template in the first of the languages that has it, or None."""
        for language in languages:
            tid = template_id(key, language)
            cached = self._template_cache.get(tid)
            if cached is None or time.monotonic() - cached[0] > TEMPLATE_CACHE_SECONDS:
                doc = await self.templates.find_one({"_id": tid})
                cached = (time.monotonic(), template_from_doc(doc) if doc else None)
                self._template_cache[tid] = cached
            if cached[1] is not None:
                return cached[1]
        return None

    async def list_templates(self) -> list[Template]:
        """Return every template, by key and language."""
        cursor = self.templates.find({}).sort([("key", ASCENDING), ("language", ASCENDING)])
        return [template_from_doc(d) async for d in cursor]

    async def put_template(self, template: Template) -> Template:
        """Create or replace a template."""
        self._template_cache.clear()
        now = utcnow()
        await self.templates.update_one(
            {"_id": template_id(template.key, template.language)},
            {"$set": {**template.model_dump(), "updated_at": now}, "$setOnInsert": {"created_at": now}},
            upsert=True,
        )
        return template

    async def seed_templates(self, templates: Sequence[Template]) -> int:
        """Insert the templates that do not exist yet (edits are kept); return how many were new."""
        added = 0
        now = utcnow()
        for template in templates:
            result = await self.templates.update_one(
                {"_id": template_id(template.key, template.language)},
                {"$setOnInsert": {**template.model_dump(), "created_at": now, "updated_at": now}},
                upsert=True,
            )
            added += 1 if result.upserted_id is not None else 0
        return added

    async def signatures(self) -> list[Signature]:
        """Return every stored signature (cached for a few seconds)."""
        cached = self._signature_cache
        if cached is None or time.monotonic() - cached[0] > TEMPLATE_CACHE_SECONDS:
            cursor = self.signature_docs.find({}).sort([("_id", ASCENDING)])
            cached = (time.monotonic(), [signature_from_doc(d) async for d in cursor])
            self._signature_cache = cached
        return list(cached[1])

    async def put_signature(self, signature: Signature) -> Signature:
        """Create or replace the signature of one scope (mailbox, user and language)."""
        self._signature_cache = None
        now = utcnow()
        await self.signature_docs.update_one(
            {"_id": signature_id(*signature.key)},
            {"$set": {**signature.model_dump(), "updated_at": now}, "$setOnInsert": {"created_at": now}},
            upsert=True,
        )
        return signature

    async def delete_signature(
        self, scope: str, mailbox: str | None, user_id: str | None, language: str | None
    ) -> bool:
        """Delete the signature of one scope; tell whether there was one."""
        self._signature_cache = None
        result = await self.signature_docs.delete_one({"_id": signature_id(scope, mailbox, user_id, language)})
        return result.deleted_count == 1

    async def mail_settings(self) -> MailSettings:
        """Return the mail settings (the defaults until an admin saves some; cached for a few seconds)."""
        cached = self._settings_cache
        if cached is None or time.monotonic() - cached[0] > TEMPLATE_CACHE_SECONDS:
            doc = await self.settings.find_one({"_id": MAIL_SETTINGS_ID})
            fields = {k: doc[k] for k in MailSettings.model_fields if k in doc} if doc else {}
            cached = (time.monotonic(), MailSettings.model_validate(fields))
            self._settings_cache = cached
        return cached[1]

    async def put_mail_settings(self, settings: MailSettings) -> MailSettings:
        """Replace the mail settings."""
        self._settings_cache = None
        await self.settings.update_one(
            {"_id": MAIL_SETTINGS_ID}, {"$set": {**settings.model_dump(), "updated_at": utcnow()}}, upsert=True
        )
        return settings

    async def add_inapp(self, docs: list[dict[str, Any]]) -> int:
        """Store in-app notifications whose id is new; return how many were (a redelivery adds none)."""
        added = 0
        for doc in docs:
            try:
                result = await self.inapp.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)
            except DuplicateKeyError:  # the same notice stored at the same moment by a concurrent delivery
                continue
            added += 1 if result.upserted_id is not None else 0
        return added

    async def list_inapp(self, user_id: str, *, unread: bool, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Return a user's in-app notifications, newest first (only the unread ones if asked), and the unread count."""
        flt: dict[str, Any] = {"user_id": user_id, **({"read_at": None} if unread else {})}
        cursor = self.inapp.find(flt).sort([("created_at", DESCENDING), ("_id", ASCENDING)]).limit(limit)
        items = [d async for d in cursor]
        # the count command, not count_documents (an aggregation): the store answers it from the user_unread
        # index instead of reading every unread notification (asked by every staff page's bell)
        unread = await self.inapp.database.command(
            "count", self.inapp.name, query={"user_id": user_id, "read_at": None}
        )
        return items, int(unread["n"])

    async def mark_inapp_read(self, user_id: str, ids: Sequence[str] | None, at: datetime) -> int:
        """Mark a user's notifications read (the given ids, or all when None); return how many changed."""
        flt: dict[str, Any] = {"user_id": user_id, "read_at": None}
        if ids is not None:
            flt["_id"] = {"$in": list(ids)}
        result = await self.inapp.update_many(flt, {"$set": {"read_at": at}})
        return result.modified_count
