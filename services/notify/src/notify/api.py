"""HTTP API of notify: what was sent about a ticket, and the templates an admin edits."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from hdkit.auth import require_service_token
from pydantic import Field

from notify.domain import RenderError, Template, check_template
from notify.store import Store


class TemplateBody(Template):
    """A template as sent to `PUT /templates/{key}/{language}`; key and language come from the path."""

    key: str | None = Field(default=None, description="Must equal the key in the path, if given.")  # type: ignore[assignment]
    language: str | None = Field(default=None, description="Must equal the language in the path, if given.")  # type: ignore[assignment]


def _unprocessable(loc: list[str | int], msg: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": loc, "msg": msg, "type": "value_error"}])


def make_router(store: Store, *, token: str) -> APIRouter:
    """Return the notifications and templates API."""
    router = APIRouter(dependencies=[Depends(require_service_token(token))])

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

    return router
