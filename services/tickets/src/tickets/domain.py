"""Ticket rules: creating tickets from mail, pairing replies with their ticket, and what a reply changes.

Pure functions over plain dicts (the ticket document) and contract models; no I/O.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from contracts.events import Comment
from contracts.models import Actor, Address, Attachment, TicketSnapshot

from contracts import CommentAdded, EmailReceived, TicketCreated, derived_id
from tickets.config import PHASE_OF, Config, TicketType

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Before every ticket: the sort value of a missing time, and the lower bound of "has a time"."""
SUBJECT_TOKEN = re.compile(r"\[#(\d{1,12})\]")


class Refused(Exception):
    """A command that cannot be carried out; `status` is the HTTP status that fits."""

    status = 422

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class Invalid(Refused):
    """A value is missing, unknown or of the wrong kind."""

    status = 422


def status_fields(ticket_type: TicketType, status: str) -> dict[str, Any]:
    """Return the stored status with its category and queue phase (the indexed view fields)."""
    found = ticket_type.status(status)
    if found is None:
        raise Invalid(f"status `{status}` is not part of the {ticket_type.name} workflow", fields=("status",))
    return {"status": found.key, "status_category": found.category, "phase": PHASE_OF[found.category]}


def new_document(
    *,
    ticket_id: str,
    number: int,
    title: str,
    ticket_type: TicketType,
    requester: dict[str, str],
    channel: str,
    actor: Actor,
    now: datetime,
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a complete new ticket document with every field of PRODUCT.md §4."""
    values = dict(values or {})
    new_status = values.pop("status", None) or (ticket_type.first("new") or ticket_type.statuses[0]).key
    custom = {k.removeprefix("custom."): values.pop(k) for k in [k for k in values if k.startswith("custom.")]}
    doc: dict[str, Any] = {
        "_id": ticket_id,
        "number": number,
        "title": title,
        "description": "",
        "type": ticket_type.key,
        **status_fields(ticket_type, new_status),
        "priority": "medium",
        "category": None,
        "group": None,
        "handler": None,
        "channel": channel,
        "mailbox": ticket_type.mailbox,
        "requester": requester,
        "organisation": None,
        "cc": [],
        "tags": [],
        "custom": custom,
        "followers": [],
        "parent": None,
        "children": [],
        "merged_into": None,
        "recurrence": None,
        "dormant_until": None,
        "wake_at": None,
        "attachments": [],
        "created_at": now,
        "updated_at": now,
        "last_updated_by": actor.model_dump(),
        "last_comment_at": None,
        "last_customer_comment_at": None,
        "first_response_at": None,
        "resolved_at": None,
        "closed_at": None,
        "sla": {"first_response_due": None, "resolution_due": None},
        "notify_mode": None,
        "link_token": secrets.token_urlsafe(24),
        "version": 1,
        "fv": {},
        "comments": [],
        "activity": [activity(now, actor, "created", f"via {channel}")],
        "applied": [],
        "message_ids": [],
    }
    doc.update(values)
    if doc["dormant_until"] is not None:
        doc["wake_at"] = doc["dormant_until"]
    return doc


@dataclass(frozen=True)
class Mailbox:
    """An inbound address and where its mail goes."""

    address: str
    name: str = "Support"
    type: str = "other"
    group: str | None = None


@dataclass(frozen=True)
class Candidates:
    """What the store found for an email's threading hints (looked up before deciding)."""

    by_our_message_id: dict[str, Any] | None = None
    our_message_id: str | None = None
    by_seen_message_id: dict[str, Any] | None = None
    seen_message_id: str | None = None
    by_subject_number: dict[str, Any] | None = None
    subject_number: int | None = None


@dataclass(frozen=True)
class Threading:
    """Where an email goes and why."""

    ticket: dict[str, Any] | None
    reason: str
    note: str | None = None


def subject_number(subject: str) -> int | None:
    """Return the ticket number of a `[#N]` token in a subject, if any."""
    match = SUBJECT_TOKEN.search(subject)
    return int(match.group(1)) if match else None


def participants(ticket: dict[str, Any]) -> set[str]:
    """Return the addresses allowed to reply to a ticket by its number: requester and CC."""
    found = {ticket["requester"]["email"].lower()}
    found.update(c["email"].lower() for c in ticket.get("cc", []))
    return found


def decide_thread(email: EmailReceived, found: Candidates) -> Threading:
    """Pair an email with a ticket: our signed Message-ID, then any Message-ID seen, then `[#N]` from a participant."""
    if found.by_our_message_id is not None:
        return Threading(found.by_our_message_id, f"reply to our message <{found.our_message_id}>")
    if found.by_seen_message_id is not None:
        return Threading(found.by_seen_message_id, f"references message <{found.seen_message_id}> of the ticket")
    if found.by_subject_number is not None:
        ticket = found.by_subject_number
        if email.sender.email.lower() in participants(ticket):
            return Threading(ticket, f"subject token [#{found.subject_number}] from a participant")
        return Threading(
            None,
            "new ticket",
            note=(
                f"The subject named ticket #{found.subject_number}, but {email.sender.email} is not a participant "
                "of it, so this became a new ticket."
            ),
        )
    if found.subject_number is not None:
        return Threading(
            None,
            "new ticket",
            note=f"The subject named ticket #{found.subject_number}, which does not exist.",
        )
    return Threading(None, "new ticket")


def customer_actor(email: EmailReceived) -> Actor:
    """Return the actor for mail from a customer."""
    return Actor(role="customer", email=email.sender.email, name=email.sender.name)


def snapshot(doc: dict[str, Any]) -> TicketSnapshot:
    """Return the event snapshot of a ticket document."""
    return TicketSnapshot(
        ticket_id=doc["_id"],
        number=doc["number"],
        title=doc["title"],
        status=doc["status"],
        priority=doc["priority"],
        type=doc["type"],
        group=doc.get("group"),
        handler=doc.get("handler"),
        channel=doc["channel"],
        mailbox=doc.get("mailbox"),
        requester=Address(**doc["requester"]),
        cc=tuple(Address(**c) for c in doc.get("cc", [])),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        version=doc["version"],
        link_token=doc["link_token"],
        source_message_id=doc.get("source_message_id"),
        source_auto_submitted=doc.get("source_auto_submitted", False),
        status_category=doc.get("status_category"),
        category=doc.get("category"),
        organisation=doc.get("organisation"),
        tags=tuple(doc.get("tags") or ()),
        custom=dict(doc.get("custom") or {}),
        first_response_at=doc.get("first_response_at"),
        resolved_at=doc.get("resolved_at"),
        last_customer_comment_at=doc.get("last_customer_comment_at"),
        wake_at=doc.get("wake_at"),
        recurrence=doc.get("recurrence"),
        notify_mode=doc.get("notify_mode"),
        sla=dict(doc.get("sla") or {}),
    )


def _comment_from_email(email: EmailReceived, comment_id: str, now: datetime) -> Comment:
    return Comment(
        comment_id=comment_id,
        visibility="public",
        author=customer_actor(email),
        channel="email",
        text=email.text,
        text_new=email.text_new if email.text_new != email.text else None,
        html=email.html,
        message_id=email.message_id,
        auto_submitted=email.auto_submitted,
        left_out=email.left_out,
        attachments=email.attachments,
        created_at=now,
    )


def stored_comment(comment: Comment, kind: str) -> dict[str, Any]:
    """Return a comment as the ticket keeps it: its files by id only (the ticket's `attachments` describes them).

    Who may see a file follows from the comments that list its id (`visible_attachments`).
    """
    ids = [a.attachment_id for a in comment.attachments]
    return {**comment.model_dump(exclude={"attachments"}), "kind": kind, **({"attachment_ids": ids} if ids else {})}


def distinct_files(files: Sequence[Attachment]) -> tuple[Attachment, ...]:
    """Return the files once each, in order (a retried upload form may name one twice)."""
    once: dict[str, Attachment] = {}
    for file in files:
        once.setdefault(file.attachment_id, file)
    return tuple(once.values())


def new_files(ticket: dict[str, Any], files: Sequence[Attachment]) -> tuple[Attachment, ...]:
    """Return the files not yet in the ticket's `attachments`, once each: a file is listed on a ticket once."""
    known = {a.get("attachment_id") for a in ticket.get("attachments") or ()}
    return tuple(a for a in distinct_files(files) if a.attachment_id not in known)


def visible_attachments(doc: dict[str, Any], comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the ticket's files that came with one of these comments or the description (no internal note's)."""
    ids = {i for c in comments for i in c.get("attachment_ids") or ()}
    ids.update(doc.get("description_attachment_ids") or ())
    return [a for a in doc.get("attachments") or () if a.get("attachment_id") in ids]


def activity(now: datetime, actor: Actor, action: str, detail: str) -> dict[str, Any]:
    """Return one row of a ticket's activity log."""
    return {"at": now, "actor": actor.model_dump(), "action": action, "detail": detail}


def new_ticket_from_email(
    email: EmailReceived,
    *,
    ticket_id: str,
    number: int,
    mailbox: Mailbox,
    config: Config,
    now: datetime,
    threading: Threading,
) -> tuple[dict[str, Any], list[Any]]:
    """Return the new ticket document for an email and the events to publish."""
    actor = customer_actor(email)
    ticket_type = config.type(mailbox.type) or config.types[0]
    cc = [c.model_dump() for c in email.cc if c.email != mailbox.address and c.email != email.sender.email]
    comment = _comment_from_email(email, derived_id("comment", ticket_id, "first"), now)
    doc = new_document(
        ticket_id=ticket_id,
        number=number,
        title=(email.subject.strip() or "(no subject)")[:1000],
        ticket_type=ticket_type,
        requester=email.sender.model_dump(),
        channel="email",
        actor=actor,
        now=now,
        values={
            "description": email.text,
            "group": mailbox.group,
            "mailbox": mailbox.address,
            "cc": cc,
            "attachments": [a.model_dump() for a in email.attachments],
            "last_comment_at": now,
            "last_customer_comment_at": now,
            "source_message_id": email.message_id,
            "source_auto_submitted": email.auto_submitted,
            "message_ids": [i for i in (email.message_id,) if i],
            "comments": [stored_comment(comment, "customer_comment")],
        },
    )
    doc["activity"] = [activity(now, actor, "created", f"from email to {email.mailbox} ({threading.reason})")]
    if threading.note:
        doc["activity"].append(activity(now, Actor(role="system"), "threading", threading.note))
    if email.auto_submitted:
        doc["activity"].append(activity(now, Actor(role="system"), "automatic mail", email.auto_reason or "automatic"))
    created = TicketCreated(
        ticket=snapshot(doc),
        description=email.text,
        actor=actor,
        cause=None,
        comment_id=comment.comment_id,
        left_out=comment.left_out,
        attachments=email.attachments,
    )
    return doc, [created]


@dataclass
class Change:
    """A change to an existing ticket: the update to apply and the events it makes."""

    set_fields: dict[str, Any] = field(default_factory=dict)
    push: dict[str, list[Any]] = field(default_factory=dict)
    add_to_set: dict[str, list[Any]] = field(default_factory=dict)
    pull: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    commands: list[Any] = field(default_factory=list)  # follow-up commands for other tickets, sent via the outbox


def customer_reply(ticket: dict[str, Any], email: EmailReceived, *, now: datetime, threading: Threading) -> Change:
    """Return what a customer's email reply does to a ticket: a public comment, nothing else.

    The status is not the tickets service's to move here: triggers' default rule ("customer's reply →
    Waiting for agent") does it on the `CommentAdded`, where an admin can change or switch it off.
    """
    actor = customer_actor(email)
    comment = _comment_from_email(email, derived_id("comment", ticket["_id"], email.message_id or email.raw_id), now)
    set_fields: dict[str, Any] = {
        "updated_at": now,
        "last_updated_by": actor.model_dump(),
        "last_comment_at": now,
        "last_customer_comment_at": now,
    }
    after = {**ticket, **{k: v for k, v in set_fields.items() if "." not in k}, "version": ticket["version"] + 1}
    change = Change(
        set_fields=set_fields,
        push={
            "comments": [stored_comment(comment, "customer_comment")],
            "activity": [activity(now, actor, "comment", f"customer reply by email ({threading.reason})")],
            "attachments": [a.model_dump() for a in email.attachments],
        },
        add_to_set={"message_ids": [i for i in (email.message_id,) if i]},
    )
    change.events.append(
        CommentAdded(
            ticket=snapshot(after),
            comment=comment,
            author_role="customer",
            kind="customer_comment",
            threading=threading.reason,
        )
    )
    return change


def bounce_recorded(email: EmailReceived, *, now: datetime, threading: Threading) -> Change:
    """Return what a delivery status notification about our mail does to its ticket: the log and the problem.

    No comment, no status change and no event for rules: a bounce is not the customer speaking.
    """
    bounce = email.bounce
    assert bounce is not None  # noqa: S101 - called for bounces only
    to = ", ".join(bounce.recipients) or "(recipient not stated)"
    words = f"{bounce.action}" + (f", status {bounce.status}" if bounce.status else "")
    detail = f"mail to {to} {'could not be delivered' if bounce.permanent else 'is delayed'} ({words})"
    if bounce.diagnostic:
        detail += f": {bounce.diagnostic[:500]}"
    problems = [
        {
            "address": address,
            "action": bounce.action,
            "status": bounce.status,
            "permanent": bounce.permanent,
            "diagnostic": (bounce.diagnostic or "")[:500],
            "at": now,
            "message_id": email.message_id,
        }
        for address in bounce.recipients or ("",)
    ]
    return Change(
        set_fields={"updated_at": now},
        push={
            "activity": [
                activity(now, Actor(role="system", name="mail"), "email bounced", f"{detail} ({threading.reason})")
            ],
            "delivery_problems": problems,
        },
        add_to_set={"message_ids": [i for i in (email.message_id,) if i]},
    )


def notification_recorded(
    *,
    message_id: str,
    to: str,
    subject: str,
    template: str,
    now: datetime,
    outcome: Literal["sent", "failed"],
    reason: str = "",
) -> Change:
    """Return what an outgoing mail does to its ticket: its Message-ID is remembered, the log says so."""
    actor = Actor(role="system", name="notify")
    if outcome == "sent":
        detail = f"{template} sent to {to}: {subject}"
        return Change(
            push={"activity": [activity(now, actor, "email sent", detail)]},
            add_to_set={"message_ids": [message_id]},
        )
    return Change(push={"activity": [activity(now, actor, "email failed", f"{template} to {to}: {reason}")]})
