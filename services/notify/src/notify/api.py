"""HTTP API of notify: what was sent, the templates, signatures and settings an admin edits, in-app notices."""

import logging
from datetime import datetime
from typing import Annotated, Any

from contracts.envelope import utcnow
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from hdkit.auth import require_service_token
from hdkit.sanitise import sanitise_html
from pydantic import BaseModel, ConfigDict, Field

from notify.domain import (
    LANGUAGE_PATTERN,
    InAppKind,
    MailSettings,
    RenderError,
    Signature,
    SignatureFields,
    SignatureScope,
    Template,
    check_template,
    scope_problem,
)
from notify.sign_in_links import SignInLinkMailer, SignInLinkNotSent
from notify.store import Store

log = logging.getLogger(__name__)


class TemplateBody(Template):
    """A template as sent to `PUT /templates/{key}/{language}`; key and language come from the path."""

    key: str | None = Field(default=None, description="Must equal the key in the path, if given.")  # type: ignore[assignment]
    language: str | None = Field(default=None, description="Must equal the language in the path, if given.")  # type: ignore[assignment]


class InAppItem(BaseModel):
    """One in-app notification."""

    id: str = Field(description="Its id (derived from the event and the user).")
    user_id: str = Field(description="Whom it is for.")
    ticket_id: str = Field(description="The ticket it is about.")
    ticket_number: int = Field(description="The ticket's number.")
    ticket_title: str = Field(description="The ticket's title then.")
    kind: InAppKind = Field(description="`assigned` or `mentioned`.")
    text: str = Field(description='What to show, e.g. "#1001 assigned to you by Bo".')
    comment_id: str | None = Field(default=None, description="The comment a mention is in.")
    created_at: datetime = Field(description="When it happened.")
    read_at: datetime | None = Field(default=None, description="When the user marked it read; None: unread.")


class InAppList(BaseModel):
    """A user's in-app notifications, newest first, with how many are unread."""

    items: list[InAppItem] = Field(description="The notifications, newest first.")
    unread: int = Field(description="How many of the user's notifications are unread (all of them, not just listed).")


class MarkRead(BaseModel):
    """Which notifications of one user to mark read: the given ids, or all."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(description="Whose notifications.", min_length=1, max_length=200)
    ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, description="Ids to mark read (another user's are left alone).", max_length=500
    )
    all: bool = Field(default=False, description="Mark every unread notification of the user read.")


class MarkedRead(BaseModel):
    """What marking read did."""

    marked: int = Field(description="How many were unread and are read now.")
    unread: int = Field(description="How many are still unread.")


class SignInLinkRequest(BaseModel):
    """A sign-in link to mail to a customer, asked for by the portal."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(
        description="The customer's address.", min_length=3, max_length=320, pattern=r"^[^@\s<>]+@[^@\s<>]+$"
    )
    link: str = Field(description="The sign-in link (http or https).", max_length=2000, pattern=r"^https?://\S+$")
    language: str = Field(default="en", description="Language of the mail (`sv`, `en`, ...).", pattern=LANGUAGE_PATTERN)


def _unprocessable(loc: list[str | int], msg: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": loc, "msg": msg, "type": "value_error"}])


def _inapp_item(doc: dict[str, Any]) -> InAppItem:
    return InAppItem.model_validate({**doc, "id": doc["_id"]})


def make_router(store: Store, *, token: str, sign_in_links: SignInLinkMailer | None = None) -> APIRouter:
    """Return the notifications and templates API (and `POST /sign-in-links` when a mailer is given)."""
    router = APIRouter(dependencies=[Depends(require_service_token(token))])

    if sign_in_links is not None:
        mailer = sign_in_links

        @router.post(
            "/sign-in-links",
            tags=["sign-in"],
            status_code=status.HTTP_202_ACCEPTED,
            summary="Mail a customer their sign-in link now: 202 once the mail server took it, 503 when it did "
            "not (try again shortly), 422 when it never will (bounced address, no template).",
        )
        async def send_sign_in_link(body: SignInLinkRequest) -> dict[str, bool]:
            try:
                await mailer.send(body.to, body.link, body.language)
            except SignInLinkNotSent as exc:
                log.warning("sign-in link to %s not sent: %s", body.to.lower(), exc)
                code = status.HTTP_503_SERVICE_UNAVAILABLE if exc.retry else status.HTTP_422_UNPROCESSABLE_CONTENT
                raise HTTPException(code, f"not sent: {exc}") from exc
            return {"sent": True}

    @router.get("/notifications", tags=["notifications"], summary="Notifications of a ticket, newest first.")
    async def notifications(
        ticket_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        docs = await store.for_ticket(ticket_id, limit)
        return [{"notification_id": d.pop("_id"), **d} for d in docs]

    @router.get("/templates", tags=["templates"], summary="Every email template.")
    async def templates() -> list[Template]:
        return await store.list_templates()

    @router.get("/templates/{key}/{language}", tags=["templates"], summary="One email template.")
    async def get_template(key: str, language: str) -> Template:
        found = await store.find_template(key, [language])
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no template {key!r} in {language!r}")
        return found

    @router.put("/templates/{key}/{language}", tags=["templates"], summary="Create or replace an email template.")
    async def put_template(
        key: Annotated[str, Path(max_length=100)],
        language: Annotated[str, Path(max_length=10)],
        body: TemplateBody,
    ) -> Template:
        for part, given, expected in (("key", body.key, key), ("language", body.language, language)):
            if given is not None and given != expected:
                raise _unprocessable(["body", part], f"does not match the {part} in the path ({expected!r})")
        try:
            template = Template.model_validate({**body.model_dump(), "key": key, "language": language})
        except ValueError as exc:
            raise _unprocessable(["path"], str(exc)) from exc
        try:
            check_template(template)
        except RenderError as exc:
            part = str(exc).partition(":")[0]
            raise _unprocessable(["body", part], str(exc)) from exc
        return await store.put_template(template)

    @router.get(
        "/signatures", tags=["signatures"], summary="Every signature, optionally of one scope, mailbox or user."
    )
    async def signatures(
        scope: SignatureScope | None = None,
        mailbox: Annotated[str | None, Query(max_length=320)] = None,
        user_id: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[Signature]:
        return [
            s
            for s in await store.signatures()
            if (scope is None or s.scope == scope)
            and (mailbox is None or s.mailbox == mailbox.lower())
            and (user_id is None or s.user_id == user_id)
        ]

    @router.put(
        "/signatures",
        tags=["signatures"],
        summary="Create or replace the signature of one scope (general, mailbox, personal, personal_mailbox).",
    )
    async def put_signature(body: SignatureFields) -> Signature:
        if (problem := scope_problem(body.scope, body.mailbox, body.user_id)) is not None:
            raise _unprocessable(["body", problem[0]], problem[1])
        fields = body.model_dump()
        if body.html is not None:
            fields["html"] = sanitise_html(body.html)  # goes into customers' mail as it is
        return await store.put_signature(Signature.model_validate(fields))

    @router.delete(
        "/signatures",
        tags=["signatures"],
        summary="Delete the signature of one scope; 404 when there is none.",
        status_code=status.HTTP_204_NO_CONTENT,
    )
    async def delete_signature(
        scope: SignatureScope,
        mailbox: Annotated[str | None, Query(max_length=320)] = None,
        user_id: Annotated[str | None, Query(max_length=200)] = None,
        language: Annotated[str | None, Query(pattern=LANGUAGE_PATTERN)] = None,
    ) -> Response:
        if (problem := scope_problem(scope, mailbox, user_id)) is not None:
            raise _unprocessable(["query", problem[0]], problem[1])
        if not await store.delete_signature(scope, mailbox, user_id, language):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such signature")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/settings", tags=["settings"], summary="The mail settings: notify mode, closing greetings.")
    async def get_settings() -> MailSettings:
        return await store.mail_settings()

    @router.put("/settings", tags=["settings"], summary="Replace the mail settings (fields left out: defaults).")
    async def put_settings(body: MailSettings) -> MailSettings:
        return await store.put_mail_settings(body)

    @router.get("/inapp", tags=["in-app"], summary="A user's in-app notifications, newest first, and the unread count.")
    async def inapp(
        user_id: Annotated[str, Query(min_length=1, max_length=200)],
        unread: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> InAppList:
        docs, unread_count = await store.list_inapp(user_id, unread=unread, limit=limit)
        return InAppList(items=[_inapp_item(d) for d in docs], unread=unread_count)

    @router.post("/inapp/read", tags=["in-app"], summary="Mark a user's notifications read: some ids, or all.")
    async def mark_read(body: MarkRead) -> MarkedRead:
        if body.all and body.ids is not None:
            raise _unprocessable(["body", "ids"], "give ids or all: true, not both")
        if not body.all and not body.ids:
            raise _unprocessable(["body", "ids"], "give the ids to mark read, or all: true")
        marked = await store.mark_inapp_read(body.user_id, None if body.all else body.ids, utcnow())
        _, unread = await store.list_inapp(body.user_id, unread=True, limit=1)
        return MarkedRead(marked=marked, unread=unread)

    return router
