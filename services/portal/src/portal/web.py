"""Server-rendered pages: the agent workspace, the customer's ticket link and the forms that work a ticket."""

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode

import nh3
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.accounts import TooManyAttempts, WrongCredentials
from portal.domain import (
    AFTER_SIGN_IN,
    CHANNEL_LABELS,
    MAX_COMMENT_LENGTH,
    PRIORITY_LABELS,
    ROLE_LABELS,
    STATUS_LABELS,
    VIEWS,
    Actor,
    is_closed,
    label,
    safe_next,
)
from portal.i18n import LANGUAGES, translator
from portal.ingest_client import Download, IngestNotFound, IngestUnavailable
from portal.pagekit import (
    CUSTOMER_HOME,
    AdminUser,
    PageError,
    Portal,
    RedirectTo,
    SignedIn,
    SignInRequired,
    command_id_of,
    language_for,
    new_command_id,
    page_router,
    render,
    sentence,
    template_context,
)
from portal.security import Session
from portal.service_client import ServiceNotFound, ServiceUnavailable
from portal.tickets_client import (
    CommandRefused,
    Comment,
    TicketDetail,
    TicketNotFound,
    TicketsUnavailable,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """ASGI middleware that puts the security headers on every response, errors and static files too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = message.get("headers", [])
                # A download keeps the sandboxing policy ingest gave it; pages get the portal's.
                keep = {b"content-security-policy"} & {k.lower() for k, _ in own}
                names = {name for name, _ in SECURITY_HEADERS} - keep
                headers = [(k, v) for k, v in own if k.lower() not in names]
                message["headers"] = headers + [(k, v) for k, v in SECURITY_HEADERS if k not in keep]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ServerTiming:
    """ASGI middleware that tells how long the portal took to start its answer: `Server-Timing: app;dur=<ms>`.

    Browsers show it in their developer tools and `tools/bench_portal.py` reads it to tell the portal's own
    time from the time a request waits on the network or in the load generator.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and add the elapsed time to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                timing = (b"server-timing", f"app;dur={elapsed:.1f}".encode())
                message["headers"] = [*message.get("headers", []), timing]
            await send(message)

        await self.app(scope, receive, send_timed)


LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def _comment_text(value: str) -> str:
    # Browsers send a textarea's line breaks as CRLF; the conversation keeps plain newlines.
    return value.replace("\r\n", "\n")


@dataclass(frozen=True)
class Draft:
    """What a person had written in a form that was not sent, shown again so nothing is lost."""

    text: str = ""
    kind: str = ""


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


_REMOTE_URL = re.compile(r"\Ahttps?://[^\s\"'<>]+\Z", re.I)
_IMG_ATTRIBUTES = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_IMG_ATTRIBUTES["img"] = _IMG_ATTRIBUTES.get("img", set()) | {"data-remote-src"}

# The agent's ticket page may load images from the web, but only those an agent asked to see: sanitised
# mail never has a remote `src`; the page's script copies `data-remote-src` into `src` on request.
AGENT_TICKET_CSP = (
    "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _clean_html(html: str | None, images: Mapping[str, str] | None = None, remote: bool = False) -> Markup:
    # The tickets service sanitises already; cleaning again keeps a bug there from reaching an agent.
    # `images` maps Content-IDs to this page's attachment URLs: `<img src="cid:X">` shows attachment X in
    # place. Every other image source (remote ones tell the sender the mail was read) is removed; with
    # `remote` (the agent's page) a remote image's address stays in `data-remote-src`, loaded only when the
    # agent asks.
    inline = images or {}

    def attribute(tag: str, attr: str, value: str) -> str | None:
        if tag == "img" and attr == "src":
            if value[:4].lower() != "cid:":
                return None
            cid = value[4:].strip()
            return inline.get(cid) or inline.get(unquote(cid))
        if tag == "img" and attr == "data-remote-src":
            return value.strip() if remote and _REMOTE_URL.match(value.strip()) else None
        if value[:4].lower() == "cid:":
            return None
        return value

    cleaned = nh3.clean(
        html or "",
        attributes=_IMG_ATTRIBUTES,
        link_rel="noopener noreferrer",
        url_schemes=nh3.ALLOWED_URL_SCHEMES | {"cid"},
        attribute_filter=attribute,
    )
    return Markup(cleaned)  # noqa: S704 - nh3 output only


def _filesize(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _files(ticket: TicketDetail, base: str) -> dict[str, Any]:
    # The page's own attachment route for each file; inline images (cid:) point at the same URLs.
    urls = {a.attachment_id: base + quote(a.attachment_id, safe="") for a in ticket.attachments}
    images = {a.content_id: urls[a.attachment_id] for a in ticket.attachments if a.content_id}
    return {"files": [(a, urls[a.attachment_id]) for a in ticket.attachments], "images": images}


def _download(download: Download) -> Response:
    # Ingest chose the type and the disposition (always a download, never rendered); the portal keeps them.
    headers = dict(download.headers)
    headers.setdefault("content-type", "application/octet-stream")
    headers.setdefault("content-disposition", "attachment")
    headers.setdefault("x-content-type-options", "nosniff")
    headers.setdefault("content-security-policy", "default-src 'none'; sandbox")
    headers["cache-control"] = "private"
    return Response(download.content, headers=headers)


REPROCESS_NOTICES = {
    "accepted": "Message {id} was read and handed on: it becomes a ticket or a comment.",
    "duplicate": "Message {id} was read, but it had arrived before: nothing new was made.",
    "unreadable": "Message {id} is still unreadable: {reason}",
    "missing": "There is no quarantined message {id}.",
}


def _reprocess_notice(quarantine_id: str, outcome: str, reasons: Mapping[str, str]) -> str:
    # The reason is read from the list, not the URL, so a link cannot put words on the admin's page.
    template = REPROCESS_NOTICES.get(outcome)
    if template is None or not quarantine_id:
        return ""
    return template.format(id=quarantine_id, reason=reasons.get(quarantine_id) or "see its reason below.")


def _detail(detail: Any) -> str:
    if detail is None or detail == "":
        return ""
    if isinstance(detail, Mapping):
        if set(detail) >= {"from", "to"}:
            return f"{_detail(detail['from']) or '—'} → {_detail(detail['to']) or '—'}"
        return ", ".join(f"{k.replace('_', ' ')}: {_detail(v) or '—'}" for k, v in detail.items())
    if isinstance(detail, list | tuple):
        return ", ".join(_detail(v) for v in detail)
    return str(detail)


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        status=lambda k: label(k, STATUS_LABELS),
        priority=lambda k: label(k, PRIORITY_LABELS),
        channel=lambda k: label(k, CHANNEL_LABELS),
        role=lambda k: label(k, ROLE_LABELS),
        key=lambda k: label(k, {}),
        when=_when,
        iso=_iso,
        clean_html=_clean_html,
        filesize=_filesize,
        segment=lambda v: quote(str(v), safe=""),
        detail=_detail,
        action=lambda a: str(a).replace("_", " ").capitalize(),
    )
    env.globals["VIEWS"] = VIEWS
    return Jinja2Templates(env=env)


def build_router(portal: Portal) -> APIRouter:
    """Return the router with the sign-in and ticket pages; every POST is CSRF-checked."""
    router = page_router()
    Admin = AdminUser

    async def link_ticket(token: str) -> TicketDetail:
        if not LINK_TOKEN.fullmatch(token):
            raise PageError(404, "Link not found", "This ticket link is not valid.")
        try:
            return await portal.tickets.get_by_link(token)
        except TicketNotFound:
            raise PageError(404, "Link not found", "This ticket link is not valid.") from None

    async def attachment_of(ticket: TicketDetail, attachment_id: str) -> Response:
        # Only a file of the ticket the visitor may see is fetched; ingest itself checks no user.
        if attachment_id not in {a.attachment_id for a in ticket.attachments}:
            raise PageError(404, "Attachment not found", "This ticket has no such attachment.")
        return _download(await portal.ingest.attachment(attachment_id))

    def show_link(
        request: Request, token: str, ticket: TicketDetail, *, status: int = 200, alert: str = "", draft: str = ""
    ) -> Response:
        # The customer has no account: an anonymous session carries the reply form's CSRF token.
        session = portal.session_of(request)
        form_session = session or Session.anonymous()
        response = render(
            request,
            "ticket_link.html",
            status,
            ticket=ticket,
            token=token,
            csrf_token=portal.sessions.csrf_token(form_session),
            may_reply=not is_closed(ticket.status, ticket.status_category),
            reply_command=new_command_id(),
            draft_text=draft,
            alert=alert,
            **_files(ticket, f"/t/{token}/attachments/"),
        )
        if session is None:
            portal.set_session(response, form_session)
        return response

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/tickets", status_code=303)

    @router.get("/login")
    async def login_form(request: Request, next: str = "") -> Response:  # noqa: A002 - the query name
        target = safe_next(next)
        session = portal.session_of(request)
        if await portal.accounts.user_of(session):
            return RedirectResponse(target, status_code=303)
        fresh = session is None or session.user_id is not None
        form_session = Session.anonymous() if fresh or session is None else session
        response = render(
            request,
            "login.html",
            csrf_token=portal.sessions.csrf_token(form_session),
            next=target,
            email="",
            error="",
        )
        if fresh:
            portal.set_session(response, form_session)
        return response

    @router.post("/login")
    async def login(
        request: Request,
        email: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "",  # noqa: A002 - the form field's name
    ) -> Response:
        target = safe_next(next)
        client = request.client.host if request.client else "unknown"
        session = portal.session_of(request) or Session.anonymous()  # csrf_protect has checked it is there
        try:
            user = await portal.accounts.sign_in(email, password, client)
        except (WrongCredentials, TooManyAttempts) as exc:
            limited = isinstance(exc, TooManyAttempts)
            portal.count_sign_in("rate_limited" if limited else "failed")
            response = render(
                request,
                "login.html",
                429 if limited else 401,
                csrf_token=portal.sessions.csrf_token(session),
                next=target,
                email=email[:320],
                error=str(exc),
            )
            if isinstance(exc, TooManyAttempts):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        portal.count_sign_in("succeeded")
        log.info("%s signed in", user.email)
        if user.role == "customer" and target == AFTER_SIGN_IN:
            # The default landing page is the agents'; a customer's is their own requests.
            target = CUSTOMER_HOME
        response = RedirectResponse(target, status_code=303)
        portal.set_session(response, Session.signed_in(user.id, user.session_version))
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        portal.clear_session(response)
        return response

    @router.get("/me")
    async def my_settings(request: Request, user: SignedIn, saved: str = "") -> Response:
        return render(request, "me.html", saved=saved == "1")

    @router.post("/me")
    async def save_my_settings(request: Request, user: SignedIn, language: Annotated[str, Form()] = "") -> Response:
        if language and language not in LANGUAGES:
            return render(request, "me.html", 422, saved=False)
        await portal.accounts.users.set_language(user.id, language)
        log.info("%s chose the language %r", user.email, language or "(browser)")
        return RedirectResponse("/me?saved=1", status_code=303)

    @router.get("/t/{token}")
    async def ticket_link(request: Request, token: str) -> Response:
        # The secret link is the customer's key to one ticket: no account, public conversation only.
        return show_link(request, token, await link_ticket(token))

    @router.post("/t/{token}/comments")
    async def ticket_link_reply(
        request: Request,
        token: str,
        text: Annotated[str, Form()] = "",
        command_id: Annotated[str, Form()] = "",
    ) -> Response:
        # Whoever holds the link answers as the ticket's requester: a customer comment, nothing else.
        ticket = await link_ticket(token)
        command = command_id_of(command_id)
        text = _comment_text(text)

        t = translator(language_for(request))

        def refuse(status: int, why: str) -> Response:
            alert = t("Not sent: {why}", why=why)
            return show_link(request, token, ticket, status=status, alert=alert, draft=text)

        if is_closed(ticket.status, ticket.status_category):
            return refuse(409, t("this request is closed. Write to us again to open a new one."))
        if not text.strip():
            return refuse(422, t("write your answer first."))
        if len(text) > MAX_COMMENT_LENGTH:
            return refuse(422, t("an answer may be at most {n} characters long.", n=f"{MAX_COMMENT_LENGTH:,}"))
        requester = ticket.requester
        if requester is None or not requester.email.isascii():
            # The tickets service is told who acts in ASCII headers; such an address can only answer by mail.
            return refuse(409, t("answers to this request go by email. Reply to our last email instead."))
        try:
            await portal.tickets.add_comment(
                Actor.requester(requester.email, requester.name),
                ticket.number,
                kind="customer_comment",
                text=text,
                command_id=command,
                channel="portal",
            )
        except CommandRefused as exc:
            return refuse(exc.status, sentence(exc.message))
        log.info("the requester of ticket #%s answered through the ticket link", ticket.number)
        return RedirectResponse(f"/t/{token}", status_code=303)

    @router.get("/t/{token}/attachments/{attachment_id}")
    async def ticket_link_attachment(token: str, attachment_id: str) -> Response:
        return await attachment_of(await link_ticket(token), attachment_id)

    @router.get("/admin/quarantine")
    async def quarantine(request: Request, user: Admin, id: str = "", outcome: str = "") -> Response:  # noqa: A002
        entries = await portal.ingest.quarantine()
        notice = _reprocess_notice(id, outcome, {e.id: e.reason for e in entries})
        return render(request, "quarantine.html", entries=entries, notice=notice)

    @router.get("/admin/quarantine/{quarantine_id}/raw")
    async def quarantine_raw(user: Admin, quarantine_id: str) -> Response:
        return _download(await portal.ingest.quarantine_raw(quarantine_id))

    @router.post("/admin/quarantine/{quarantine_id}/reprocess")
    async def quarantine_reprocess(user: Admin, quarantine_id: str) -> Response:
        try:
            outcome = (await portal.ingest.reprocess(quarantine_id)).outcome
        except IngestNotFound:
            outcome = "missing"
        log.info("%s reprocessed quarantined message %s: %s", user.email, quarantine_id, outcome)
        query = urlencode({"id": quarantine_id, "outcome": outcome})
        return RedirectResponse(f"/admin/quarantine?{query}", status_code=303)

    return router


def _description_is_separate(description: str, comments: list[Comment]) -> bool:
    # Tickets from email often repeat the first message as the description; show it once.
    if not description.strip():
        return False
    return not comments or comments[0].text.strip() != description.strip()


def install(app: FastAPI, portal: Portal) -> None:
    """Add the pages, the static files, the error pages and the security headers to the app."""
    templates = _templates()
    app.state.templates = templates
    app.include_router(build_router(portal))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ServerTiming)  # added last, so outermost: it times the other middleware too

    def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        context = template_context(request, {"title": title, "message": message, "status": status})
        response = templates.TemplateResponse(request, "error.html", context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    def handle(exc_type: type[Exception], make: Callable[[Request, Any], Response]) -> None:
        async def handler(request: Request, exc: Exception) -> Response:
            return make(request, exc)

        app.add_exception_handler(exc_type, handler)

    def to_sign_in(_: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/login?{urlencode({'next': safe_next(exc.next_url)})}", status_code=303)

    def unavailable(request: Request, exc: TicketsUnavailable) -> Response:
        log.warning("showing 'tickets service unavailable' for %s: %s", request.url.path, exc)
        response = error_page(
            request,
            503,
            "Tickets service unavailable",
            "The tickets service is not answering right now. Try again in a moment.",
        )
        response.headers["Retry-After"] = "10"
        return response

    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Page not found", 405: "Not allowed"}
        title = titles.get(exc.status_code, "Something went wrong")
        return error_page(request, exc.status_code, title, title + ".")

    handle(SignInRequired, to_sign_in)
    handle(RedirectTo, lambda _, exc: RedirectResponse(exc.url, status_code=303))
    handle(PageError, lambda request, exc: error_page(request, exc.status, exc.title, exc.message))
    handle(TicketsUnavailable, unavailable)
    handle(
        TicketNotFound,
        lambda request, exc: error_page(
            request, 404, "Ticket not found", "There is no such ticket, or you may not see it."
        ),
    )
    handle(StarletteHTTPException, http_error)

    def ingest_unavailable(request: Request, exc: IngestUnavailable) -> Response:
        log.warning("showing 'ingest unavailable' for %s: %s", request.url.path, exc)
        response = error_page(
            request, 502, "Ingest unavailable", "The mail service is not answering right now. Try again in a moment."
        )
        response.headers["Retry-After"] = "10"
        return response

    handle(IngestUnavailable, ingest_unavailable)

    def service_unavailable(request: Request, exc: ServiceUnavailable) -> Response:
        log.warning("showing 'service unavailable' for %s: %s", request.url.path, exc)
        response = error_page(
            request,
            503,
            "Service unavailable",
            f"The {exc.service} service is not answering right now. Try again in a moment.",
        )
        response.headers["Retry-After"] = "10"
        return response

    handle(ServiceUnavailable, service_unavailable)
    handle(ServiceNotFound, lambda request, exc: error_page(request, 404, "Not found", "There is no such thing here."))
    handle(IngestNotFound, lambda request, exc: error_page(request, 404, "Not found", "There is no such file."))


__all__ = ["SecurityHeaders", "ServerTiming", "build_router", "install"]
