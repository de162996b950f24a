"""HTTP API of triggers: the rules an admin lists, edits and switches on or off, and the firing log."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from hdkit.auth import require_service_token
from pydantic import BaseModel, ConfigDict, Field

from triggers.domain import RULE_ID_PATTERN, Rule, RuleSpec
from triggers.store import Store

RuleId = Annotated[str, Path(description="Rule id (slug).", pattern=RULE_ID_PATTERN)]


class RuleBody(RuleSpec):
    """A rule as sent to `PUT /rules/{id}`; `id` may be left out, and must match the path when given."""

    id: str | None = Field(default=None, description="Must equal the id in the path, if given.")


class ActiveBody(BaseModel):
    """Body of `POST /rules/{id}/active`."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = Field(default=None, description="New state; leave out to flip the current one.")


def make_router(store: Store, *, token: str, on_change: Callable[[], None]) -> APIRouter:
    """Return the rules API; `on_change` is called after every edit (to drop cached rules)."""
    router = APIRouter(tags=["rules"], dependencies=[Depends(require_service_token(token))])

    async def found(rule_id: str) -> Rule:
        rule = await store.get_rule(rule_id)
        if rule is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}")
        return rule

    @router.get("/rules", summary="List every rule (active or not), by name.")
    async def list_rules() -> list[Rule]:
        return await store.all_rules()

    @router.get("/rules/{rule_id}", summary="One rule.")
    async def get_rule(rule_id: RuleId) -> Rule:
        return await found(rule_id)

    @router.put("/rules/{rule_id}", summary="Create or replace a rule.")
    async def put_rule(rule_id: RuleId, body: RuleBody) -> Rule:
        if body.id is not None and body.id != rule_id:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": ["body", "id"],
                        "msg": f"does not match the id in the path ({rule_id!r})",
                        "type": "value_error",
                    }
                ],
            )
        rule = Rule.model_validate({**body.model_dump(exclude={"id"}), "id": rule_id})
        await store.put_rule(rule)
        on_change()
        return rule

    @router.post("/rules/{rule_id}/active", summary="Switch a rule on or off (no body: flip it).")
    async def set_active(rule_id: RuleId, body: ActiveBody | None = None) -> Rule:
        rule = await store.set_active(rule_id, body.active if body else None)
        if rule is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}")
        on_change()
        return rule

    @router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a rule.")
    async def delete_rule(rule_id: RuleId) -> None:
        if not await store.delete_rule(rule_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}")
        on_change()

    @router.get("/firings", tags=["log"], summary="What the rules did on one ticket, newest first.")
    async def firings(
        ticket_id: Annotated[str, Query(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        docs = await store.firings_for_ticket(ticket_id, limit)
        return [{"event_id": d.pop("_id"), **d} for d in docs]

    return router
