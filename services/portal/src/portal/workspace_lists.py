"""Ticket lists: sort, filter, search, bulk actions, saved views, live counts, the notification bell.

Everything a list shows is in its URL (`ListQuery`), so a list can be bookmarked, paged and saved as a
personal view; the tickets service narrows every list to what the signed-in person may see.
"""

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from portal.domain import DEFAULT_VIEW, PRIORITY_LABELS, STATUS_LABELS, VIEWS, Actor, User, can_assign
from portal.i18n import Translate, translator
from portal.pagekit import (
    AgentUser,
    PageError,
    Portal,
    RedirectTo,
    SignInRequired,
    StaffUser,
    command_id_of,
    language_for,
    new_command_id,
    page_router,
    render,
    signed_in,
    staff,
)
from portal.saved_views import MAX_NAME_LENGTH, MemorySavedViews, MongoSavedViews, SavedView, TooManyViews
from portal.service_client import ServiceNotFound, ServiceRefused, ServiceUnavailable
from portal.settings import Settings
from portal.shortcache import Kept, KeptByKey
from portal.tickets_client import LIST_ORDERS, TicketPage

log = logging.getLogger(__name__)

FILTER_KEYS = ("status", "priority", "group", "handler", "type")
"""The filters a list offers, in the order the filter bar shows them (a subset of the API's)."""
ORDER_LABELS = {"newest": "Newest activity first", "oldest": "Oldest activity first"}
VALUE = re.compile(r"[A-Za-z0-9_.@+-]{1,100}")
"""A filter value: a plain key (the tickets API takes the same), never an operator or a document."""
MAX_CURSOR_LENGTH = 400
MAX_SEARCH_LENGTH = 1000
MAX_BULK = 500
PAGE_SIZE = 50
SAVED_VIEWS_WAIT = 0.5
"""Seconds a list waits for the saved views: they are a help, the list is shown without them after that."""
SHARED_SECONDS = 5.0
"""Seconds the staff list and the ticket configuration are kept for every list page of this process."""
BELL_SECONDS = 10.0
"""Seconds a person's unread count is kept for their bell (it loads after every staff page and polls every 30 s);
marking notifications read in this process drops it at once."""
NOTIFICATIONS_SHOWN = 50
NOTIFICATION_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")
BULK_FIELDS = {"handler": "bulk_handler", "status": "bulk_status", "priority": "bulk_priority", "group": "bulk_group"}
"""Ticket field → the bulk form's select that sets it."""


class BadListQuery(Exception):
    """A list's URL or a saved view's form holds a key or value a list does not take."""


class UnknownView(BadListQuery):
    """The list's view is not one of `VIEWS`."""


@dataclass(frozen=True)
class ListQuery:
    """What a list shows: a view, exact-value filters, an order, or a search; the cursor of the page."""

    view: str = DEFAULT_VIEW
    filters: dict[str, str] = field(default_factory=dict)
    order: str = LIST_ORDERS[0]
    q: str = ""
    cursor: str = ""

    @classmethod
    def parse(cls, params: Iterable[tuple[str, str]], *, extra: Iterable[str] = ()) -> "ListQuery":
        """Read a list's query; raise `BadListQuery` for a key outside the list's own (and `extra`) or a bad value."""
        allowed = {"view", "order", "q", "cursor", *FILTER_KEYS, *extra}
        values: dict[str, str] = {}
        for key, value in params:
            if key not in allowed:
                raise BadListQuery(f"unknown key {key[:40]!r}")
            if key in values and values[key] != value:
                raise BadListQuery(f"{key} given twice")
            values[key] = value
        view = values.get("view") or DEFAULT_VIEW
        order = values.get("order") or LIST_ORDERS[0]
        if view not in VIEWS:
            raise UnknownView("unknown view")
        if order not in LIST_ORDERS:
            raise BadListQuery("unknown order")
        filters = {k: values[k] for k in FILTER_KEYS if values.get(k)}
        if any(not VALUE.fullmatch(v) for v in filters.values()):
            raise BadListQuery("a filter value may only hold letters, digits and _.@+-")
        q = " ".join(values.get("q", "").split())
        if len(q) > MAX_SEARCH_LENGTH or len(values.get("cursor", "")) > MAX_CURSOR_LENGTH:
            raise BadListQuery("search or page link too long")
        return cls(view=view, filters=filters, order=order, q=q, cursor=values.get("cursor", ""))

    def saved(self) -> dict[str, str]:
        """Return what a saved view keeps: the view, the filters and a non-default order (not the page)."""
        kept = {"view": self.view, **self.filters}
        if self.order != LIST_ORDERS[0]:
            kept["order"] = self.order
        return kept

    def params(self, *, page: bool = True) -> list[tuple[str, str]]:
        """Return the URL's parameters in a stable order: view, search, filters, order, cursor."""
        items = [("view", self.view)]
        if self.q:
            items.append(("q", self.q))
        items += [(k, self.filters[k]) for k in FILTER_KEYS if k in self.filters]
        if self.order != LIST_ORDERS[0]:
            items.append(("order", self.order))
        if page and self.cursor:
            items.append(("cursor", self.cursor))
        return items

    def url(self, **changes: Any) -> str:
        """Return the list's URL, with some parts changed (e.g. `cursor=`)."""
        return "/tickets?" + urlencode(replace(self, **changes).params())


def _query_of(params: Iterable[tuple[str, str]], *, extra: Iterable[str] = ()) -> ListQuery:
    try:
        return ListQuery.parse(params, extra=extra)
    except UnknownView:
        raise PageError(404, "No such view", "There is no ticket view with that name.") from None
    except BadListQuery as exc:
        log.info("refused a list query: %s", exc)
        raise PageError(400, "Bad list link", "That list link is not valid. Start again from the views.") from None


def api_filters(query: ListQuery, user: User) -> tuple[str, dict[str, str]]:
    """Return the view and filters to ask the tickets service for: "me" is the user; "unassigned" its view."""
    filters = dict(query.filters)
    view = query.view
    handler = filters.pop("handler", None)
    if handler == "unassigned":
        # The API filters by value only; tickets without a handler are the Unassigned view (open tickets).
        view = "unassigned"
    elif handler == "me":
        filters["handler"] = user.id
    elif handler:
        filters["handler"] = handler
    return view, filters


@dataclass(frozen=True)
class Choices:
    """The values the filter bar and the bulk actions offer, with their labels."""

    statuses: dict[str, str]
    priorities: dict[str, str]
    types: dict[str, str]
    groups: dict[str, str]
    staff: dict[str, str]
    """Staff who may handle tickets (admins and agents), id → name, by name."""


def _choices(config: Mapping[str, Any] | None, people: list[User], query: ListQuery) -> Choices:
    statuses, priorities, types = dict(STATUS_LABELS), dict(PRIORITY_LABELS), {}
    if config:
        found_types = [t for t in config.get("types", []) if isinstance(t, Mapping)]
        types = {str(t.get("key")): str(t.get("name") or t.get("key")) for t in found_types}
        found = {
            str(s.get("key")): str(s.get("name") or s.get("key"))
            for t in found_types
            for s in t.get("statuses", [])
            if isinstance(s, Mapping)
        }
        statuses = found or statuses
        priorities = {
            str(p.get("key")): str(p.get("name") or p.get("key"))
            for p in config.get("priorities", [])
            if isinstance(p, Mapping)
        } or priorities
    groups = sorted({g for person in people for g in person.groups} | {query.filters.get("group", "")} - {""})
    handlers = sorted((p for p in people if can_assign(p.role)), key=lambda p: p.display_name.lower())
    return Choices(
        statuses=statuses,
        priorities=priorities,
        types=types,
        groups={g: g for g in groups},
        staff={p.id: p.display_name for p in handlers},
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _notification(item: Mapping[str, Any]) -> dict[str, Any] | None:
    # Notify's answer is read defensively: an item the page cannot link is left out, not an error page.
    number = item.get("ticket_number")
    if not NOTIFICATION_ID.fullmatch(str(item.get("id", ""))) or not isinstance(number, int) or number < 1:
        return None
    try:
        created = datetime.fromisoformat(str(item.get("created_at", "")))
    except ValueError:
        created = None
    return {
        "id": str(item["id"]),
        "ticket_number": number,
        "ticket_title": str(item.get("ticket_title", "")),
        "kind": str(item.get("kind", "")),
        "text": str(item.get("text", "")),
        "created_at": created,
        "read_at": item.get("read_at"),
    }


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
    if "saved_views" not in portal.services:
        store = MongoSavedViews(app.state.runtime.db)
        app.state.runtime.on_start.append(store.ensure_indexes)
        portal.services["saved_views"] = store
    router = page_router()
    # The same for every agent's page and rarely changed: read once per few seconds, not per page load.
    shared_staff: Kept[list[User]] = Kept(ttl=SHARED_SECONDS)
    shared_config: Kept[Mapping[str, Any] | None] = Kept(ttl=SHARED_SECONDS, keep=lambda config: config is not None)
    unread_counts: KeptByKey[str, int] = KeptByKey(ttl=BELL_SECONDS)

    async def saved_views_of(user: User) -> list[SavedView] | None:
        # The views are a help: a slow or failing store leaves the list without them, not without a page.
        try:
            async with asyncio.timeout(SAVED_VIEWS_WAIT):
                return list(await portal.services["saved_views"].of_user(user.id))
        except Exception as exc:  # noqa: BLE001 - any store failure only hides the saved views
            log.warning("showing the list of %s without saved views: %r", user.email, exc)
            return None

    async def config_of(actor: Actor) -> Mapping[str, Any] | None:
        # Statuses, priorities and types for the filters; without them the standard ones are offered.
        try:
            answer = await portal.tickets.call("GET", "/api/config", actor)
        except (ServiceUnavailable, ServiceNotFound, ServiceRefused) as exc:
            log.info("offering the standard filters: the ticket configuration is not readable: %r", exc)
            return None
        config = answer.get("config") if isinstance(answer, Mapping) else None
        return config if isinstance(config, Mapping) else None

    def tabs_context(query: ListQuery, counts: Mapping[str, int], saved: list[SavedView] | None) -> dict[str, Any]:
        kept = query.saved()
        current = "" if query.q else next((v.id for v in saved or [] if v.query == kept), "")
        return {
            "counts": counts,
            "saved_views": [(v, "/tickets?" + urlencode(list(v.query.items()))) for v in saved or []],
            "current_view": "" if query.q or current else query.view,
            "current_saved": current,
            "tabs_query": urlencode(list(kept.items())),
        }

    async def page_and_counts(
        actor: Actor, user: User, query: ListQuery, t: Translate
    ) -> tuple[TicketPage, str, Mapping[str, int]]:
        # A view's page brings the tabs' counts in the same request; a search asks for them beside it.
        if query.q:
            (page, alert), counts = await asyncio.gather(page_of(actor, user, query, t), portal.tickets.counts(actor))
            return page, alert, counts
        page, alert = await page_of(actor, user, query, t)
        return page, alert, page.counts if page.counts is not None else await portal.tickets.counts(actor)

    async def page_of(actor: Actor, user: User, query: ListQuery, t: Translate) -> tuple[TicketPage, str]:
        if query.q:
            params = {"q": query.q, "limit": PAGE_SIZE, **({"cursor": query.cursor} if query.cursor else {})}
            try:
                answer = await portal.tickets.call("GET", "/api/tickets/search", actor, params=params)
            except ServiceRefused as exc:
                return TicketPage(items=[]), t("Search refused: {reason}", reason=exc.message)
            except ServiceUnavailable as exc:
                log.warning("search unavailable for %s: %s", user.email, exc)
                return TicketPage(items=[]), t("Search is not available right now. Try again in a moment.")
            return TicketPage.model_validate(answer), ""
        view, filters = api_filters(query, user)
        page = await portal.tickets.list_tickets(
            actor,
            view,
            cursor=query.cursor or None,
            limit=PAGE_SIZE,
            filters=filters,
            order=query.order,
            with_counts=True,
        )
        return page, ""

    async def show_list(
        request: Request,
        user: User,
        query: ListQuery,
        *,
        status: int = 200,
        alert: str = "",
        bulk: Mapping[str, Any] | None = None,
        save_open: bool = False,
    ) -> Response:
        actor = Actor.of(user)
        t = translator(language_for(request))
        (page, search_alert, counts), saved, config, people = await asyncio.gather(
            page_and_counts(actor, user, query, t),
            saved_views_of(user),
            shared_config.get(lambda: config_of(actor)),
            shared_staff.get(portal.accounts.users.staff),
        )
        handler_ids = {t.handler for t in page.items if t.handler}
        names = {p.id: p.display_name for p in people}
        missing = handler_ids - set(names)
        if missing:
            names |= await portal.accounts.users.names(missing)
        choices = _choices(config, people, query)
        tabs = tabs_context(query, counts, saved)
        current_saved = next((v for v, _ in tabs["saved_views"] if v.id == tabs["current_saved"]), None)
        title = t("Search") if query.q else current_saved.name if current_saved else t(VIEWS[query.view])
        return render(
            request,
            "tickets.html",
            status,
            view=query.view,
            query=query,
            title=title,
            tickets=page.items,
            handlers=names,
            choices=choices,
            order_labels=ORDER_LABELS,
            next_link=query.url(cursor=page.next_cursor) if page.next_cursor else "",
            first_link=query.url(cursor="") if query.cursor else "",
            clear_link="/tickets?" + urlencode({"view": query.view}),
            saved_fields=query.saved(),
            saved_unavailable=saved is None,
            saved_view=current_saved,
            may_bulk=can_assign(user.role),
            bulk_command=new_command_id(),
            back=urlencode(query.params()),
            alert=alert or search_alert,
            bulk=bulk,
            max_name=MAX_NAME_LENGTH,
            save_open=save_open,
            **tabs,
        )

    @router.get("/tickets")
    async def ticket_list(request: Request, user: StaffUser) -> Response:
        query = _query_of(request.query_params.multi_items())
        return await show_list(request, user, query)

    async def fragment_user(request: Request) -> User | None:
        # A polled fragment of a signed-out visitor must not swap the sign-in page into the tab bar.
        try:
            return await staff(await signed_in(request))
        except (SignInRequired, RedirectTo):
            return None

    @router.get("/views/counts")
    async def view_counts(request: Request) -> Response:
        # The tab bar polls this every 15 s: simple and stateless (no push channel to keep open per agent),
        # and cheap, since the counts are index-only queries of ~30-50 ms even at 1M tickets.
        user = await fragment_user(request)
        if user is None:
            return Response(status_code=204)
        query = _query_of(request.query_params.multi_items())
        counts, saved = await asyncio.gather(portal.tickets.counts(Actor.of(user)), saved_views_of(user))
        return render(request, "_tabs.html", **tabs_context(query, counts, saved))

    @router.post("/tickets/bulk")
    async def bulk_update(request: Request, user: AgentUser) -> Response:
        form = await request.form()
        query = _query_of(parse_qsl(str(form.get("back", ""))))
        t = translator(language_for(request))
        command = command_id_of(str(form.get("command_id", "")))
        numbers = list(dict.fromkeys(n for n in (str(v) for v in form.getlist("number")) if n.isdigit()))[:MAX_BULK]
        fields: dict[str, str] = {}
        people = {p.id for p in await portal.accounts.users.staff() if can_assign(p.role)}
        for name, control in BULK_FIELDS.items():
            value = str(form.get(control, ""))
            if not value:
                continue
            if name == "handler" and value == "me":
                value = user.id
            if not VALUE.fullmatch(value) or (name == "handler" and value not in people):
                return await show_list(request, user, query, status=422, alert=t("Not changed: choose from the lists."))
            fields[name] = value
        if not numbers:
            return await show_list(request, user, query, status=422, alert=t("Not changed: select tickets first."))
        if not fields:
            return await show_list(request, user, query, status=422, alert=t("Not changed: choose what to change."))
        body = {"command_id": command, "numbers": [int(n) for n in numbers], "fields": fields}
        try:
            answer = await portal.tickets.call("POST", "/api/tickets/bulk", Actor.of(user), json=body)
        except ServiceRefused as exc:
            return await show_list(request, user, query, status=exc.status, alert=t("Not changed:") + " " + exc.message)
        updated = list(answer.get("updated", [])) if isinstance(answer, Mapping) else []
        refused = dict(answer.get("refused", {})) if isinstance(answer, Mapping) else {}
        log.info("%s changed %s on %d tickets (%d refused)", user.email, sorted(fields), len(updated), len(refused))
        result = {"updated": updated, "refused": sorted(refused.items(), key=lambda kv: int(kv[0]))}
        return await show_list(request, user, query, bulk=result)

    @router.post("/views")
    async def save_view(request: Request, user: StaffUser) -> Response:
        form = await request.form()
        t = translator(language_for(request))
        fields = [(k, str(v)) for k, v in form.multi_items() if k not in ("csrf_token", "name")]
        try:
            query = ListQuery.parse(fields)
        except BadListQuery as exc:
            log.info("%s tried to save a view with a bad filter: %s", user.email, exc)
            raise PageError(422, "View not saved", "A saved view may only hold the list's own filters.") from None
        name = " ".join(str(form.get("name", "")).split())
        if not name or len(name) > MAX_NAME_LENGTH:
            alert = t("View not saved: give it a name of at most {n} characters.", n=MAX_NAME_LENGTH)
            return await show_list(request, user, query, status=422, alert=alert, save_open=True)
        try:
            view = await portal.services["saved_views"].add(user.id, name, query.saved())
        except TooManyViews:
            alert = t("View not saved: you have the most saved views one may keep. Delete one first.")
            return await show_list(request, user, query, status=409, alert=alert, save_open=True)
        log.info("%s saved the view %r", user.email, name)
        return RedirectResponse("/tickets?" + urlencode(list(view.query.items())), status_code=303)

    @router.post("/views/{view_id}/delete")
    async def delete_view(user: StaffUser, view_id: str) -> Response:
        if not await portal.services["saved_views"].delete(user.id, view_id[:100]):
            raise PageError(404, "View not found", "You have no saved view like that.")
        log.info("%s deleted a saved view", user.email)
        return RedirectResponse("/tickets", status_code=303)

    async def inapp(user: User) -> Mapping[str, Any]:
        params = {"user_id": user.id, "limit": NOTIFICATIONS_SHOWN}
        answer = await portal.service("notify").call("GET", "/inapp", params=params)
        return answer if isinstance(answer, Mapping) else {}

    async def unread_of(user_id: str) -> int:
        answer = await portal.service("notify").call(
            "GET", "/inapp", params={"user_id": user_id, "unread": "true", "limit": 1}
        )
        return _count(answer.get("unread")) if isinstance(answer, Mapping) else 0

    @router.get("/notifications/bell")
    async def bell(request: Request) -> Response:
        # Polled by every staff page; notify being down only leaves the bell without its number.
        user = await fragment_user(request)
        if user is None:
            return Response(status_code=204)
        unread = 0
        try:
            unread = await unread_counts.get(user.id, lambda: unread_of(user.id))
        except (ServiceUnavailable, ServiceNotFound, ServiceRefused, PageError) as exc:
            log.info("the bell of %s shows no count: %r", user.email, exc)
        return render(request, "_bell.html", unread=unread)

    @router.get("/notifications")
    async def notifications(request: Request, user: StaffUser) -> Response:
        try:
            answer = await inapp(user)
        except (ServiceUnavailable, ServiceRefused) as exc:
            log.warning("notifications of %s unavailable: %r", user.email, exc)
            return render(request, "notifications.html", 503, items=[], unread=0, unavailable=True)
        items = [_notification(i) for i in answer.get("items", []) if isinstance(i, Mapping)]
        shown = [i for i in items if i is not None]
        return render(
            request, "notifications.html", items=shown, unread=_count(answer.get("unread")), unavailable=False
        )

    @router.post("/notifications/read")
    async def mark_all_read(user: StaffUser) -> Response:
        await portal.service("notify").call("POST", "/inapp/read", json={"user_id": user.id, "all": True})
        unread_counts.forget(user.id)
        return RedirectResponse("/notifications", status_code=303)

    @router.post("/notifications/{notification_id}/open")
    async def open_notification(user: StaffUser, notification_id: str, ticket: Annotated[str, Form()] = "") -> Response:
        if not NOTIFICATION_ID.fullmatch(notification_id) or not ticket.isdigit() or not 0 < int(ticket) < 2**53:
            raise PageError(404, "Notification not found", "There is no such notification.")
        try:
            # Notify marks only this user's notification read, whatever id is sent.
            await portal.service("notify").call(
                "POST", "/inapp/read", json={"user_id": user.id, "ids": [notification_id]}
            )
            unread_counts.forget(user.id)
        except (ServiceUnavailable, ServiceRefused, ServiceNotFound) as exc:
            log.warning("could not mark notification %s of %s read: %r", notification_id, user.email, exc)
        return RedirectResponse(f"/tickets/{int(ticket)}", status_code=303)

    app.include_router(router)


__all__ = ["FILTER_KEYS", "BadListQuery", "Choices", "ListQuery", "MemorySavedViews", "api_filters", "setup"]
