"""In-memory stand-ins for the user store and the tickets, ingest and triggers services."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from portal.domain import VIEWS, Actor, EmailTaken, User
from portal.ingest_client import (
    Download,
    IngestNotFound,
    IngestUnavailable,
    QuarantineEntry,
    Reprocessed,
    UploadedFile,
    UploadRefused,
)
from portal.service_client import ServiceNotFound, ServiceUnavailable
from portal.tickets_client import (
    CommandRefused,
    CommentKind,
    TicketDetail,
    TicketNotFound,
    TicketPage,
    TicketsUnavailable,
)
from portal.triggers_client import FiringRecord, TriggersUnavailable


class FakeUsers:
    """Users kept in a dict, with the same contract as `store.UserStore`."""

    def __init__(self) -> None:
        self.by_id_: dict[str, User] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def by_email(self, email: str) -> User | None:
        return next((u for u in self.by_id_.values() if u.email == email), None)

    async def by_id(self, user_id: str) -> User | None:
        return self.by_id_.get(user_id)

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        return {i: self.by_id_[i].display_name for i in user_ids if i in self.by_id_}

    async def staff(self) -> list[User]:
        return [u for u in self.by_id_.values() if u.role != "customer" and not u.disabled]

    async def set_language(self, user_id: str, language: str) -> None:
        self.by_id_[user_id] = replace(self.by_id_[user_id], language=language)

    async def any_admin(self) -> User | None:
        return next((u for u in self.by_id_.values() if u.role == "admin" and not u.disabled), None)

    async def add(self, user: User) -> None:
        if await self.by_email(user.email):
            raise EmailTaken(user.email)
        self.by_id_[user.id] = user

    async def set_password_hash(self, user_id: str, password_hash: str, *, end_sessions: bool) -> None:
        user = self.by_id_[user_id]
        version = user.session_version + (1 if end_sessions else 0)
        self.by_id_[user_id] = replace(user, password_hash=password_hash, session_version=version)

    async def list_users(
        self, query: str = "", *, role: str | None = None, group: str | None = None, limit: int = 500
    ) -> list[User]:
        needle = query.strip().lower()
        found = [
            u
            for u in self.by_id_.values()
            if (not role or u.role == role)
            and (not group or group in u.groups)
            and (not needle or needle in u.name.lower() or needle in u.email)
        ]
        return sorted(found, key=lambda u: u.email)[:limit]

    async def update_user(self, user: User, *, end_sessions: bool) -> None:
        stored = self.by_id_[user.id]
        self.by_id_[user.id] = replace(
            stored,
            name=user.name,
            role=user.role,
            groups=user.groups,
            organisation=user.organisation,
            language=user.language,
            disabled=user.disabled,
            session_version=stored.session_version + (1 if end_sessions else 0),
        )


def ticket(number: int = 1, **overrides: Any) -> dict[str, Any]:
    """Return a ticket as the tickets service's API sends it."""
    now = datetime(2025, 3, 4, 9, 30, tzinfo=UTC).isoformat()
    data: dict[str, Any] = {
        "ticket_id": f"t-{number}",
        "number": number,
        "title": "Printer on floor 2 is jammed",
        "status": "new",
        "priority": "medium",
        "type": "fault",
        "group": None,
        "handler": None,
        "channel": "email",
        "mailbox": "support@example.com",
        "requester": {"email": "alice@example.com", "name": "Alice Andersson"},
        "created_at": now,
        "updated_at": now,
        "last_customer_comment_at": now,
        "version": 1,
        "description": "It makes a grinding noise.\nAnd then it stops.",
        "cc": [],
        "comments": [
            {
                "comment_id": "c-1",
                "visibility": "public",
                "author": {
                    "role": "customer",
                    "id": None,
                    "email": "alice@example.com",
                    "name": "Alice Andersson",
                },
                "channel": "email",
                "text": "It makes a grinding noise.\nAnd then it stops.",
                "html": None,
                "created_at": now,
                "message_id": "<m1@example.com>",
                "auto_submitted": False,
            }
        ],
        "activity": [
            {
                "at": now,
                "actor": {"role": "system", "id": None, "email": None, "name": ""},
                "action": "ticket_created",
                "detail": {"channel": "email"},
            }
        ],
    }
    data.update(overrides)
    return data


@dataclass(frozen=True)
class SentCommand:
    """A command the portal sent to the tickets service."""

    name: str
    actor: Actor
    number: int
    body: dict[str, Any] = field(default_factory=dict)


Route = Callable[..., Any]


class FakeService:
    """A service's HTTP API for `call`: answers by (METHOD, path) from `routes`, every call recorded.

    A route is a value (returned as it is) or a function of (params, json, actor) that returns the answer
    or raises `ServiceRefused` / `ServiceNotFound` like the real service would. Unknown routes are 404s.
    """

    def __init__(self, name: str = "service") -> None:
        self.name = name
        self.routes: dict[tuple[str, str], Any] = {}
        self.calls: list[tuple[str, str, Any, Any]] = []
        self.down = False

    def route(self, method: str, path: str, answer: Any) -> None:
        """Answer calls of `method` to `path` with `answer` (a value or a function)."""
        self.routes[(method.upper(), path)] = answer

    async def call(
        self,
        method: str,
        path: str,
        actor: Actor | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        self.calls.append((method.upper(), path, dict(params or {}), json))
        if self.down:
            raise ServiceUnavailable(self.name, "unreachable (ConnectError)")
        answer = self.routes.get((method.upper(), path))
        if answer is None:
            raise ServiceNotFound(path)
        if callable(answer):
            return answer(params=dict(params or {}), json=json, actor=actor)
        return deepcopy(answer)

    async def aclose(self) -> None:
        return None


class FakeTickets:
    """The tickets service's answers, with the actor of every call and every command sent recorded.

    Like the real service, a command id changes a ticket once; `refusal`, when set, refuses every command.
    """

    def __init__(self, tickets: list[dict[str, Any]] | None = None) -> None:
        self.tickets = {t["number"]: t for t in (tickets if tickets is not None else [ticket()])}
        self.actors: list[Actor] = []
        self.views: list[tuple[str, str | None]] = []
        self.lists: list[dict[str, Any]] = []
        self.count_requests = 0  # GET /api/tickets/counts on its own (a list asked with_counts is not one)
        """Every list asked for: view, cursor, filters and order."""
        self.down = False
        self.next_cursor: str | None = None
        self.commands: list[SentCommand] = []
        self.applied: set[tuple[int, str]] = set()
        self.refusal: CommandRefused | None = None
        self.api = FakeService("tickets")
        """Answers of `call` (the tickets API beyond the typed methods), by (METHOD, path)."""

    def _call(self, actor: Actor) -> None:
        self.actors.append(actor)
        if self.down:
            raise TicketsUnavailable("connection refused")

    async def list_tickets(
        self,
        actor: Actor,
        view: str,
        *,
        cursor: str | None = None,
        limit: int = 50,
        filters: Mapping[str, str] | None = None,
        order: str | None = None,
        with_counts: bool = False,
    ) -> TicketPage:
        self._call(actor)
        self.views.append((view, cursor))
        self.lists.append(
            {"view": view, "cursor": cursor, "filters": dict(filters or {}), "order": order, "counts": with_counts}
        )
        counts = self._counts() if with_counts else None
        page = {"items": list(self.tickets.values()), "next_cursor": self.next_cursor, "counts": counts}
        return TicketPage.model_validate(page)

    async def counts(self, actor: Actor) -> dict[str, int]:
        self._call(actor)
        self.count_requests += 1
        return self._counts()

    def _counts(self) -> dict[str, int]:
        return dict.fromkeys(VIEWS, len(self.tickets)) | {"mine": 0}

    async def get_ticket(self, actor: Actor, number: int) -> TicketDetail:
        self._call(actor)
        if number not in self.tickets:
            raise TicketNotFound(number)
        return TicketDetail.model_validate(self.tickets[number])

    async def get_by_link(self, token: str) -> TicketDetail:
        found = next((t for t in self.tickets.values() if t.get("link_token") == token), None)
        if found is None:
            raise TicketNotFound(token)
        public = [c for c in found["comments"] if c["visibility"] == "public"]
        return TicketDetail.model_validate({**found, "comments": public, "activity": []})

    def _command(self, command: SentCommand) -> bool:
        """Record a command; tell whether it changes the ticket (a new id for a ticket the actor may see)."""
        self._call(command.actor)
        self.commands.append(command)
        if self.refusal is not None:
            raise self.refusal
        if command.number not in self.tickets:
            raise TicketNotFound(command.number)
        key = (command.number, command.body["command_id"])
        if key in self.applied:
            return False
        self.applied.add(key)
        self.tickets[command.number]["version"] += 1
        return True

    async def update_ticket(
        self,
        actor: Actor,
        number: int,
        fields: Mapping[str, Any],
        *,
        command_id: str,
        expected_version: int | None = None,
    ) -> None:
        body = {"command_id": command_id, "fields": dict(fields), "expected_version": expected_version}
        if self._command(SentCommand("update", actor, number, body)):
            self.tickets[number].update(fields)

    async def add_comment(
        self,
        actor: Actor,
        number: int,
        *,
        kind: CommentKind,
        text: str,
        command_id: str,
        channel: str = "agent",
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        body: dict[str, Any] = {"command_id": command_id, "kind": kind, "text": text, "channel": channel}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        if self._command(SentCommand("comment", actor, number, body)):
            self.tickets[number]["comments"].append(
                {
                    "comment_id": f"c-{command_id}",
                    "visibility": "internal" if kind == "internal_comment" else "public",
                    "author": {"role": actor.role, "id": actor.id, "email": actor.email, "name": actor.name},
                    "channel": channel,
                    "text": text,
                    "created_at": datetime(2025, 3, 4, 11, 0, tzinfo=UTC).isoformat(),
                    **({"attachment_ids": [a["attachment_id"] for a in attachments]} if attachments else {}),
                }
            )
            self.tickets[number].setdefault("attachments", []).extend(dict(a) for a in attachments)

    async def call(self, method: str, path: str, actor: Actor, **kwargs: Any) -> Any:
        self.actors.append(actor)
        return await self.api.call(method, path, actor, **kwargs)

    async def aclose(self) -> None:
        return None


class FakeIngest:
    """Ingest's files and quarantine in dicts, with every call recorded."""

    def __init__(self) -> None:
        self.files: dict[str, Download] = {}
        self.entries: list[dict[str, Any]] = []
        self.outcomes: dict[str, Reprocessed] = {}
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self.uploads: list[tuple[UploadedFile, str]] = []
        self.upload_limit = 25 * 1024 * 1024

    def _call(self, what: str, key: str) -> None:
        self.calls.append((what, key))
        if self.down:
            raise IngestUnavailable("connection refused")

    async def attachment(self, attachment_id: str) -> Download:
        self._call("attachment", attachment_id)
        if attachment_id not in self.files:
            raise IngestNotFound(attachment_id)
        return self.files[attachment_id]

    async def quarantine(self) -> list[QuarantineEntry]:
        self._call("quarantine", "")
        return [QuarantineEntry.model_validate(e) for e in self.entries]

    async def quarantine_raw(self, quarantine_id: str) -> Download:
        self._call("raw", quarantine_id)
        if quarantine_id not in self.files:
            raise IngestNotFound(quarantine_id)
        return self.files[quarantine_id]

    async def reprocess(self, quarantine_id: str) -> Reprocessed:
        self._call("reprocess", quarantine_id)
        if quarantine_id not in self.outcomes:
            raise IngestNotFound(quarantine_id)
        return self.outcomes[quarantine_id]

    async def upload(self, filename: str, content_type: str, data: bytes, uploaded_by: str) -> UploadedFile:
        """Keep the file in `files` under a fresh upload id; `upload_limit` bytes at most, like ingest's."""
        self._call("upload", filename)
        if not data:
            raise UploadRefused(f"{filename} is empty.")
        if len(data) > self.upload_limit:
            raise UploadRefused(f"{filename} is larger than {self.upload_limit} bytes, the upload limit.")
        uploaded = UploadedFile(
            attachment_id=f"upload:{len(self.uploads) + 1:032x}",
            filename=filename or "attachment",
            content_type=content_type or "application/octet-stream",
            size=len(data),
        )
        self.uploads.append((uploaded, uploaded_by))
        self.files[uploaded.attachment_id] = Download(data, {"content-type": uploaded.content_type})
        return uploaded

    async def aclose(self) -> None:
        return None


def firing_record(ticket_id: str = "t-1", **overrides: Any) -> dict[str, Any]:
    """Return a record of triggers' firing log as `GET /firings` sends it: an agent's reply and two rules."""
    data: dict[str, Any] = {
        "event_id": "e-1",
        "event": "comment.added",
        "event_type": "CommentAdded",
        "ticket_id": ticket_id,
        "ticket_number": 1,
        "correlation_id": "e-1",
        "handled_at": datetime(2025, 3, 4, 10, 15, tzinfo=UTC).isoformat(),
        "firings": [
            {
                "rule_id": "email-agent-reply",
                "rule_name": "Agent's reply → mail to customer",
                "depth": 0,
                "conditions_met": ["comment.visibility is 'public'"],
                "actions": [{"type": "send_template", "template": "agent_reply", "target": "customer"}],
                "suppressed": [],
                "notification_ids": ["n-1"],
                "commands": [],
            },
            {
                "rule_id": "agent-reply-waiting-for-customer",
                "rule_name": "Agent's reply → Waiting for customer",
                "depth": 0,
                "conditions_met": ["ticket.status_category is 'open'"],
                "actions": [{"type": "set_fields", "fields": {"status_category": "waiting_for_customer"}}],
                "suppressed": [],
                "notification_ids": [],
                "commands": ["cmd-1"],
            },
        ],
        "cut_offs": [],
        "webhooks": [],
    }
    data.update(overrides)
    return data


class FakeTriggers:
    """Triggers' firing log per ticket id, with every ticket id asked for recorded."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.asked: list[str] = []
        self.down = False
        self.api = FakeService("triggers")
        """Answers of `call` (the rules, calendars and SLA API), by (METHOD, path)."""

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.api.call(method, path, **kwargs)

    async def firings(self, ticket_id: str, *, limit: int = 100) -> list[FiringRecord]:
        self.asked.append(ticket_id)
        if self.down:
            raise TriggersUnavailable("triggers unreachable: ReadTimeout")
        return [FiringRecord.model_validate(r) for r in self.records.get(ticket_id, [])[:limit]]

    async def aclose(self) -> None:
        return None


class CustomerTickets(FakeTickets):
    """`FakeTickets` that decides what a customer sees as the tickets service does (tickets.access).

    A customer gets the tickets they asked (by requester email) and, when `customers_see_organisation` is
    on and the actor names an organisation, their organisation's (the ticket's `organisation`). Lists
    apply the `requester` and `organisation` filters and come newest first. Like the real service's bug
    would, `get_ticket` leaves internal comments in: the portal must drop them itself.
    """

    def __init__(self, tickets: list[dict[str, Any]] | None = None, *, customers_see_organisation: bool = False):
        super().__init__(tickets)
        self.customers_see_organisation = customers_see_organisation

    def sees(self, actor: Actor, found: Mapping[str, Any]) -> bool:
        """Tell whether the actor may see the ticket."""
        if actor.role != "customer":
            return True
        if (found.get("requester") or {}).get("email", "").lower() == actor.email.lower():
            return True
        org = found.get("organisation")
        return bool(self.customers_see_organisation and actor.organisation and org == actor.organisation)

    async def list_tickets(
        self,
        actor: Actor,
        view: str,
        *,
        cursor: str | None = None,
        limit: int = 50,
        filters: Mapping[str, str] | None = None,
        order: str | None = None,
        with_counts: bool = False,
    ) -> TicketPage:
        self._call(actor)
        self.views.append((view, cursor))
        self.lists.append({"view": view, "cursor": cursor, "filters": dict(filters or {}), "order": order})
        wanted = dict(filters or {})
        items = [
            t
            for t in self.tickets.values()
            if self.sees(actor, t)
            and ("requester" not in wanted or (t.get("requester") or {}).get("email") == wanted["requester"])
            and ("organisation" not in wanted or t.get("organisation") == wanted["organisation"])
        ]
        items.sort(key=lambda t: t["updated_at"], reverse=True)
        counts = self._counts() if with_counts else None
        return TicketPage.model_validate({"items": items[:limit], "next_cursor": self.next_cursor, "counts": counts})

    async def get_ticket(self, actor: Actor, number: int) -> TicketDetail:
        self._call(actor)
        if number not in self.tickets or not self.sees(actor, self.tickets[number]):
            raise TicketNotFound(number)
        return TicketDetail.model_validate(self.tickets[number])
