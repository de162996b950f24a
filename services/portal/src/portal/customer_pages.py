"""The customer portal: sign-in by password or magic link, own and organisation tickets, new requests, replies.

Every ticket page asks the tickets service as the signed-in customer (`Actor.of`), so the service decides
what the customer sees: their own requests, and their organisation's when its setting allows. The portal
shows public comments only, and serves only the files of a ticket the customer was just shown.

Sign-in links: anyone may ask for one; the answer is the same whether the address is known or not. A link is
mailed only to a portal customer or to the requester of at least one ticket, and opening it shows a button:
mail scanners that fetch links do not use it up, only the customer's POST does. One residual signal remains:
when notify cannot send, the customer is told to try again, which an unknown address never hears.
"""

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from portal.domain import MAX_COMMENT_LENGTH, Actor, EmailTaken, User, is_closed, is_plausible_email, normalise_email
from portal.i18n import translator
from portal.magic_links import TOKEN_PATTERN, LinkRequestLimiter, MongoSignInLinks, SignInLinks
from portal.pagekit import (
    CUSTOMER_HOME,
    CustomerUser,
    PageError,
    Portal,
    RedirectTo,
    command_id_of,
    language_for,
    new_command_id,
    page_router,
    render,
    sentence,
    ticket_number_of,
)
from portal.security import Session, new_password
from portal.service_client import ServiceNotFound, ServiceRefused, ServiceUnavailable
from portal.settings import Settings
from portal.tickets_client import CommandRefused, TicketDetail, TicketSummary
from portal.uploads import AttachmentRefused, attach_chosen
from portal.web import _download

log = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_CURSOR_LENGTH = 400
MAX_TITLE_LENGTH = 1000
MAX_DESCRIPTION_LENGTH = 100_000
SCOPES = ("mine", "organisation")

LOOKUP_ACTOR = Actor(id="portal-sign-in-links", role="admin", email="", name="Portal sign-in links")
"""Who asks the tickets service whether an address ever asked us something, before a sign-in link is mailed.

It needs every ticket (an admin's view) but reads one summary and keeps only whether there is one; its own
id marks these reads in the tickets service's logs, apart from any person's.
"""

CUSTOMER_STATUSES: dict[str, tuple[str, str]] = {
    "new": ("open", "Open"),
    "open": ("open", "Open"),
    "waiting_for_agent": ("open", "Open"),
    "dormant": ("open", "Open"),
    "waiting_for_customer": ("awaiting", "Awaiting your reply"),
    "resolved": ("solved", "Solved"),
    "closed": ("closed", "Closed"),
}
"""How a customer sees a status category: a CSS key and a label. The agents' words stay the agents'."""


def customer_status(ticket: TicketSummary) -> tuple[str, str]:
    """Return the status of a ticket as its customer sees it: a CSS key and an English label."""
    return CUSTOMER_STATUSES.get(ticket.status_category or ticket.status, ("open", "Open"))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _text(value: str) -> str:
    # Browsers send a textarea's line breaks as CRLF; tickets keep plain newlines.
    return value.replace("\r\n", "\n")


def _files(ticket: TicketDetail) -> dict[str, Any]:
    # Each file's link is this customer page's own route; inline images (cid:) point at the same URLs.
    base = f"/my/tickets/{ticket.number}/attachments/"
    urls = {a.attachment_id: base + quote(a.attachment_id, safe="") for a in ticket.attachments}
    images = {a.content_id: urls[a.attachment_id] for a in ticket.attachments if a.content_id}
    return {"files": [(a, urls[a.attachment_id]) for a in ticket.attachments], "images": images}


def _description_is_separate(ticket: TicketDetail) -> bool:
    # Requests from mail repeat their first message as the description; show it once.
    text = ticket.description.strip()
    return bool(text) and (not ticket.comments or ticket.comments[0].text.strip() != text)


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
    if "sign_in_links" not in portal.services:
        store = MongoSignInLinks(app.state.runtime.db)
        app.state.runtime.on_start.append(store.ensure_indexes)
        portal.services["sign_in_links"] = store
    portal.services.setdefault("sign_in_link_limiter", LinkRequestLimiter())
    router = page_router()

    def links() -> SignInLinks:
        return portal.service("sign_in_links")

    def form_session(request: Request) -> tuple[Session, bool]:
        # Forms before sign-in carry the CSRF token of an anonymous session, made here when there is none.
        session = portal.session_of(request)
        return (session, False) if session is not None else (Session.anonymous(), True)

    def anonymous_page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        session, fresh = form_session(request)
        response = render(request, name, status, csrf_token=portal.sessions.csrf_token(session), **context)
        if fresh:
            portal.set_session(response, session)
        return response

    # ----------------------------------------------------------------- sign-in links

    def request_page(request: Request, status: int = 200, *, email: str = "", error: str = "") -> Response:
        sent = request.query_params.get("sent") == "1"
        return anonymous_page(request, "login_link.html", status, email=email, error=error, sent=sent)

    async def known_customer(email: str) -> tuple[User | None, str] | None:
        """Return (the account, the name) of an address a link may go to, or None for any other."""
        user = await portal.accounts.users.by_email(email)
        if user is not None:
            # Staff sign in with their password: a link must not be a way around it.
            return (user, user.name) if user.role == "customer" and not user.disabled else None
        page = await portal.tickets.list_tickets(LOOKUP_ACTOR, "all", limit=1, filters={"requester": email})
        if not page.items:
            return None
        requester = page.items[0].requester
        return None, requester.name if requester else ""

    @router.get("/login/link")
    async def sign_in_link_form(request: Request) -> Response:
        if await portal.accounts.user_of(portal.session_of(request)):
            return RedirectResponse(CUSTOMER_HOME, status_code=303)
        return request_page(request)

    @router.post("/login/link")
    async def ask_for_sign_in_link(request: Request, email: Annotated[str, Form()] = "") -> Response:
        t = translator(language_for(request))
        address = normalise_email(email)[:320]
        if not is_plausible_email(address):
            return request_page(request, 422, email=email[:320], error=t("Enter your email address."))
        client = request.client.host if request.client else "unknown"
        verdict = portal.services["sign_in_link_limiter"].ask(address, client)
        if not verdict.allowed:
            minutes = max(1, (verdict.retry_after + 59) // 60)
            error = t("Too many sign-in links were asked for. Try again in {n} minutes.", n=minutes)
            response = request_page(request, 429, email=address, error=error)
            response.headers["Retry-After"] = str(verdict.retry_after)
            return response
        known = await known_customer(address)
        if known is None:
            log.info("no sign-in link sent: the address is not a customer's")
        else:
            user, name = known
            token = await links().issue(address, name, _utcnow())
            link = f"{portal.public_url.rstrip('/')}/login/link/{token}"
            language = (user.language if user else "") or language_for(request)
            try:
                await portal.service("notify").call(
                    "POST", "/sign-in-links", json={"to": address, "link": link, "language": language}
                )
            except (ServiceUnavailable, ServiceRefused, ServiceNotFound) as exc:
                log.warning("could not mail a sign-in link: %s", exc)
                error = t("We could not send the link just now. Try again in a few minutes.")
                return request_page(request, 503, email=address, error=error)
            log.info("mailed a sign-in link to a customer")
        # The same answer whether the address is known or not: nobody learns who our customers are.
        return RedirectResponse("/login/link?sent=1", status_code=303)

    def used_link_page(request: Request) -> Response:
        return anonymous_page(request, "login_link_open.html", 410, token="", valid=False)

    @router.get("/login/link/{token}")
    async def open_sign_in_link(request: Request, token: str) -> Response:
        # Only looks: mail scanners fetch links, and must not use them up. The button's POST does.
        if not TOKEN_PATTERN.fullmatch(token) or await links().peek(token, _utcnow()) is None:
            return used_link_page(request)
        response = anonymous_page(request, "login_link_open.html", token=token, valid=True)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @router.post("/login/link/{token}")
    async def use_sign_in_link(request: Request, token: str) -> Response:
        link = await links().consume(token, _utcnow()) if TOKEN_PATTERN.fullmatch(token) else None
        if link is None:
            portal.count_sign_in("link_refused")
            return used_link_page(request)
        user = await portal.accounts.users.by_email(link.email)
        if user is None:
            user = await new_customer(link.email, link.name)
        if user.role != "customer" or user.disabled:
            portal.count_sign_in("link_refused")
            t = translator(language_for(request))
            raise PageError(
                403, t("Not signed in"), t("This address cannot sign in with a link. Sign in with your password.")
            )
        portal.count_sign_in("link_succeeded")
        log.info("%s signed in with a sign-in link", user.email)
        response = RedirectResponse(CUSTOMER_HOME, status_code=303)
        portal.set_session(response, Session.signed_in(user.id, user.session_version))
        return response

    async def new_customer(email: str, name: str) -> User:
        # The password is random and never told: this customer signs in by link until an admin sets one.
        password_hash = await asyncio.to_thread(portal.accounts.passwords.hash, new_password())
        user = User(
            id=str(uuid.uuid4()),
            email=email,
            name=name,
            role="customer",
            groups=(),
            password_hash=password_hash,
            created_at=_utcnow(),
        )
        try:
            await portal.accounts.users.add(user)
        except EmailTaken:
            # The same link cannot be used twice, but two links of one address can race.
            existing = await portal.accounts.users.by_email(email)
            if existing is None:
                raise
            return existing
        log.info("created the customer %s on their first sign-in by link", email)
        return user

    # ----------------------------------------------------------------- the customer's requests

    @router.get("/my/tickets")
    async def my_tickets(request: Request, user: CustomerUser, scope: str = "mine", cursor: str = "") -> Response:
        if scope not in SCOPES or (scope == "organisation" and not user.organisation):
            raise RedirectTo(CUSTOMER_HOME)
        if len(cursor) > MAX_CURSOR_LENGTH:
            t = translator(language_for(request))
            raise PageError(400, t("Bad page link"), t("That page link is not valid. Start from the first page."))
        filters = {"requester": user.email} if scope == "mine" else {"organisation": user.organisation or ""}
        page = await portal.tickets.list_tickets(
            Actor.of(user), "all", cursor=cursor or None, limit=PAGE_SIZE, filters=filters
        )
        next_link = f"/my/tickets?{urlencode({'scope': scope, 'cursor': page.next_cursor})}" if page.next_cursor else ""
        return render(
            request,
            "customer_tickets.html",
            scope=scope,
            tickets=page.items,
            status_of=customer_status,
            next_link=next_link,
            first_link=f"/my/tickets?{urlencode({'scope': scope})}" if cursor else "",
        )

    async def visible_ticket(user: User, number: int) -> TicketDetail:
        # The tickets service decides (404 for another's ticket, as for none); internal notes are dropped here
        # as well, so a mistake there cannot show one.
        ticket = await portal.tickets.get_ticket(Actor.of(user), number)
        public = [c for c in ticket.comments if c.visibility == "public"]
        return ticket.model_copy(update={"comments": public, "activity": []})

    def show_ticket(
        request: Request, ticket: TicketDetail, *, status: int = 200, alert: str = "", draft: str = ""
    ) -> Response:
        return render(
            request,
            "customer_ticket.html",
            status,
            ticket=ticket,
            status_of=customer_status,
            show_description=_description_is_separate(ticket),
            may_reply=not is_closed(ticket.status, ticket.status_category),
            reply_command=new_command_id(),
            draft_text=draft,
            alert=alert,
            created=request.query_params.get("created") == "1",
            **_files(ticket),
        )

    @router.get("/my/tickets/new")
    async def new_request_form(request: Request, user: CustomerUser) -> Response:
        return show_new_request(request)

    def show_new_request(
        request: Request,
        *,
        status: int = 200,
        title: str = "",
        description: str = "",
        alert: str = "",
        command: str = "",
    ) -> Response:
        return render(
            request,
            "customer_new.html",
            status,
            title=title,
            description=description,
            alert=alert,
            create_command=command or new_command_id(),
            max_title=MAX_TITLE_LENGTH,
        )

    @router.post("/my/tickets/new")
    async def create_request(
        request: Request,
        user: CustomerUser,
        title: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
        command_id: Annotated[str, Form()] = "",
        files: Annotated[list[UploadFile | str], File()] = [],  # noqa: B006 - FastAPI copies defaults
    ) -> Response:
        t = translator(language_for(request))
        command = command_id_of(command_id)
        title, description = " ".join(title.split()), _text(description)

        def refuse(status: int, why: str) -> Response:
            # The same command id again: a retry after a refusal the customer fixed is still one request.
            return show_new_request(
                request, status=status, title=title, description=description, alert=why, command=command
            )

        if not title:
            return refuse(422, t("Not sent: give your request a subject."))
        if len(title) > MAX_TITLE_LENGTH:
            return refuse(422, t("Not sent: the subject may be at most {n} characters long.", n=MAX_TITLE_LENGTH))
        if not description.strip():
            return refuse(422, t("Not sent: describe what you need."))
        if len(description) > MAX_DESCRIPTION_LENGTH:
            return refuse(
                422, t("Not sent: the description may be at most {n} characters long.", n=MAX_DESCRIPTION_LENGTH)
            )
        try:
            attachments = await attach_chosen(portal, files, uploaded_by=user.email, t=t)
        except AttachmentRefused as exc:
            return refuse(422, t("Not sent: {reason}", reason=exc.reason))
        body: dict[str, Any] = {
            "command_id": command,
            "channel": "portal",
            "requester": {"email": user.email, "name": user.name},
            "fields": {"title": title, "description": description},
        }
        if attachments:
            body["attachments"] = attachments
        try:
            created = await portal.tickets.call("POST", "/api/tickets", Actor.of(user), json=body)
        except ServiceRefused as exc:
            return refuse(exc.status, t("Not sent: {reason}", reason=sentence(exc.message)))
        number = created.get("number") if isinstance(created, Mapping) else None
        log.info("%s filed request #%s through the portal", user.email, number)
        if not isinstance(number, int):
            return RedirectResponse(CUSTOMER_HOME, status_code=303)
        return RedirectResponse(f"/my/tickets/{number}?created=1", status_code=303)

    @router.get("/my/tickets/{number}")
    async def my_ticket(request: Request, user: CustomerUser, number: str) -> Response:
        return show_ticket(request, await visible_ticket(user, ticket_number_of(number)))

    @router.post("/my/tickets/{number}/comments")
    async def reply(
        request: Request,
        user: CustomerUser,
        number: str,
        text: Annotated[str, Form()] = "",
        command_id: Annotated[str, Form()] = "",
        files: Annotated[list[UploadFile | str], File()] = [],  # noqa: B006 - FastAPI copies defaults
    ) -> Response:
        t = translator(language_for(request))
        ticket_number = ticket_number_of(number)
        command = command_id_of(command_id)
        text = _text(text)
        ticket = await visible_ticket(user, ticket_number)

        def refuse(status: int, why: str) -> Response:
            return show_ticket(request, ticket, status=status, alert=why, draft=text)

        if is_closed(ticket.status, ticket.status_category):
            return refuse(409, t("Not sent: this request is closed. Write a new request instead."))
        if not text.strip():
            return refuse(422, t("Not sent: write your answer first."))
        if len(text) > MAX_COMMENT_LENGTH:
            return refuse(422, t("Not sent: an answer may be at most {n} characters long.", n=MAX_COMMENT_LENGTH))
        try:
            attachments = await attach_chosen(portal, files, uploaded_by=user.email, t=t)
        except AttachmentRefused as exc:
            return refuse(422, t("Not sent: {reason}", reason=exc.reason))
        try:
            await portal.tickets.add_comment(
                Actor.of(user),
                ticket_number,
                kind="customer_comment",
                text=text,
                command_id=command,
                channel="portal",
                attachments=attachments,
            )
        except CommandRefused as exc:
            return refuse(exc.status, t("Not sent: {reason}", reason=sentence(exc.message)))
        log.info("%s answered on request #%s", user.email, ticket_number)
        return RedirectResponse(f"/my/tickets/{ticket_number}", status_code=303)

    @router.get("/my/tickets/{number}/attachments/{attachment_id}")
    async def attachment(request: Request, user: CustomerUser, number: str, attachment_id: str) -> Response:
        # Only a file of a ticket the tickets service just showed this customer is fetched: ingest checks no user.
        ticket = await visible_ticket(user, ticket_number_of(number))
        if attachment_id not in {a.attachment_id for a in ticket.attachments}:
            t = translator(language_for(request))
            raise PageError(404, t("Attachment not found"), t("This request has no such attachment."))
        return _download(await portal.ingest.attachment(attachment_id))

    app.include_router(router)
