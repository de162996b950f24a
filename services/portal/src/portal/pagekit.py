"""What every page module shares: the `Portal` (clients and sessions), who may open a page, rendering.

Page modules (`web`, `admin_pages`, `customer_pages`, ...) each build an `APIRouter` with
`page_router()`, which refuses every unsafe request without the session's CSRF token, and take the
signed-in person with one of the `Annotated` dependencies below: `SignedIn`, `StaffUser`, `AgentUser`,
`AdminUser`, `CustomerUser`. The checks run on the server for every request; templates only hide links.
"""

import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from prometheus_client import Counter

from portal.accounts import Accounts
from portal.domain import AGENT_ROLES, User
from portal.i18n import LANGUAGES, language_of, translator
from portal.ingest_client import Ingest
from portal.security import Session, SessionCodec
from portal.tickets_client import Tickets
from portal.triggers_client import Triggers

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TICKET_NUMBER = 2**53
COMMAND_ID = re.compile(r"[A-Za-z0-9_-]{8,100}")
VERSION = re.compile(r"[1-9][0-9]{0,11}")
CUSTOMER_HOME = "/my/tickets"
"""Where a customer lands after signing in, and where a customer who opens an agents' page is sent."""


class SignInRequired(Exception):
    """The page needs a signed-in user; the visitor goes to the sign-in page and comes back after."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PageError(Exception):
    """A page that cannot be shown, with the status and the message the person sees."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class RedirectTo(Exception):
    """Send the visitor to another page of the portal (303), e.g. a customer who opened an agents' page."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


@dataclass
class Portal:
    """What the pages need, built in `app.create_app`.

    `services` holds the clients and stores that only some page modules use (notify, snippets, saved
    views...), by name, so adding one does not change every constructor.
    """

    accounts: Accounts
    tickets: Tickets
    ingest: Ingest
    triggers: Triggers
    sessions: SessionCodec
    cookie_secure: bool
    sign_ins: Counter | None = None
    public_url: str = "http://127.0.0.1:8000"
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def cookie_name(self) -> str:
        """The session cookie's name (`__Host-` makes browsers refuse it over http or for another host)."""
        return "__Host-portal_session" if self.cookie_secure else "portal_session"

    def session_of(self, request: Request) -> Session | None:
        """Return the valid session the request's cookie holds, if any."""
        return self.sessions.loads(request.cookies.get(self.cookie_name))

    def set_session(self, response: Response, session: Session) -> None:
        """Put a session cookie on a response."""
        response.set_cookie(
            self.cookie_name,
            self.sessions.dumps(session),
            max_age=self.sessions.max_age,
            path="/",
            secure=self.cookie_secure,
            httponly=True,
            samesite="lax",
        )

    def clear_session(self, response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(self.cookie_name, path="/", secure=self.cookie_secure, httponly=True, samesite="lax")

    def count_sign_in(self, outcome: str) -> None:
        """Count a sign-in attempt by outcome."""
        if self.sign_ins is not None:
            self.sign_ins.labels(outcome=outcome).inc()

    def service(self, name: str) -> Any:
        """Return a client or store registered under `name` in `services`; a missing one is a 503 page."""
        found = self.services.get(name)
        if found is None:
            raise PageError(503, "Not available", f"This part of the portal is not set up ({name}).")
        return found


def portal_of(request: Request) -> Portal:
    """Return the portal of the app handling the request."""
    return request.app.state.portal


async def csrf_protect(request: Request) -> None:
    """Refuse an unsafe request whose form does not carry the CSRF token of the visitor's session.

    Forms send it as the field `csrf_token`; htmx and scripts may send it as the header `X-CSRF-Token`.
    """
    if request.method in SAFE_METHODS:
        return
    portal = portal_of(request)
    token = request.headers.get("x-csrf-token")
    if token is None:
        form = await request.form()
        token = form.get("csrf_token")
    if not portal.sessions.csrf_ok(portal.session_of(request), token):
        log.info("refused a %s to %s without a valid CSRF token", request.method, request.url.path)
        raise PageError(
            403,
            "Form expired",
            "This form has expired or did not come from this site. Reload the page and try again.",
        )


def page_router(**kwargs: Any) -> APIRouter:
    """Return a router for pages: CSRF-checked, left out of the OpenAPI schema."""
    return APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False, **kwargs)


async def signed_in(request: Request) -> User:
    """Return the signed-in user (sending anyone else to the sign-in page) and keep the CSRF token for forms."""
    portal = portal_of(request)
    session = portal.session_of(request)
    user = await portal.accounts.user_of(session)
    if user is None or session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    request.state.user = user
    request.state.csrf_token = portal.sessions.csrf_token(session)
    return user


SignedIn = Annotated[User, Depends(signed_in)]


async def staff(user: SignedIn) -> User:
    """Let admins, agents and light agents in; send a customer to the customer portal."""
    if user.role not in AGENT_ROLES:
        raise RedirectTo(CUSTOMER_HOME)
    return user


StaffUser = Annotated[User, Depends(staff)]


async def agent(user: StaffUser) -> User:
    """Let admins and agents in (they change fields and answer customers), not light agents."""
    if user.role not in ("admin", "agent"):
        raise PageError(403, "For agents only", "Light agents may read tickets and write internal comments only.")
    return user


AgentUser = Annotated[User, Depends(agent)]


async def admin(user: StaffUser) -> User:
    """Let admins in; send a customer to the customer portal; refuse agents and light agents (403)."""
    if user.role != "admin":
        raise PageError(403, "For admins only", "Only admins may open this page.")
    return user


AdminUser = Annotated[User, Depends(admin)]


async def customer(user: SignedIn) -> User:
    """Let customers in; send staff to their workspace."""
    if user.role != "customer":
        raise RedirectTo("/tickets")
    return user


CustomerUser = Annotated[User, Depends(customer)]


def new_command_id() -> str:
    """Return a fresh idempotency key for one form: submitted twice, it changes the ticket once."""
    return secrets.token_urlsafe(16)


def command_id_of(value: str) -> str:
    """Return a form's idempotency key, or show 'form incomplete' when it is missing or malformed."""
    if not COMMAND_ID.fullmatch(value):
        raise PageError(400, "Form incomplete", "This form is missing a part. Reload the page and try again.")
    return value


def version_of(value: str) -> int | None:
    """Return the ticket version a form was made from, or None when it has none."""
    return int(value) if VERSION.fullmatch(value) else None


def ticket_number_of(number: str) -> int:
    """Return a ticket number from a URL, or a 404 page for anything that is not one."""
    if not number.isascii() or not number.isdigit() or not 0 < int(number) < MAX_TICKET_NUMBER:
        raise PageError(404, "Ticket not found", "There is no ticket with that number.")
    return int(number)


def sentence(text: str) -> str:
    """Return a message as a sentence: capital first letter, a full stop at the end."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def language_for(request: Request) -> str:
    """Return the language of the page: the signed-in user's choice, else the browser's."""
    user = getattr(request.state, "user", None)
    return language_of(getattr(user, "language", None), request.headers.get("accept-language"))


def template_context(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    """Add what every template uses: the user, the CSRF token, the language and its `t()`."""
    language = language_for(request)
    context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    context.setdefault("lang", language)
    context.setdefault("t", translator(language))
    context.setdefault("LANGUAGES", LANGUAGES)
    return context


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template as a page nobody caches."""
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, name, template_context(request, context), status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def is_htmx(request: Request) -> bool:
    """Tell whether htmx asked for the request (it wants a fragment, not a whole page)."""
    return request.headers.get("hx-request") == "true"


__all__ = [
    "CUSTOMER_HOME",
    "AdminUser",
    "AgentUser",
    "CustomerUser",
    "PageError",
    "Portal",
    "RedirectTo",
    "SignInRequired",
    "SignedIn",
    "StaffUser",
    "command_id_of",
    "csrf_protect",
    "is_htmx",
    "new_command_id",
    "page_router",
    "portal_of",
    "render",
    "sentence",
    "signed_in",
    "ticket_number_of",
    "version_of",
]
