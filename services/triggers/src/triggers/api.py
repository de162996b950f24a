"""HTTP API of triggers: rules (list, edit, switch, dry run), the firing log, calendars and SLA policies."""

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from contracts.envelope import utcnow
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from hdkit.auth import require_service_token
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from triggers.calendar import ALWAYS_OPEN, CALENDAR_ID_PATTERN, BusinessCalendar
from triggers.domain import (
    RULE_ID_PATTERN,
    SECRET_MASK,
    CallWebhook,
    Context,
    Rule,
    RuleSpec,
    evaluate_event,
    rule_applies,
    time_rule_due,
)
from triggers.handlers import CalendarCache, Handlers
from triggers.sla import POLICY_ID_PATTERN, SlaPolicy
from triggers.store import Store

log = logging.getLogger(__name__)
KEEP_ONLY_SAME_URL = "send the secret: a stored one is kept only for the same URL"

RuleId = Annotated[str, Path(description="Rule id (slug).", pattern=RULE_ID_PATTERN)]


class RuleBody(RuleSpec):
    """A rule as sent to `PUT /rules/{id}`; `id` may be left out, and must match the path when given."""

    id: str | None = Field(default=None, description="Must equal the id in the path, if given.")


class ActiveBody(BaseModel):
    """Body of `POST /rules/{id}/active`."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = Field(default=None, description="New state; leave out to flip the current one.")


class DryRunBody(BaseModel):
    """Body of `POST /rules/dry-run`: a rule (saved or not) and how far back to look."""

    model_config = ConfigDict(extra="forbid")

    rule: RuleSpec = Field(description="The rule to try (it is not saved).")
    days: int = Field(default=7, ge=1, le=90, description="How many days of ticket events to replay.")
    limit: int = Field(default=200, ge=1, le=1000, description="Most matches listed.")


class DryRunMatch(BaseModel):
    """One event (or, for a time rule, one ticket) the rule would have fired on, and what it would have done."""

    ticket_id: str
    ticket_number: int | None
    event_id: str | None = Field(description="The event it would have fired on (None for a time rule).")
    at: str = Field(description="When (the event's time; for a time rule, when it is or was due).")
    conditions_met: list[str]
    actions: list[dict[str, Any]]
    suppressed: list[dict[str, Any]]


class DryRunResult(BaseModel):
    """What a rule would have done over the last days, without doing it."""

    scanned: int = Field(description="Events (or tickets, for a time rule) looked at.")
    matches: list[DryRunMatch]


class CalendarBody(BusinessCalendar):
    """A calendar as sent to `PUT /calendars/{id}`; `id` comes from the path."""

    id: str = Field(default="", description="Ignored: the id is the path's.")


class PolicyBody(SlaPolicy):
    """An SLA policy as sent to `PUT /sla-policies/{id}`; `id` comes from the path."""

    id: str = Field(default="", description="Ignored: the id is the path's.")


CalendarId = Annotated[str, Path(description="Calendar id (slug).", pattern=CALENDAR_ID_PATTERN)]
PolicyId = Annotated[str, Path(description="SLA policy id (slug).", pattern=POLICY_ID_PATTERN)]


def _keep_secrets(rule: Rule, previous: Rule | None) -> Rule:
    """Put back a webhook's stored secret where an edit sent the mask it was shown (same URL, same place)."""
    if previous is None:
        return rule
    actions = list(rule.actions)
    for index, action in enumerate(actions):
        if not isinstance(action, CallWebhook) or action.secret.get_secret_value() != SECRET_MASK:
            continue
        old = previous.actions[index] if index < len(previous.actions) else None
        if isinstance(old, CallWebhook) and old.url == action.url:
            actions[index] = action.model_copy(update={"secret": SecretStr(old.secret.get_secret_value())})
    return rule.model_copy(update={"actions": tuple(actions)})


def make_router(
    store: Store,
    *,
    token: str,
    on_change: Callable[[], None],
    handlers: Handlers | None = None,
    calendars: CalendarCache | None = None,
) -> APIRouter:
    """Return the triggers API; `on_change` is called after every rule edit (to drop cached rules)."""
    router = APIRouter(tags=["rules"], dependencies=[Depends(require_service_token(token))])
    tasks: set[asyncio.Task[None]] = set()

    async def give_timers(rule: Rule) -> None:
        """Give a time rule its timers on every open ticket (after it was added, edited or switched on)."""
        if handlers is None or rule.event != "time":
            return
        scheduled = 0
        async for ticket in store.open_tickets():
            scheduled += await handlers.schedule_rule_for(rule, ticket)
        log.info("time rule %r: %d ticket(s) got a timer", rule.name, scheduled)

    def after_edit(rule: Rule | None) -> None:
        on_change()
        if rule is not None and rule.event == "time" and handlers is not None:
            task = asyncio.create_task(give_timers(rule))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

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
        rule = _keep_secrets(rule, await store.get_rule(rule_id))
        masked = [
            ["body", "actions", i, "webhook", "secret"]
            for i, a in enumerate(rule.actions)
            if isinstance(a, CallWebhook) and a.secret.get_secret_value() == SECRET_MASK
        ]
        if masked:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": loc,
                        "msg": "send the secret: a stored one is kept only for the same URL",
                        "type": "value_error",
                    }
                    for loc in masked
                ],
            )
        await store.put_rule(rule)
        after_edit(rule)
        return rule

    @router.post("/rules/{rule_id}/active", summary="Switch a rule on or off (no body: flip it).")
    async def set_active(rule_id: RuleId, body: ActiveBody | None = None) -> Rule:
        rule = await store.set_active(rule_id, body.active if body else None)
        if rule is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}")
        after_edit(rule if rule.active else None)
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

    @router.post("/rules/dry-run", summary="What a rule would have done over the last N days, without doing it.")
    async def dry_run(body: DryRunBody) -> DryRunResult:
        rule = Rule.model_validate({**body.rule.model_dump(), "id": "dry-run", "active": True})
        since = utcnow() - timedelta(days=body.days)
        known = await calendars.get() if calendars is not None else {ALWAYS_OPEN.id: ALWAYS_OPEN}
        matches: list[DryRunMatch] = []
        if rule.event == "time":
            tickets = await store.tickets_seen_since(since, limit=20_000)
            now = Context(now=utcnow(), calendars=known)
            for ticket in tickets:
                event = {"ticket": ticket}
                due = time_rule_due(rule, event, now)
                if due is None or len(matches) >= body.limit:
                    continue
                at_due = Context(now=due, calendars=known)
                matches.append(_match(rule, ticket, None, due.isoformat(), event, at_due))
            return DryRunResult(scanned=len(tickets), matches=matches)
        records = await store.firings_since(since, rule.event, limit=50_000)
        for record in records:
            event = record.get("data") or {}
            at = record["handled_at"]
            if not isinstance(event.get("ticket"), dict):
                continue
            then = Context(now=at, calendars=known)
            if rule_applies(rule, rule.event, event, then):
                matches.append(_match(rule, event["ticket"], record["_id"], at.isoformat(), event, then))
                if len(matches) >= body.limit:
                    break
        return DryRunResult(scanned=len(records), matches=matches)

    # --------------------------------------------------------------------------------- calendars

    @router.get("/calendars", tags=["calendars"], summary="Every business-hours calendar (with the built-in 24x7).")
    async def list_calendars() -> list[BusinessCalendar]:
        stored = await store.all_calendars()
        return stored if any(c.id == ALWAYS_OPEN.id for c in stored) else [ALWAYS_OPEN, *stored]

    @router.put("/calendars/{calendar_id}", tags=["calendars"], summary="Create or replace a calendar.")
    async def put_calendar(calendar_id: CalendarId, body: CalendarBody) -> BusinessCalendar:
        if calendar_id == ALWAYS_OPEN.id:
            raise HTTPException(status.HTTP_409_CONFLICT, f"{ALWAYS_OPEN.id!r} is built in and cannot be changed")
        calendar = BusinessCalendar.model_validate({**body.model_dump(exclude={"id"}), "id": calendar_id})
        await store.put_calendar(calendar)
        if calendars is not None:
            calendars.invalidate()
        return calendar

    @router.delete(
        "/calendars/{calendar_id}", tags=["calendars"], status_code=status.HTTP_204_NO_CONTENT, summary="Delete one."
    )
    async def delete_calendar(calendar_id: CalendarId) -> None:
        users = [p.id for p in await store.all_policies() if p.calendar == calendar_id]
        users += [r.id for r in await store.all_rules() if calendar_id in r.calendars]
        if users:
            raise HTTPException(status.HTTP_409_CONFLICT, f"calendar {calendar_id!r} is used by: {', '.join(users)}")
        if not await store.delete_calendar(calendar_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no calendar {calendar_id!r}")
        if calendars is not None:
            calendars.invalidate()

    # --------------------------------------------------------------------------------- SLA policies

    @router.get("/sla-policies", tags=["sla"], summary="Every SLA policy.")
    async def list_policies() -> list[SlaPolicy]:
        return await store.all_policies()

    @router.put("/sla-policies/{policy_id}", tags=["sla"], summary="Create or replace an SLA policy.")
    async def put_policy(policy_id: PolicyId, body: PolicyBody) -> SlaPolicy:
        policy = SlaPolicy.model_validate({**body.model_dump(exclude={"id"}), "id": policy_id})
        known = await calendars.get() if calendars is not None else {ALWAYS_OPEN.id: ALWAYS_OPEN}
        if policy.calendar not in known:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "calendar"], "msg": f"no calendar {policy.calendar!r}", "type": "value_error"}],
            )
        await store.put_policy(policy)
        return policy

    @router.delete(
        "/sla-policies/{policy_id}", tags=["sla"], status_code=status.HTTP_204_NO_CONTENT, summary="Delete one."
    )
    async def delete_policy(policy_id: PolicyId) -> None:
        if not await store.delete_policy(policy_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no SLA policy {policy_id!r}")

    return router


def _match(
    rule: Rule, ticket: dict[str, Any], event_id: str | None, at: str, event: dict[str, Any], ctx: Context
) -> DryRunMatch:
    """Return a dry run's match: the firing the rule would have made (loop protection included)."""
    firings = evaluate_event([rule], rule.event, event, ctx).firings
    empty: dict[str, Any] = {"conditions_met": [], "actions": [], "suppressed": []}
    record = firings[0].as_record() if firings else empty
    return DryRunMatch(
        ticket_id=str(ticket.get("ticket_id")),
        ticket_number=ticket.get("number"),
        event_id=event_id,
        at=at,
        conditions_met=record["conditions_met"],
        actions=record["actions"],
        suppressed=record["suppressed"],
    )
