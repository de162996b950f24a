"""The tickets HTTP API: queries and commands for the portal and integrations, OpenAPI-documented.

Commands here and from Kafka go through the same `Handlers.execute`; every route checks the acting
user (headers set by the calling service, which holds the service token).
"""

import asyncio
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from contracts.commands import (
    AddComment,
    CloseTicket,
    CreateTicket,
    DeleteTicket,
    FieldValue,
    FollowTicket,
    LinkTicket,
    MergeTicket,
    SplitTicket,
    UpdateTicket,
)
from contracts.envelope import derived_id, new_id
from contracts.models import UPLOAD_ID_PATTERN, Actor, Address, Attachment, Channel
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from hdkit.auth import require_service_token
from prometheus_client import CollectorRegistry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from tickets.access import AGENT_ONLY_VIEWS, VIEWS, View, view_filters, viewer
from tickets.config import Config
from tickets.countcache import CountCache
from tickets.domain import Mailbox, visible_attachments
from tickets.handlers import Conflict, Handlers
from tickets.listcache import AnswersMetric, ListCache
from tickets.search import InvalidQuery, SearchIndex
from tickets.stats import Statistics, Stats, UnknownTimeZone
from tickets.store import SUMMARY_FIELDS, Store
from tickets.workflow import Refused, Viewer, can_see

KEY_PARAM = r"^[A-Za-z0-9_.@+-]{1,100}$"
MAX_FILES = 20
_UPLOAD_ID = re.compile(UPLOAD_ID_PATTERN)


def uploaded_only(attachment: Attachment) -> Attachment:
    """Accept only a file uploaded to ingest: a caller cannot name another ticket's mail attachment by its id."""
    # Mail attachment ids are derived from the message; upload ids are 128 random bits (docs/tickets.md).
    if not _UPLOAD_ID.fullmatch(attachment.attachment_id):
        raise ValueError("attachment_id must be an id from ingest's upload route (`upload:` and 32 hex digits)")
    return attachment


Uploaded = Annotated[Attachment, AfterValidator(uploaded_only)]


class Summary(BaseModel):
    """A ticket in a list."""

    ticket_id: str
    number: int
    title: str
    status: str
    status_category: str | None = None
    phase: str | None = None
    priority: str
    type: str
    category: str | None = None
    group: str | None = None
    handler: str | None = None
    channel: str
    mailbox: str | None = None
    requester: Address
    organisation: str | None = None
    tags: list[str] = []
    created_at: datetime
    updated_at: datetime
    last_updated_by: dict[str, Any] | None = None
    last_comment_at: datetime | None = None
    last_customer_comment_at: datetime | None = None
    wake_at: datetime | None = None
    version: int


class Page(BaseModel):
    """One page of a ticket list."""

    items: list[Summary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    counts: dict[str, int] | None = Field(
        default=None, description="With `counts=true`: the ticket count of every view, as `GET /tickets/counts`."
    )


class Counts(BaseModel):
    """How many tickets each view holds for the viewer."""

    views: dict[str, int]


class Detail(Summary):
    """A whole ticket: every field, the conversation and the activity log."""

    description: str = ""
    cc: list[Address] = []
    custom: dict[str, Any] = {}
    followers: list[str] = []
    parent: int | None = None
    children: list[int] = []
    merged_into: int | None = None
    recurrence: dict[str, Any] | None = None
    dormant_until: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    sla: dict[str, Any] = {}
    notify_mode: Literal["never", "link", "email"] | None = Field(
        default=None, description="The ticket's own notify mode for customer mail; null: the global setting."
    )
    attachments: list[dict[str, Any]] = []
    delivery_problems: list[dict[str, Any]] = []
    comments: list[dict[str, Any]]
    activity: list[dict[str, Any]]


class Body(BaseModel):
    """Request bodies refuse unknown keys."""

    model_config = ConfigDict(extra="forbid")
    command_id: str = Field(
        default_factory=new_id,
        min_length=8,
        max_length=100,
        description="Idempotency key: send the same one again after a timeout and the ticket changes once.",
    )


class CreateBody(Body):
    """A new ticket."""

    channel: Channel = "api"
    template: str | None = Field(default=None, max_length=40)
    requester: Address | None = None
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    attachments: list[Uploaded] = Field(
        default_factory=list, max_length=MAX_FILES, description="Files uploaded to ingest for the first message."
    )


class UpdateBody(Body):
    """Fields to change (assign: group/handler; move: type/group)."""

    expected_version: int | None = Field(default=None, ge=1)
    fields: dict[str, FieldValue] = Field(min_length=1)


class CommentBody(Body):
    """A reply, comment or solution note."""

    expected_version: int | None = Field(default=None, ge=1)
    kind: Literal["public_reply", "internal_comment", "customer_comment", "solution_note"]
    text: str = Field(min_length=1, max_length=1_000_000)
    html: str | None = Field(default=None, max_length=1_000_000)
    channel: Channel = "agent"
    attachments: list[Uploaded] = Field(
        default_factory=list, max_length=MAX_FILES, description="Files uploaded to ingest (`POST /api/attachments`)."
    )


class BulkBody(Body):
    """The same field changes for many tickets of a queue."""

    numbers: list[Annotated[int, Field(ge=1, le=10**12)]] = Field(min_length=1, max_length=500)
    fields: dict[str, FieldValue] = Field(min_length=1)


class BulkResult(BaseModel):
    """What a bulk update did to each ticket."""

    updated: list[int]
    refused: dict[int, str] = Field(description="Ticket number → why it was not changed.")


class FollowBody(Body):
    """Follow or unfollow."""

    follow: bool = True


class CloseBody(Body):
    """Close a ticket."""

    expected_version: int | None = Field(default=None, ge=1)
    close_children: bool | None = None


class LinkBody(Body):
    """Link to a parent ticket, or unlink (null)."""

    expected_version: int | None = Field(default=None, ge=1)
    parent: int | None = Field(ge=1, le=10**12)


class MergeBody(Body):
    """Merge into another ticket."""

    expected_version: int | None = Field(default=None, ge=1)
    into: int = Field(ge=1, le=10**12)


class SplitBody(Body):
    """Comments that start a new ticket."""

    comment_ids: list[str] = Field(min_length=1, max_length=500)
    title: str | None = Field(default=None, max_length=1000)


class ConfigBody(BaseModel):
    """The whole ticket configuration with the version it replaces."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=0, description="Version read with GET; a stale one is refused (409).")
    config: Config


class TemplateBody(BaseModel):
    """A ticket template: starting values of a new ticket and instructions for the handler."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    solution: str = Field(default="", max_length=100_000)
    instructions: str = Field(default="", max_length=100_000)


class MailboxBody(BaseModel):
    """A mailbox as sent to `PUT /api/mailboxes/{address}`; the address comes from the path."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="The From name of its mail, e.g. `Support`.")
    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="The ticket type its new tickets get.")
    group: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="The group its new tickets go to; none: none."
    )


MAILBOX_ADDRESS = r"^[^@\s/]{1,200}@[^@\s/]{1,120}$"


class Undeliverable(BaseModel):
    """Why mail to an address is no longer sent: a report that delivery failed for good."""

    since: datetime = Field(description="When the address was marked (UTC).")
    status: str | None = Field(default=None, description="Enhanced status code of the report, e.g. `5.1.1`.")
    diagnostic: str = Field(default="", description="The remote server's words, if given.")


class Lifted(BaseModel):
    """The last time an agent lifted the address's undeliverable mark."""

    at: datetime = Field(description="When (UTC).")
    by: Actor = Field(description="Who.")


class Contact(BaseModel):
    """A person who wrote to us or whom we wrote to, with the state of their address."""

    email: str
    name: str = ""
    created_at: datetime | None = None
    undeliverable: Undeliverable | None = Field(
        default=None, description="Set while mail to the address is suppressed (it bounced for good)."
    )
    lifted: Lifted | None = Field(default=None, description="Set when an agent lifted the last mark.")


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "ticket_id": doc["_id"]}


def refused_response(exc: Refused) -> JSONResponse:
    """Turn a refused command into its HTTP answer, naming the fields concerned."""
    return JSONResponse(
        status_code=exc.status, content={"detail": exc.message, "fields": list(exc.fields), "error": type(exc).__name__}
    )


def router(
    store: Store,
    handlers: Handlers,
    token: str,
    *,
    search: SearchIndex | None = None,
    counts_cache_seconds: float = 0.0,
    list_cache_seconds: float = 0.0,
    metrics: CollectorRegistry | None = None,
) -> APIRouter:
    """Return the API routes, all behind the service token and the acting user's access."""
    view_counts = CountCache(lambda query: store.count([query]), ttl=counts_cache_seconds)
    list_pages = ListCache(store.page, ttl=list_cache_seconds, writes=store.writes)
    if metrics is not None:
        AnswersMetric.register(
            metrics,
            "helpdesk_list_pages",
            "Queue pages asked for, by how they were answered: kept (from memory), shared (with a read under way), "
            "read (from the store).",
            lambda: list_pages.answers,
        )
        AnswersMetric.register(
            metrics,
            "helpdesk_list_rows",
            "Rows of queue pages: kept (from memory, at the ticket's revision) or read (from the store).",
            lambda: {"kept": store.rows.hits, "read": store.rows.misses},
        )
    api = APIRouter(prefix="/api", dependencies=[Depends(require_service_token(token))])
    Acting = Annotated[Viewer, Depends(viewer)]
    Number = Annotated[int, Path(ge=1, le=10**12)]
    Email = Annotated[str, Path(min_length=3, max_length=320)]

    async def counts_of(v: Viewer, config: Config, group: str | None = None) -> dict[str, int]:
        names = [n for n in VIEWS if not (v.role == "customer" and n in AGENT_ONLY_VIEWS)]
        queries = []
        for name in names:
            filters, _ = view_filters(name, v, organisation_visible=config.settings.customers_see_organisation)
            if group is not None:
                filters = [{**f, "group": group} for f in filters if f.get("group", group) == group]
            queries.append(view_counts.count(filters))
        return dict(zip(names, await asyncio.gather(*queries), strict=True))

    def require_agent(v: Viewer) -> None:
        if v.role not in ("admin", "agent", "light_agent", "system"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "for agents only")

    def require_admin(v: Viewer) -> None:
        if v.role not in ("admin", "system"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "for admins only")

    async def run(command: Any, v: Viewer) -> dict[str, Any]:
        doc = await handlers.execute(command, v)
        return _detail(doc, v)

    def _detail(doc: dict[str, Any], v: Viewer) -> dict[str, Any]:
        comments = doc.get("comments", [])
        activity = doc.get("activity", [])
        extra: dict[str, Any] = {}
        if v.role == "customer":
            comments = [c for c in comments if c.get("visibility") == "public"]
            activity = []
            extra = {"attachments": visible_attachments(doc, comments), "delivery_problems": []}
        hidden = {"outbox", "outbox_since", "applied", "fv", "message_ids"}
        return {
            **_summary({k: x for k, x in doc.items() if k not in hidden}),
            "comments": comments,
            "activity": activity,
            **extra,
        }

    @api.get("/mailboxes", tags=["config"], summary="The inbound mailboxes and where their mail goes.")
    async def mailboxes(_: Acting) -> list[dict[str, Any]]:
        return await store.list_mailboxes()

    @api.put("/mailboxes/{address}", tags=["config"], summary="Create or replace a mailbox (admins).")
    async def put_mailbox(
        v: Acting, address: Annotated[str, Path(pattern=MAILBOX_ADDRESS)], body: MailboxBody
    ) -> dict[str, Any]:
        require_admin(v)
        config = await handlers.config()
        if config.type(body.type) is None:
            known = ", ".join(t.key for t in config.types)
            detail = [{"loc": ["body", "type"], "msg": f"not a ticket type; known: {known}", "type": "value_error"}]
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
        mailbox = Mailbox(address=address.lower(), name=body.name.strip(), type=body.type, group=body.group)
        await store.put_mailbox(mailbox)
        return {"address": mailbox.address, "name": mailbox.name, "type": mailbox.type, "group": mailbox.group}

    @api.delete("/mailboxes/{address}", tags=["config"], status_code=204, summary="Delete a mailbox (admins).")
    async def delete_mailbox(v: Acting, address: Annotated[str, Path(pattern=MAILBOX_ADDRESS)]) -> None:
        require_admin(v)
        mailboxes = await store.list_mailboxes()
        if not any(m.get("address") == address.lower() for m in mailboxes):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no mailbox {address.lower()}")
        if len(mailboxes) <= 1:
            raise HTTPException(status.HTTP_409_CONFLICT, "the last mailbox cannot be deleted; add another first")
        await store.delete_mailbox(address)

    @api.get(
        "/tickets",
        tags=["tickets"],
        response_model=Page,
        summary="A queue view (newest first, or `order=oldest`), narrowed by any of the filters, cursor-paged.",
    )
    async def list_tickets(
        v: Acting,
        view: View = "all_open",
        order: Annotated[Literal["newest", "oldest"], Query(description="By last activity; same indexes.")] = "newest",
        group: Annotated[str | None, Query(pattern=KEY_PARAM)] = None,
        type: Annotated[str | None, Query(pattern=KEY_PARAM)] = None,
        status_: Annotated[str | None, Query(alias="status", pattern=KEY_PARAM)] = None,
        priority: Annotated[str | None, Query(pattern=KEY_PARAM)] = None,
        category: Annotated[str | None, Query(pattern=KEY_PARAM)] = None,
        handler: Annotated[str | None, Query(pattern=KEY_PARAM)] = None,
        organisation: Annotated[str | None, Query(max_length=200)] = None,
        requester: Annotated[str | None, Query(max_length=320)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
        counts: Annotated[
            bool, Query(description="Also give the count of every view (a queue page's tabs) in one answer.")
        ] = False,
    ) -> dict[str, Any]:
        config = await handlers.config()
        filters, sort = view_filters(view, v, organisation_visible=config.settings.customers_see_organisation)
        extra = {
            key: value
            for key, value in {
                "group": group,
                "type": type,
                "status": status_,
                "priority": priority,
                "category": category,
                "handler": handler,
                "organisation": organisation,
                "requester.email": requester.lower() if requester else None,
            }.items()
            if value is not None
        }
        narrowed = []
        for f in filters:
            if any(k in f and f[k] != val for k, val in extra.items()):
                continue  # e.g. an agent's other groups when one group is asked for
            narrowed.append({**f, **extra})
        try:
            read = list_pages.page(narrowed, sort=sort, limit=limit, cursor=cursor, oldest_first=order == "oldest")
            if counts:
                (docs, next_cursor), views = await asyncio.gather(read, counts_of(v, config))
            else:
                (docs, next_cursor), views = await read, None
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        return {"items": [_summary(d) for d in docs], "next_cursor": next_cursor, "counts": views}

    @api.get(
        "/tickets/search",
        tags=["tickets"],
        response_model=Page,
        summary="Tickets with every word of `q` in their title, contact or conversation, newest first.",
    )
    async def search_tickets(
        v: Acting,
        q: Annotated[str, Query(min_length=1, max_length=1000)],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> dict[str, Any]:
        if search is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "search is not configured")
        config = await handlers.config()
        org = config.settings.customers_see_organisation
        fields = {**SUMMARY_FIELDS, "organisation": 1, "phase": 1}

        async def visible(numbers: list[int]) -> list[dict[str, Any]]:
            found = store.tickets.find({"number": {"$in": numbers}}, fields)
            return [_summary(d) async for d in found if can_see(v, d, organisation_visible=org)]

        try:
            items, next_cursor = await search.search(q, visible=visible, limit=limit, cursor=cursor)
        except InvalidQuery as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        return {"items": items, "next_cursor": next_cursor}

    @api.get("/tickets/counts", tags=["tickets"], response_model=Counts, summary="Ticket count of every view.")
    async def counts(v: Acting, group: Annotated[str | None, Query(pattern=KEY_PARAM)] = None) -> dict[str, Any]:
        return {"views": await counts_of(v, await handlers.config(), group)}

    statistics = Statistics(store)

    @api.get(
        "/stats",
        tags=["stats"],
        response_model=Stats,
        summary="Statistics of the tickets the staff member may see: per day, backlog, times, SLA, channels.",
    )
    async def stats(
        v: Acting,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
        group: Annotated[str | None, Query(pattern=KEY_PARAM)] = None,
        tz: Annotated[str, Query(min_length=1, max_length=64)] = "UTC",
        groups: Annotated[
            str | None, Query(max_length=4000, description="Admins: comma-separated groups to break down by.")
        ] = None,
    ) -> Stats:
        require_agent(v)
        named = [g.strip() for g in (groups or "").split(",") if g.strip()]
        if len(named) > 200 or any(not re.fullmatch(KEY_PARAM, g) for g in named):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "`groups` must be up to 200 group keys")
        try:
            return await statistics.for_viewer(v, days=days, tz=tz, group=group, groups=named)
        except UnknownTimeZone as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc

    @api.get("/tickets/{number}", tags=["tickets"], response_model=Detail, summary="One ticket by number.")
    async def detail(v: Acting, number: Number) -> dict[str, Any]:
        config = await handlers.config()
        doc = await store.detail({"number": number})
        if doc is None or not can_see(v, doc, organisation_visible=config.settings.customers_see_organisation):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"ticket #{number} not found")
        return _detail(doc, v)

    @api.post("/tickets", tags=["commands"], status_code=201, response_model=Detail, summary="Create a ticket.")
    async def create(v: Acting, body: CreateBody) -> dict[str, Any]:
        command = CreateTicket(actor=v.actor(), **body.model_dump(exclude_none=True))
        return await run(command, v)

    @api.patch(
        "/tickets/{number}",
        tags=["commands"],
        response_model=Detail,
        summary="Change fields: status, priority, assign (group/handler), move (type/group), custom fields, ...",
    )
    async def update(v: Acting, number: Number, body: UpdateBody) -> dict[str, Any]:
        return await run(UpdateTicket(actor=v.actor(), number=number, **body.model_dump()), v)

    @api.post(
        "/tickets/bulk",
        tags=["commands"],
        response_model=BulkResult,
        summary="Change the same fields on up to 500 tickets; each ticket is changed or refused on its own.",
    )
    async def bulk(v: Acting, body: BulkBody) -> dict[str, Any]:
        updated, refused = [], {}
        for number in dict.fromkeys(body.numbers):
            command = UpdateTicket(
                command_id=derived_id("bulk", body.command_id, str(number)),
                actor=v.actor(),
                number=number,
                fields=body.fields,
            )
            try:
                await handlers.execute(command, v, reload=False)
                updated.append(number)
            except (Refused, Conflict) as exc:
                refused[number] = exc.message if isinstance(exc, Refused) else str(exc)
        return {"updated": updated, "refused": refused}

    @api.post(
        "/tickets/{number}/comments",
        tags=["commands"],
        response_model=Detail,
        summary="Add a public reply, internal comment, customer comment or solution note.",
    )
    async def comment(v: Acting, number: Number, body: CommentBody) -> dict[str, Any]:
        return await run(AddComment(actor=v.actor(), number=number, **body.model_dump()), v)

    @api.post("/tickets/{number}/follow", tags=["commands"], response_model=Detail, summary="Follow or unfollow.")
    async def follow(v: Acting, number: Number, body: FollowBody) -> dict[str, Any]:
        return await run(FollowTicket(actor=v.actor(), number=number, **body.model_dump()), v)

    @api.post("/tickets/{number}/close", tags=["commands"], response_model=Detail, summary="Close a ticket.")
    async def close(v: Acting, number: Number, body: CloseBody) -> dict[str, Any]:
        return await run(CloseTicket(actor=v.actor(), number=number, **body.model_dump()), v)

    @api.post(
        "/tickets/{number}/link",
        tags=["commands"],
        response_model=Detail,
        summary="Make the ticket a child of a parent ticket (closing the parent can close it), or unlink it.",
    )
    async def link(v: Acting, number: Number, body: LinkBody) -> dict[str, Any]:
        return await run(LinkTicket(actor=v.actor(), number=number, **body.model_dump()), v)

    @api.post(
        "/tickets/{number}/delete-confirmation",
        tags=["commands"],
        summary="Ask for the token that confirms deleting a ticket as it is now (admins; valid ten minutes).",
    )
    async def delete_confirmation(v: Acting, number: Number) -> dict[str, Any]:
        token, expires = await handlers.delete_confirmation(number, v)
        return {"confirmation": token, "expires_at": expires}

    @api.delete(
        "/tickets/{number}",
        tags=["commands"],
        status_code=204,
        summary="Delete a ticket and its conversation for good (admins, with the confirmation token).",
    )
    async def delete(
        v: Acting,
        number: Number,
        confirmation: Annotated[str, Query(min_length=10, max_length=200)],
        command_id: Annotated[str | None, Query(min_length=8, max_length=100)] = None,
    ) -> None:
        command = DeleteTicket(
            command_id=command_id or new_id(), actor=v.actor(), number=number, confirmation=confirmation
        )
        await handlers.execute(command, v, reload=False)

    @api.post(
        "/tickets/{number}/merge",
        tags=["commands"],
        response_model=Detail,
        summary="Merge the ticket into another: conversation moved, this one closed and pointing to the survivor.",
    )
    async def merge(v: Acting, number: Number, body: MergeBody) -> dict[str, Any]:
        return await run(MergeTicket(actor=v.actor(), number=number, **body.model_dump()), v)

    @api.post(
        "/tickets/{number}/split",
        tags=["commands"],
        status_code=201,
        response_model=Detail,
        summary="Start a new ticket from some of this ticket's comments; returns the new ticket.",
    )
    async def split(v: Acting, number: Number, body: SplitBody) -> dict[str, Any]:
        return await run(SplitTicket(actor=v.actor(), number=number, **body.model_dump()), v)

    @api.get("/config", tags=["config"], response_model=ConfigBody, summary="Types, workflows, fields, settings.")
    async def get_config(v: Acting) -> dict[str, Any]:
        require_agent(v)
        config, version = await store.load_config()
        return {"version": version, "config": config}

    @api.put("/config", tags=["config"], response_model=ConfigBody, summary="Replace the configuration (admins).")
    async def put_config(v: Acting, body: ConfigBody) -> dict[str, Any]:
        require_admin(v)
        if not await store.save_config(body.config, expected_version=body.version):
            raise HTTPException(status.HTTP_409_CONFLICT, "the configuration changed meanwhile; reload and try again")
        handlers.forget_config()
        config, version = await store.load_config()
        return {"version": version, "config": config}

    @api.get("/ticket-templates", tags=["config"], summary="Ticket templates by key.")
    async def list_templates(v: Acting) -> dict[str, Any]:
        require_agent(v)
        return {key: {k: x for k, x in t.items() if k != "_id"} for key, t in (await store.templates()).items()}

    @api.put("/ticket-templates/{key}", tags=["config"], summary="Create or replace a ticket template (admins).")
    async def put_template(
        v: Acting, key: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,39}$")], body: TemplateBody
    ) -> dict[str, Any]:
        require_admin(v)
        await store.save_template(key, body.model_dump())
        return {"key": key, **body.model_dump()}

    @api.delete("/ticket-templates/{key}", tags=["config"], status_code=204, summary="Delete a ticket template.")
    async def delete_template(v: Acting, key: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,39}$")]) -> None:
        require_admin(v)
        if not await store.delete_template(key):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no template {key}")

    @api.get(
        "/contacts/{email}",
        tags=["contacts"],
        response_model=Contact,
        summary="A contact by address, with its undeliverable mark if mail to it bounced for good (agents).",
    )
    async def get_contact(v: Acting, email: Email) -> dict[str, Any]:
        require_agent(v)
        doc = await store.contact(email)
        if doc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no contact {email.lower()}")
        return doc

    @api.post(
        "/contacts/{email}/deliverable",
        tags=["contacts"],
        response_model=Contact,
        summary="Lift an address's undeliverable mark, so mail to it is sent again (agents and admins).",
    )
    async def set_deliverable(v: Acting, email: Email) -> dict[str, Any]:
        if v.role not in ("admin", "agent", "system"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "for agents and admins only")
        return await handlers.set_deliverable(email, v)

    @api.get(
        "/ticket-links/{token}",
        tags=["tickets"],
        response_model=Detail,
        summary="The customer's view of one ticket, by its secret link token (public conversation only).",
    )
    async def by_link(token: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{20,64}$")]) -> dict[str, Any]:
        doc = await store.detail({"link_token": token})
        if doc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no ticket has that link")
        public = [c for c in doc.get("comments", []) if c.get("visibility") == "public"]
        attachments = visible_attachments(doc, public)
        return {**_summary(doc), "comments": public, "activity": [], "cc": [], "tags": [], "attachments": attachments}

    return api


def install_error_handlers(app: Any) -> None:
    """Answer refused commands and invalid command payloads with a clear 4xx, never a 500."""

    async def on_refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Refused)  # noqa: S101 - registered for Refused only
        return refused_response(exc)

    async def on_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)  # noqa: S101 - registered for ValidationError only
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    async def on_conflict(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc), "fields": [], "error": "Conflict"})

    app.add_exception_handler(Refused, on_refused)
    app.add_exception_handler(Conflict, on_conflict)
    app.add_exception_handler(ValidationError, on_invalid)
