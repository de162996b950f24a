"""The tickets HTTP API (queries for the portal and integrations), OpenAPI-documented."""

from datetime import datetime
from typing import Annotated, Any

from contracts.models import Address
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from hdkit.auth import require_service_token
from pydantic import BaseModel, Field

from tickets.access import VIEWS, View, Viewer, view_query, viewer, visible
from tickets.store import Store


class Summary(BaseModel):
    """A ticket in a list."""

    ticket_id: str
    number: int
    title: str
    status: str
    priority: str
    type: str
    group: str | None = None
    handler: str | None = None
    channel: str
    mailbox: str | None = None
    requester: Address
    created_at: datetime
    updated_at: datetime
    last_customer_comment_at: datetime | None = None
    version: int


class Page(BaseModel):
    """One page of a ticket list."""

    items: list[Summary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Counts(BaseModel):
    """How many tickets each view holds for the viewer."""

    views: dict[str, int]


class Detail(Summary):
    """A whole ticket: fields, conversation and activity log."""

    description: str = ""
    cc: list[Address] = []
    tags: list[str] = []
    attachments: list[dict[str, Any]] = []
    comments: list[dict[str, Any]]
    activity: list[dict[str, Any]]


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "ticket_id": doc["_id"]}


def router(store: Store, token: str) -> APIRouter:
    """Return the API routes, all behind the service token and the acting user's access."""
    api = APIRouter(prefix="/api", dependencies=[Depends(require_service_token(token))])
    Acting = Annotated[Viewer, Depends(viewer)]

    @api.get("/mailboxes", tags=["config"], summary="The inbound mailboxes and where their mail goes.")
    async def mailboxes(_: Acting) -> list[dict[str, Any]]:
        return await store.list_mailboxes()

    @api.get("/tickets", tags=["tickets"], response_model=Page, summary="A queue view, newest update first.")
    async def list_tickets(
        v: Acting,
        view: View = "all_open",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        try:
            docs, next_cursor = await store.list_tickets(view_query(view, v), limit=limit, cursor=cursor)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        return {"items": [_summary(d) for d in docs], "next_cursor": next_cursor}

    @api.get("/tickets/counts", tags=["tickets"], response_model=Counts, summary="Ticket count of every view.")
    async def counts(v: Acting) -> dict[str, Any]:
        return {"views": {name: await store.count(view_query(name, v)) for name in VIEWS}}

    @api.get("/tickets/{number}", tags=["tickets"], response_model=Detail, summary="One ticket by number.")
    async def detail(v: Acting, number: Annotated[int, Path(ge=1, le=10**12)]) -> dict[str, Any]:
        scope = visible(v)
        query: dict[str, Any] = {"number": number} if not scope else {"$and": [scope, {"number": number}]}
        doc = await store.detail(query)
        if doc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"ticket #{number} not found")
        comments = doc.get("comments", [])
        if v.role == "customer":
            comments = [c for c in comments if c.get("visibility") == "public"]
        return {**_summary(doc), "comments": comments, "activity": doc.get("activity", [])}

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
        return {**_summary(doc), "comments": public, "activity": [], "cc": [], "tags": [], "attachments": []}

    return api
