"""Calls to the tickets service's HTTP API, always saying who is acting; it decides what they may see."""

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portal.domain import VIEWS, Actor
from portal.service_client import ServiceUnavailable, answer_of, refusal_of

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class TicketsUnavailable(Exception):
    """The tickets service could not be reached or gave no usable answer."""


class TicketNotFound(Exception):
    """No ticket with that number, or the actor may not see it."""


class CommandRefused(Exception):
    """The tickets service refused a command (not allowed, a workflow rule, a stale version, a bad value)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


CommentKind = Literal["public_reply", "internal_comment", "customer_comment"]
MAX_HEADER_NAME = 200
LIST_FILTERS = ("status", "priority", "group", "handler", "type", "category", "organisation", "requester")
"""The filters `GET /api/tickets` takes besides the view (each an exact value)."""
LIST_ORDERS = ("newest", "oldest")
"""How a list may be ordered by last activity; the first is the tickets service's default."""


class _Read(BaseModel):
    # The tickets service may add fields before the portal shows them; they must not break the page.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Person(_Read):
    """A contact: an email address and a display name."""

    email: str = Field(description="Email address.")
    name: str = Field(default="", description="Display name.")


class ActorRef(_Read):
    """Who wrote a comment or made a change."""

    role: str = Field(default="system", description="Role the actor acted in.")
    id: str | None = Field(default=None, description="User or contact id.")
    email: str | None = Field(default=None, description="Email address.")
    name: str = Field(default="", description="Display name.")

    @property
    def display_name(self) -> str:
        """The name to show."""
        return self.name or self.email or self.id or "System"


class TicketSummary(_Read):
    """A ticket as a list shows it."""

    ticket_id: str = Field(description="Stable id of the ticket.")
    number: int = Field(description="Human ticket number.")
    title: str = Field(description="Title.")
    status: str = Field(description="Status key.")
    status_category: str | None = Field(default=None, description="Category of the status, e.g. `closed`.")
    priority: str = Field(default="medium", description="Priority key.")
    type: str = Field(default="", description="Ticket type key.")
    group: str | None = Field(default=None, description="Response group key.")
    handler: str | None = Field(default=None, description="User id of the handler.")
    channel: str = Field(default="", description="Channel the ticket came in by.")
    mailbox: str | None = Field(default=None, description="Inbound mailbox address.")
    requester: Person | None = Field(default=None, description="The contact who asked.")
    created_at: datetime | None = Field(default=None, description="When the ticket was created.")
    updated_at: datetime | None = Field(default=None, description="When the ticket last changed.")
    last_customer_comment_at: datetime | None = Field(default=None, description="Last customer comment.")
    version: int = Field(default=1, description="Document version.")


class Comment(_Read):
    """One entry of the conversation."""

    comment_id: str = Field(description="Id of the comment.")
    visibility: Literal["public", "internal"] = Field(description="Public reply or internal note.")
    author: ActorRef = Field(description="Who wrote it.")
    channel: str = Field(default="", description="Channel it came by.")
    text: str = Field(default="", description="Plain text body (for email: the whole original).")
    text_new: str | None = Field(
        default=None, description="For email: the new part only, quoted history and signature folded away."
    )
    html: str | None = Field(default=None, description="HTML body, already sanitised by the tickets service.")
    created_at: datetime | None = Field(default=None, description="When it was written.")
    message_id: str | None = Field(default=None, description="Message-ID of the email, if any.")
    auto_submitted: bool = Field(default=False, description="True for automatic messages.")
    attachment_ids: list[str] = Field(default_factory=list, description="Files that came with it.")


class Activity(_Read):
    """One row of the activity log."""

    at: datetime | None = Field(default=None, description="When.")
    actor: ActorRef = Field(default_factory=ActorRef, description="Who.")
    action: str = Field(description="What happened, e.g. `status_changed`.")
    detail: Any = Field(default=None, description="What changed (text or a small object).")


class Attachment(_Read):
    """A file kept with a ticket; its bytes are served by ingest."""

    attachment_id: str = Field(description="Id to fetch the bytes with.")
    filename: str = Field(default="", description="File name as sent, made safe.")
    content_type: str = Field(default="application/octet-stream", description="MIME type as declared.")
    size: int = Field(default=0, description="Size in bytes.")
    content_id: str | None = Field(default=None, description="Content-ID of an inline part (cid: link).")


class TicketDetail(TicketSummary):
    """A ticket with its conversation and activity log."""

    description: str = Field(default="", description="Description.")
    cc: list[Person] = Field(default_factory=list, description="Contacts who get a copy.")
    comments: list[Comment] = Field(default_factory=list, description="The conversation, oldest first.")
    activity: list[Activity] = Field(default_factory=list, description="The activity log, oldest first.")
    attachments: list[Attachment] = Field(default_factory=list, description="Files that came with the ticket.")
    # The ticket page's fields and contact panels (workspace_ticket) read these.
    category: str | None = Field(default=None, description="Category key.")
    tags: list[str] = Field(default_factory=list, description="Tags.")
    organisation: str | None = Field(default=None, description="The requester's organisation.")
    custom: dict[str, Any] = Field(default_factory=dict, description="Custom field values by key.")
    followers: list[str] = Field(default_factory=list, description="User ids of the staff who follow it.")
    parent: int | None = Field(default=None, description="Number of the parent ticket, if linked.")
    children: list[int] = Field(default_factory=list, description="Numbers of the linked child tickets.")
    merged_into: int | None = Field(default=None, description="Number of the ticket it was merged into.")
    last_updated_by: ActorRef | None = Field(default=None, description="Who changed it last.")


class TicketPage(_Read):
    """One page of a ticket list."""

    items: list[TicketSummary] = Field(description="The tickets on this page.")
    next_cursor: str | None = Field(default=None, description="Opaque cursor of the next page, if any.")
    counts: dict[str, int] | None = Field(default=None, description="Every view's count, when asked with the page.")


class ViewCounts(_Read):
    """How many tickets each view holds."""

    views: dict[str, int] = Field(description="Count per view key.")


class Tickets(Protocol):
    """What the pages need from the tickets service (`TicketsClient`; tests use a fake)."""

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
        """Return one page of a view, narrowed by `filters` (`LIST_FILTERS`) and in `order` (`LIST_ORDERS`).

        `with_counts` adds every view's count (`TicketPage.counts`) in the same request.
        """

    async def counts(self, actor: Actor) -> dict[str, int]:
        """Return the number of tickets in each view."""

    async def get_ticket(self, actor: Actor, number: int) -> TicketDetail:
        """Return one ticket; raise `TicketNotFound` when missing or not visible to the actor."""

    async def get_by_link(self, token: str) -> TicketDetail:
        """Return the customer's view of a ticket by its secret link token; `TicketNotFound` when none has it."""

    async def update_ticket(
        self,
        actor: Actor,
        number: int,
        fields: Mapping[str, Any],
        *,
        command_id: str,
        expected_version: int | None = None,
    ) -> None:
        """Change fields of a ticket as the actor; raise `CommandRefused` when the tickets service says no."""

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
        """Add a comment (with files uploaded to ingest) as the actor; `CommandRefused` when tickets says no."""

    async def call(
        self,
        method: str,
        path: str,
        actor: Actor,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Make any call to the tickets API as the actor and return its JSON (see `service_client`)."""

    async def aclose(self) -> None:
        """Release connections."""


class TicketsClient:
    """The tickets service over HTTP, authenticated with the service token."""

    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {service_token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @staticmethod
    def _actor_headers(actor: Actor) -> dict[str, str]:
        headers = {
            "X-Actor-Id": actor.id,
            "X-Actor-Role": actor.role,
            "X-Actor-Email": actor.email,
            "X-Actor-Groups": ",".join(actor.groups),
        }
        # Header values are ASCII (and tickets takes names up to 200 characters); a name that does not fit
        # stays out, and the tickets service shows the address instead.
        if actor.name and len(actor.name) <= MAX_HEADER_NAME and actor.name.isascii() and actor.name.isprintable():
            headers["X-Actor-Name"] = actor.name
        # An organisation the header cannot carry stays out too: the customer then sees their own tickets only.
        org = actor.organisation
        if org and len(org) <= MAX_HEADER_NAME and org.isascii() and org.isprintable():
            headers["X-Actor-Organisation"] = org
        return headers

    async def _get(self, path: str, actor: Actor, params: dict[str, Any] | None = None) -> httpx.Response:
        for attempt in (1, 2):
            try:
                response = await self._http.get(path, params=params, headers=self._actor_headers(actor))
                break
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                # A kept-alive connection the service closed just as the request went out (seen once in
                # thousands under load): a read is safe to send again, once, on a fresh connection.
                if attempt == 2:
                    log.warning("tickets service unreachable: GET %s: %r", path, exc)
                    raise TicketsUnavailable(f"tickets service unreachable: {type(exc).__name__}") from exc
                log.info("asking the tickets service again: GET %s: %r", path, exc)
            except httpx.HTTPError as exc:
                log.warning("tickets service unreachable: GET %s: %s", path, exc)
                raise TicketsUnavailable(f"tickets service unreachable: {type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            log.error("tickets service refused our service token (HTTP %s) on GET %s", response.status_code, path)
            raise TicketsUnavailable(f"tickets service refused the portal (HTTP {response.status_code})")
        if response.status_code >= 500:
            log.warning("tickets service failed: GET %s: HTTP %s", path, response.status_code)
            raise TicketsUnavailable(f"tickets service error (HTTP {response.status_code})")
        return response

    @staticmethod
    def _parse(model: type[M], response: httpx.Response, what: str) -> M:
        if response.status_code != 200:
            log.warning("tickets service answered %s with HTTP %s", what, response.status_code)
            raise TicketsUnavailable(f"unexpected answer from the tickets service (HTTP {response.status_code})")
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            log.warning("tickets service answered %s with an unreadable body: %s", what, exc)
            raise TicketsUnavailable("unreadable answer from the tickets service") from exc

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
        """Return one page of a view, narrowed by `filters` (`LIST_FILTERS`) and in `order` (`LIST_ORDERS`).

        `with_counts` adds every view's count (`TicketPage.counts`) in the same request.
        """
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        unknown = set(filters or {}) - set(LIST_FILTERS)
        if unknown or (order is not None and order not in LIST_ORDERS):
            raise ValueError(f"unknown list filters {sorted(unknown)} or order {order!r}")
        params: dict[str, Any] = {"view": view, "limit": limit, **(filters or {})}
        if order and order != LIST_ORDERS[0]:
            params["order"] = order
        if cursor:
            params["cursor"] = cursor
        if with_counts:
            params["counts"] = "true"
        return self._parse(TicketPage, await self._get("/api/tickets", actor, params), "the ticket list")

    async def counts(self, actor: Actor) -> dict[str, int]:
        """Return the number of tickets in each view."""
        return self._parse(ViewCounts, await self._get("/api/tickets/counts", actor), "the view counts").views

    async def get_ticket(self, actor: Actor, number: int) -> TicketDetail:
        """Return one ticket; raise `TicketNotFound` when missing or not visible to the actor."""
        response = await self._get(f"/api/tickets/{int(number)}", actor)
        if response.status_code == 404:
            raise TicketNotFound(number)
        return self._parse(TicketDetail, response, f"ticket #{number}")

    async def get_by_link(self, token: str) -> TicketDetail:
        """Return the customer's view of a ticket by its secret link token; `TicketNotFound` when none has it."""
        visitor = Actor(id="ticket-link", role="customer", email="")
        response = await self._get(f"/api/ticket-links/{token}", visitor)
        if response.status_code in (404, 422):
            raise TicketNotFound(token)
        return self._parse(TicketDetail, response, "a ticket link")

    async def update_ticket(
        self,
        actor: Actor,
        number: int,
        fields: Mapping[str, Any],
        *,
        command_id: str,
        expected_version: int | None = None,
    ) -> None:
        """Change fields of a ticket as the actor; raise `CommandRefused` when the tickets service says no."""
        body: dict[str, Any] = {"command_id": command_id, "fields": dict(fields)}
        if expected_version is not None:
            body["expected_version"] = expected_version
        await self._command("PATCH", f"/api/tickets/{int(number)}", actor, body, number)

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
        """Add a comment (with files uploaded to ingest) as the actor; `CommandRefused` when tickets says no."""
        body: dict[str, Any] = {"command_id": command_id, "kind": kind, "text": text, "channel": channel}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        await self._command("POST", f"/api/tickets/{int(number)}/comments", actor, body, number)

    async def _command(self, method: str, path: str, actor: Actor, body: dict[str, Any], number: int) -> None:
        # The answer's ticket is not read: the page that follows reads it afresh, and a command that was
        # applied must not look failed because its answer could not be parsed.
        try:
            response = await self._http.request(method, path, json=body, headers=self._actor_headers(actor))
        except httpx.HTTPError as exc:
            log.warning("tickets service unreachable: %s %s: %s", method, path, exc)
            raise TicketsUnavailable(f"tickets service unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if status in (200, 201, 204):
            return
        if status == 401:
            log.error("tickets service refused our service token on %s %s", method, path)
            raise TicketsUnavailable("tickets service refused the portal (HTTP 401)")
        if status == 404:
            raise TicketNotFound(number)
        if status >= 500 or status < 400:
            log.warning("tickets service failed: %s %s: HTTP %s", method, path, status)
            raise TicketsUnavailable(f"tickets service error (HTTP {status})")
        message, _ = refusal_of(response, "the tickets service refused this")
        log.info("tickets service refused %s %s for %s (HTTP %s): %s", method, path, actor.id, status, message)
        raise CommandRefused(status, message)

    async def call(
        self,
        method: str,
        path: str,
        actor: Actor,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Make any call to the tickets API as the actor and return its JSON (see `service_client`)."""
        try:
            response = await self._http.request(
                method, path, params=dict(params) if params else None, json=json, headers=self._actor_headers(actor)
            )
        except httpx.HTTPError as exc:
            log.warning("tickets service unreachable: %s %s: %s", method, path, exc)
            raise ServiceUnavailable("tickets", f"unreachable ({type(exc).__name__})") from exc
        return answer_of("tickets", method, path, response)

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()
