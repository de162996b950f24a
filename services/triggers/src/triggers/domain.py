"""The rule engine: a rule is the items it applies to + an event + conditions + actions. Pure code.

No Kafka, no store, no HTTP here. A rule fires when its trigger event happens, the ticket is one it
applies to, and every condition holds against the event as a dict (`ticket.*` is the ticket snapshot,
`actor.*`, `comment.*`, `changes` ... the rest of the event). `evaluate_event` returns one `Firing` per
rule that fired, with the conditions that held and the actions to run; guarded actions (no automatic
mail to robots, nobody mailed about their own action) are kept aside with a reason, and chains of rules
firing rules are cut off at `MAX_CHAIN_DEPTH` with the reason said.

Events:
- `ticket.created`: once, when a ticket is created and the conditions hold.
- `ticket.updated` of a named `field`: each time that field changes and the conditions hold.
- `comment.added` by the counterpart (`comment_by`: customer or agent): each time.
- `time`: a scheduled rule; at least one `older_than` condition says when. It fires once when all its
  conditions first hold (again only after they stopped holding and hold anew, e.g. a new wait).
- `sla.near_breach` / `sla.breached`: an SLA target of the ticket is near or past.

Besides the rules an admin edits there is one built-in behaviour, `left_out_notice`: the sender of an
email whose attachments ingest left out for their size gets one notice saying which, and why. It is
code rather than a seeded rule because it answers the sender of that one message (who may be a CC,
not the requester), threads to that message, and lists its files, which a rule's actions cannot say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

EventName = Literal["ticket.created", "ticket.updated", "comment.added", "time", "sla.near_breach", "sla.breached"]
"""Trigger events: after created; after update of one field; after a comment by the counterpart; time-based;
an SLA target near or past its due time."""

Op = Literal[
    "is",
    "is_not",
    "contains",
    "not_contains",
    "in",
    "not_in",
    "is_set",
    "is_not_set",
    "changed",
    "changed_from",
    "changed_to",
    "older_than",
    "newer_than",
    "within_business_hours",
    "outside_business_hours",
]

MAX_CHAIN_DEPTH = 5
"""A rule fired by a change another rule made is one link deeper; events this deep run no rules."""

CUSTOMER = "customer"
HANDLER = "handler"
GROUP = "group"
CC = "cc"
KNOWN_TARGETS = (CUSTOMER, HANDLER, GROUP, CC)
"""Named targets of `send_template`; any other target must be a fixed email address."""

STATUS_CATEGORIES = ("new", "open", "waiting_for_customer", "waiting_for_agent", "dormant", "resolved", "closed")

_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_-]*)*$")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,4}$")
_TAG = re.compile(r"\{\{\s*([a-z_][a-z0-9_.-]*)\s*\}\}")
RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SECRET_MASK = "**********"  # noqa: S105 - the mask, not a secret
"""How a secret is shown (pydantic's SecretStr); sent back in an edit it means "keep the stored one"."""

# Fields a rule's `set_fields` may change (`custom.<key>` too); the tickets service checks the values.
SETTABLE_FIELDS = frozenset(
    {
        "status",
        "status_category",
        "priority",
        "type",
        "category",
        "group",
        "handler",
        "tags",
        "title",
        "notify_mode",
        "organisation",
        "dormant_until",
    }
)

# Local parts that never read their mail; an auto-reply to them is a bounce or a loop waiting to happen.
_AUTOMATIC_LOCAL_PART = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?|auto[-_.]?reply)"
    r"([-_.+].*)?$",
    re.IGNORECASE,
)

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str) -> timedelta:
    """Return the duration a rule writes as `30m`, `48h`, `2d` or `1w`."""
    found = _DURATION.match(value) if isinstance(value, str) else None
    if not found:
        raise ValueError("must be a duration like `30m`, `48h`, `2d` or `1w`")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def _check_path(value: str) -> str:
    if not _PATH.match(value):
        raise ValueError("must be a dotted path of lower-case names, e.g. `ticket.requester.email`")
    return value


def _check_target(value: str) -> str:
    value = value.strip()
    if value in KNOWN_TARGETS:
        return value
    if _ADDRESS.match(value):
        return value.lower()
    raise ValueError(f"must be one of {', '.join(KNOWN_TARGETS)} or an email address")


FieldPath = Annotated[str, AfterValidator(_check_path)]
Target = Annotated[str, AfterValidator(_check_target)]


class Calendar(Protocol):
    """What conditions need of a business-hours calendar (`triggers.calendar.BusinessCalendar`)."""

    def is_open(self, at: datetime) -> bool:
        """Tell whether the calendar is open at this instant."""
        ...

    def next_open(self, at: datetime) -> datetime:
        """Return the first open instant at or after `at`."""
        ...


@dataclass(frozen=True)
class Context:
    """What evaluation needs besides the event: the time it is and the business-hours calendars."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    calendars: Mapping[str, Calendar] = field(default_factory=dict)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def as_datetime(value: Any) -> datetime | None:
    """Return a timezone-aware datetime from a datetime or an ISO string, or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def changed_field_name(path: str) -> str:
    """Return the name `changes` uses for a condition's path: `ticket.custom.x` → `custom.x`."""
    return path.removeprefix("ticket.")


class Condition(_Strict):
    """One test on a field of the event, e.g. `ticket.channel is email` or `ticket.status_since older_than 48h`."""

    field: FieldPath = Field(
        description="Dotted path into the event, e.g. `ticket.requester.email`, `ticket.custom.x`."
    )
    op: Op = Field(
        description="`is`, `is_not`, `contains`, `not_contains` (text or list), `in`, `not_in` (value is a list), "
        "`is_set`, `is_not_set`, `changed`, `changed_from`, `changed_to` (the event changed the field), "
        "`older_than`, `newer_than` (a time field and a duration like `48h`), `within_business_hours`, "
        "`outside_business_hours` (value: a calendar id; the field is ignored, use `now`)."
    )
    value: Any = Field(default=None, description="Value to compare with (a list for `in`, a duration for ages).")

    @model_validator(mode="after")
    def _value_fits_the_op(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list | tuple):
            raise ValueError(f"`{self.op}` needs a list as its value")
        if self.op in ("older_than", "newer_than"):
            parse_duration(self.value)
        if self.op in ("within_business_hours", "outside_business_hours") and (
            not isinstance(self.value, str) or not self.value
        ):
            raise ValueError(f"`{self.op}` needs a calendar id as its value, e.g. `24x7` or `office`")
        if self.op in ("is_set", "is_not_set", "changed") and self.value is not None:
            raise ValueError(f"`{self.op}` takes no value")
        return self

    @property
    def is_time(self) -> bool:
        """Tell whether the condition depends on the clock (ages and business hours)."""
        return self.op in ("older_than", "newer_than", "within_business_hours", "outside_business_hours")

    def holds(self, event: Mapping[str, Any], ctx: Context | None = None) -> bool:
        """Tell whether the condition holds for this event at the context's time."""
        op = self.op
        if op in ("changed", "changed_from", "changed_to"):
            return self._changed(event)
        if op in ("within_business_hours", "outside_business_hours"):
            ctx = ctx or Context()
            calendar = ctx.calendars.get(str(self.value))
            is_open = calendar.is_open(ctx.now) if calendar is not None else False
            return is_open if op == "within_business_hours" else (calendar is not None and not is_open)
        actual = lookup(event, self.field)
        if op in ("older_than", "newer_than"):
            moment = as_datetime(actual)
            if moment is None:
                return False
            now = (ctx or Context()).now
            age_reached = moment + parse_duration(self.value) <= now
            return age_reached if op == "older_than" else not age_reached
        if op == "is_set":
            return actual not in (None, "", [], {}, ())
        if op == "is_not_set":
            return actual in (None, "", [], {}, ())
        if op == "is":
            return _same(actual, self.value)
        if op == "is_not":
            return not _same(actual, self.value)
        if op in ("contains", "not_contains"):
            found = _contains(actual, self.value)
            return found if op == "contains" else not found
        found = any(_same(actual, option) for option in self.value)
        return found if op == "in" else not found

    def _changed(self, event: Mapping[str, Any]) -> bool:
        name = changed_field_name(self.field)
        for change in event.get("changes") or ():
            if not isinstance(change, Mapping) or change.get("field") != name:
                continue
            if self.op == "changed":
                return True
            side = change.get("old") if self.op == "changed_from" else change.get("new")
            return _same(side, self.value)
        return False

    def due(self, event: Mapping[str, Any]) -> datetime | None:
        """For `older_than`: the instant from which the condition holds (None when the field is not a time)."""
        if self.op != "older_than":
            return None
        moment = as_datetime(lookup(event, self.field))
        return moment + parse_duration(self.value) if moment is not None else None

    def describe(self) -> str:
        """Return the condition as a short sentence for the log."""
        if self.value is None:
            return f"{self.field} {self.op}"
        return f"{self.field} {self.op} {self.value!r}"


class Scope(_Strict):
    """The tickets a rule applies to; an empty list means any."""

    types: tuple[str, ...] = Field(default=(), description="Ticket type keys.", max_length=100)
    groups: tuple[str, ...] = Field(default=(), description="Group keys (a ticket without a group: `none`).")
    channels: tuple[str, ...] = Field(default=(), description="Channels the ticket came in by.")

    def covers(self, ticket: Mapping[str, Any]) -> bool:
        """Tell whether the ticket is one of the items."""
        if self.types and ticket.get("type") not in self.types:
            return False
        if self.groups and (ticket.get("group") or "none") not in self.groups:
            return False
        return not (self.channels and ticket.get("channel") not in self.channels)


# ------------------------------------------------------------------------------------------------ actions


class SendTemplate(_Strict):
    """Action: send an email template to a target."""

    type: Literal["send_template"] = Field(default="send_template", description="Action kind.")
    template: str = Field(description="Template key, e.g. `auto_reply`.", min_length=1, max_length=100)
    language: str = Field(default="en", description="Template language.", min_length=2, max_length=10)
    target: Target = Field(
        description="`customer` (the requester), `handler`, `group` (every member), `cc` (each address on the "
        "ticket's CC list) or a fixed email address."
    )
    with_cc: bool = Field(default=False, description="For `customer`: copy the ticket's CC list (a reply).")
    as_agent: bool = Field(
        default=False,
        description="Speak for the agent whose comment fired the rule (their name and personal signature).",
    )
    auto_submitted: Literal["auto-replied", "auto-generated"] | None = Field(
        default="auto-replied", description="RFC 3834 Auto-Submitted value of the mail (None: as a person)."
    )


class FromPath(_Strict):
    """A value read from the event when the rule fires, e.g. `{"from": "ticket.recurrence.status"}`."""

    from_: FieldPath = Field(alias="from", description="Dotted path into the event.")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


FieldValue = str | int | float | bool | None | list[str] | FromPath


class SetFields(_Strict):
    """Action: change fields of the ticket (status, status_category, priority, group, tags, custom.<key> ...)."""

    type: Literal["set_fields"] = Field(default="set_fields", description="Action kind.")
    fields: dict[str, FieldValue] = Field(description="Field names and values.", min_length=1, max_length=30)

    @model_validator(mode="after")
    def _known_fields(self) -> SetFields:
        for name, value in self.fields.items():
            if name not in SETTABLE_FIELDS and not re.match(r"^custom\.[a-z0-9_-]{1,64}$", name):
                allowed = ", ".join(sorted(SETTABLE_FIELDS))
                raise ValueError(f"field `{name}` cannot be set by a rule; allowed: {allowed}, custom.<key>")
            if name == "status_category" and isinstance(value, str) and value not in STATUS_CATEGORIES:
                raise ValueError(f"`status_category` must be one of {', '.join(STATUS_CATEGORIES)}")
        return self


class Assign(_Strict):
    """Action: assign the ticket to a user, to a group, or round-robin to the next member of a group."""

    type: Literal["assign"] = Field(default="assign", description="Action kind.")
    to: Literal["user", "group", "round_robin"] = Field(description="What to assign to.")
    user: str | None = Field(default=None, description="User id (for `user`).", max_length=100)
    group: str | None = Field(default=None, description="Group key (for `group` and `round_robin`).", max_length=100)

    @model_validator(mode="after")
    def _says_whom(self) -> Assign:
        if self.to == "user" and not self.user:
            raise ValueError("`user` is required to assign to a user")
        if self.to in ("group", "round_robin") and not self.group:
            raise ValueError(f"`group` is required to assign to {self.to.replace('_', '-')}")
        return self


class AddNote(_Strict):
    """Action: add an internal note to the ticket; `{{ ticket.number }}`-style tags are filled in."""

    type: Literal["add_note"] = Field(default="add_note", description="Action kind.")
    text: str = Field(description="Text of the note.", min_length=1, max_length=10_000)


class CallWebhook(_Strict):
    """Action: POST the event as JSON to a URL, signed (HMAC-SHA256), retried with back-off until it answers 2xx."""

    type: Literal["webhook"] = Field(default="webhook", description="Action kind.")
    url: str = Field(description="http(s) URL.", min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$")
    secret: SecretStr = Field(
        description="Key of the HMAC-SHA256 signature in `X-Helpdesk-Signature` (16+ characters; shown masked, "
        "and sending the mask back keeps the stored key).",
        max_length=200,
    )

    @model_validator(mode="after")
    def _secret_long_enough(self) -> CallWebhook:
        value = self.secret.get_secret_value()
        if value != SECRET_MASK and len(value) < 16:
            raise ValueError("`secret` must have at least 16 characters")
        return self


class PublishEvent(_Strict):
    """Action: publish a `CustomEventPublished` with this name for integrations (and rules) to act on."""

    type: Literal["publish_event"] = Field(default="publish_event", description="Action kind.")
    name: str = Field(description="Event name, e.g. `vip.escalated`.", min_length=1, max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict, description="Values to send along.")

    @model_validator(mode="after")
    def _name_is_dotted(self) -> PublishEvent:
        if not _EVENT_NAME.match(self.name):
            raise ValueError("`name` must be lower-case words joined by dots, e.g. `vip.escalated`")
        return self


Action = Annotated[
    SendTemplate | SetFields | Assign | AddNote | CallWebhook | PublishEvent, Field(discriminator="type")
]
"""Every action kind."""

ActionModel = SendTemplate | SetFields | Assign | AddNote | CallWebhook | PublishEvent


class RuleSpec(_Strict):
    """What a rule says, without its id: the body an admin edits."""

    name: str = Field(description="Name shown in the admin list and the log.", min_length=1, max_length=200)
    active: bool = Field(default=True, description="Inactive rules never fire.")
    applies_to: Scope = Field(default_factory=Scope, description="The tickets it applies to (empty: all).")
    event: EventName = Field(description="Trigger event.")
    field: str | None = Field(
        default=None,
        description="For `ticket.updated`: the field to follow (e.g. `status`, `custom.x`); fires when it changes.",
        max_length=100,
    )
    comment_by: Literal["customer", "agent"] | None = Field(
        default=None,
        description="For `comment.added`: whose comments fire it (the counterpart of the audience).",
    )
    conditions: tuple[Condition, ...] = Field(default=(), description="All must hold.", max_length=50)
    actions: tuple[Action, ...] = Field(description="What to do when it fires.", min_length=1, max_length=20)

    @model_validator(mode="after")
    def _event_options_fit(self) -> RuleSpec:
        if self.event == "ticket.updated" and not self.field:
            raise ValueError("`field` is required for event `ticket.updated`")
        if self.event != "ticket.updated" and self.field is not None:
            raise ValueError("`field` is only allowed for event `ticket.updated`")
        if self.event == "comment.added" and self.comment_by is None:
            raise ValueError("`comment_by` is required for event `comment.added`")
        if self.event != "comment.added" and self.comment_by is not None:
            raise ValueError("`comment_by` is only allowed for event `comment.added`")
        if self.event == "time" and not any(c.op == "older_than" for c in self.conditions):
            raise ValueError("a `time` rule needs an `older_than` condition saying when, e.g. `ticket.status_since`")
        if self.event != "ticket.updated" and any(c.op.startswith("changed") for c in self.conditions):
            raise ValueError("`changed`, `changed_from` and `changed_to` only apply to event `ticket.updated`")
        for action in self.actions:
            if isinstance(action, SendTemplate) and action.as_agent and self.event != "comment.added":
                raise ValueError("`as_agent` only applies to event `comment.added` (the agent who wrote)")
        return self

    @property
    def calendars(self) -> set[str]:
        """Return the calendar ids its conditions name."""
        return {str(c.value) for c in self.conditions if c.op.endswith("business_hours")}


class Rule(RuleSpec):
    """An automation rule: when `event` happens and all `conditions` hold, run `actions`."""

    id: str = Field(description="Stable id (slug), e.g. `auto-reply-new-ticket`.", pattern=RULE_ID_PATTERN)


# ------------------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class Suppressed:
    """An action a guard stopped, and why."""

    action: ActionModel
    reason: str


@dataclass(frozen=True)
class CutOff:
    """A rule that did not run on an event because of loop protection, and why."""

    rule_id: str
    reason: str


@dataclass(frozen=True)
class Firing:
    """One rule that fired on an event: the conditions that held, the actions to run, the ones stopped."""

    rule_id: str
    rule_name: str
    conditions_met: tuple[Condition, ...]
    actions: tuple[ActionModel, ...]
    suppressed: tuple[Suppressed, ...] = ()
    depth: int = 1

    def as_record(self) -> dict[str, Any]:
        """Return the firing as plain data for the firing log."""
        return {
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "depth": self.depth,
            "conditions_met": [c.describe() for c in self.conditions_met],
            "actions": [a.model_dump(mode="json", by_alias=True) for a in self.actions],
            "suppressed": [
                {"action": s.action.model_dump(mode="json", by_alias=True), "reason": s.reason} for s in self.suppressed
            ],
        }


@dataclass(frozen=True)
class Evaluation:
    """What the rules made of one event: firings, and rules that loop protection stopped."""

    firings: list[Firing]
    cut_offs: list[CutOff]


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """Return the value at a dotted path, or None where the path leads nowhere."""
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _same(actual: Any, expected: Any) -> bool:
    # bool is an int in Python; `True is 1` must not hold for a rule.
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual is expected
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold()
    return bool(actual == expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return expected.casefold() in actual.casefold()
    if isinstance(actual, list | tuple):
        return any(_same(item, expected) for item in actual)
    return False


def looks_automatic(address: str) -> bool:
    """Tell whether an address is a robot's that must get no auto-reply (no-reply, mailer-daemon ...)."""
    local = address.strip().rpartition("@")[0]
    return bool(_AUTOMATIC_LOCAL_PART.match(local))


def customer_block_reason(event: Mapping[str, Any]) -> str | None:
    """Return why the customer of this event must not get automatic mail, or None when they may."""
    email = lookup(event, "ticket.requester.email")
    if not isinstance(email, str) or "@" not in email:
        return "the requester has no email address"
    if lookup(event, "ticket.source_auto_submitted") is True:
        return "the ticket came from an automatic message"
    if looks_automatic(email):
        return f"the requester address {email} looks automatic (no-reply, mailer-daemon, postmaster)"
    mailbox = lookup(event, "ticket.mailbox")
    if isinstance(mailbox, str) and mailbox.casefold() == email.casefold():
        return "the requester is our own mailbox"
    return None


def acting_person(event: Mapping[str, Any]) -> dict[str, Any]:
    """Return who caused the event (the comment's author or the actor), as `{role, id, email}`."""
    author = lookup(event, "comment.author")
    person = author if isinstance(author, Mapping) else event.get("actor")
    return dict(person) if isinstance(person, Mapping) else {}


def _guard(action: ActionModel, event: Mapping[str, Any]) -> str | None:
    if not isinstance(action, SendTemplate):
        return None
    person = acting_person(event)
    if action.target == CUSTOMER:
        reason = customer_block_reason(event)
        # A new ticket's requester created it and still gets the auto-reply; a comment of theirs is theirs.
        if reason is None and isinstance(event.get("comment"), Mapping) and person.get("role") == "customer":
            email = str(person.get("email") or "").casefold()
            if email and email == str(lookup(event, "ticket.requester.email") or "").casefold():
                return "nobody is mailed about their own comment or change (the requester did it)"
        return reason
    if action.target == HANDLER:
        handler = lookup(event, "ticket.handler")
        if not handler:
            return "the ticket has no handler"
        if person.get("id") and person.get("id") == handler:
            return "nobody is mailed about their own comment or change (the handler did it)"
        return None
    if action.target == GROUP:
        return None if lookup(event, "ticket.group") else "the ticket has no group"
    if action.target == CC:
        return None if lookup(event, "ticket.cc") else "the ticket has no CC list"
    if looks_automatic(action.target):
        return f"the target address {action.target} looks automatic"
    return None


def chain_depth(event: Mapping[str, Any]) -> int:
    """Return how many rules deep the change behind this event is (0: a person or a channel made it)."""
    depth = lookup(event, "automation.depth")
    return depth if isinstance(depth, int) and depth > 0 else 0


def _event_matches(rule: Rule, event_name: str, event: Mapping[str, Any]) -> bool:
    if rule.event != event_name:
        return False
    if rule.event == "ticket.updated":
        changes = event.get("changes") or ()
        return any(isinstance(c, Mapping) and c.get("field") == rule.field for c in changes)
    if rule.event == "comment.added":
        role = event.get("author_role")
        author_is_customer = role == "customer"
        if rule.comment_by == "customer":
            return author_is_customer
        return role is not None and not author_is_customer and role != "system"
    return True


def _fire(rule: Rule, event: Mapping[str, Any], depth: int) -> Firing:
    to_run: list[ActionModel] = []
    stopped: list[Suppressed] = []
    for action in rule.actions:
        reason = _guard(action, event)
        if reason is None:
            to_run.append(action)
        else:
            stopped.append(Suppressed(action=action, reason=reason))
    return Firing(
        rule_id=rule.id,
        rule_name=rule.name,
        conditions_met=rule.conditions,
        actions=tuple(to_run),
        suppressed=tuple(stopped),
        depth=depth,
    )


def rule_applies(rule: Rule, event_name: str, event: Mapping[str, Any], ctx: Context) -> bool:
    """Tell whether one rule fires on this event (active, its event, its items, every condition)."""
    if not rule.active or not _event_matches(rule, event_name, event):
        return False
    ticket = event.get("ticket")
    if not isinstance(ticket, Mapping) or not rule.applies_to.covers(ticket):
        return False
    return all(c.holds(event, ctx) for c in rule.conditions)


def evaluate_event(
    rules: Iterable[Rule], event_name: str, event: Mapping[str, Any], ctx: Context | None = None
) -> Evaluation:
    """Return the firings of every rule the event triggers, and the rules loop protection stopped.

    An event caused by a rule's own change does not fire that rule again; an event `MAX_CHAIN_DEPTH`
    rules deep fires none (both are reported as cut-offs, so the log says why nothing happened).
    """
    ctx = ctx or Context()
    depth = chain_depth(event)
    cause = lookup(event, "automation.rule_id")
    firings: list[Firing] = []
    cut_offs: list[CutOff] = []
    for rule in rules:
        if not rule_applies(rule, event_name, event, ctx):
            continue
        if depth >= MAX_CHAIN_DEPTH:
            cut_offs.append(
                CutOff(
                    rule.id,
                    f"chain of rules too deep: this change was made by rule {cause!r} {depth} rules deep "
                    f"(limit {MAX_CHAIN_DEPTH})",
                )
            )
            continue
        if cause == rule.id:
            cut_offs.append(CutOff(rule.id, "the rule's own change does not fire it again"))
            continue
        firings.append(_fire(rule, event, depth + 1))
    return Evaluation(firings=firings, cut_offs=cut_offs)


def evaluate(
    rules: Iterable[Rule], event_name: str, event: Mapping[str, Any], ctx: Context | None = None
) -> list[Firing]:
    """Return a firing for each active rule that the event triggers and whose conditions all hold."""
    return evaluate_event(rules, event_name, event, ctx).firings


# ------------------------------------------------------------------------------------------------ time rules


def time_rule_due(rule: Rule, event: Mapping[str, Any], ctx: Context) -> datetime | None:
    """Return when a time rule should next look at this ticket, or None when it cannot fire as things are.

    The conditions that do not depend on the clock must hold now; the rule is then due when its last
    `older_than` condition starts to hold (not before now), moved to the next open instant of a
    `within_business_hours` calendar. A `newer_than` condition already false at that instant rules it out.
    """
    if not rule.active or rule.event != "time":
        return None
    ticket = event.get("ticket")
    if not isinstance(ticket, Mapping) or not rule.applies_to.covers(ticket):
        return None
    if not all(c.holds(event, ctx) for c in rule.conditions if not c.is_time):
        return None
    moments = [c.due(event) for c in rule.conditions if c.op == "older_than"]
    if any(m is None for m in moments):
        return None
    due = max([ctx.now, *[m for m in moments if m is not None]])
    for condition in rule.conditions:
        if condition.op == "within_business_hours":
            calendar = ctx.calendars.get(str(condition.value))
            if calendar is None:
                return None
            due = max(due, calendar.next_open(due))
    at_due = Context(now=due, calendars=ctx.calendars)
    if not all(c.holds(event, at_due) for c in rule.conditions if c.op == "newer_than"):
        return None
    return due


def time_anchor(rule: Rule, event: Mapping[str, Any]) -> str:
    """Return what makes one firing of a time rule once-only: the values its `older_than` conditions age from."""
    return "|".join(str(lookup(event, c.field)) for c in rule.conditions if c.op == "older_than")


def fill_tags(text: str, event: Mapping[str, Any]) -> str:
    """Replace `{{ path }}` tags in a note with values from the event (no code runs; unknown tags become "")."""

    def value(match: re.Match[str]) -> str:
        found = lookup(event, match.group(1))
        return "" if found is None else str(found)

    return _TAG.sub(value, text)


def resolve_fields(action: SetFields, event: Mapping[str, Any]) -> dict[str, Any]:
    """Return the field values a `set_fields` action writes, with `{"from": path}` values read from the event."""
    return {
        name: (lookup(event, value.from_) if isinstance(value, FromPath) else value)
        for name, value in action.fields.items()
    }


# ------------------------------------------------------------------------------------------------ defaults

_OPEN_CATEGORIES = ["new", "open", "waiting_for_agent"]


def default_rules() -> Sequence[Rule]:
    """Return the rules a fresh helpdesk starts with (seeded by `triggers migrate`; an admin may edit them)."""
    return (
        Rule(
            id="auto-reply-new-ticket",
            name="Auto-reply on new ticket",
            event="ticket.created",
            conditions=(
                Condition(field="ticket.channel", op="is", value="email"),
                Condition(field="ticket.source_auto_submitted", op="is", value=False),
            ),
            actions=(SendTemplate(template="auto_reply", target=CUSTOMER, auto_submitted="auto-replied"),),
        ),
        Rule(
            id="email-agent-reply",
            name="Email an agent's public reply to the customer",
            event="comment.added",
            comment_by="agent",
            conditions=(Condition(field="comment.visibility", op="is", value="public"),),
            actions=(
                SendTemplate(template="agent_reply", target=CUSTOMER, with_cc=True, as_agent=True, auto_submitted=None),
            ),
        ),
        Rule(
            id="agent-reply-waiting-for-customer",
            name="Agent's public reply → Waiting for customer",
            event="comment.added",
            comment_by="agent",
            conditions=(
                Condition(field="comment.visibility", op="is", value="public"),
                Condition(field="ticket.status_category", op="in", value=_OPEN_CATEGORIES),
            ),
            actions=(SetFields(fields={"status_category": "waiting_for_customer"}),),
        ),
        Rule(
            id="customer-reply-waiting-for-agent",
            name="Customer's reply → Waiting for agent",
            event="comment.added",
            comment_by="customer",
            conditions=(
                Condition(field="ticket.status_category", op="not_in", value=["dormant", "waiting_for_agent"]),
            ),
            actions=(SetFields(fields={"status_category": "waiting_for_agent"}),),
        ),
        Rule(
            id="customer-reply-notify-handler",
            name="Customer's reply → notify the handler",
            event="comment.added",
            comment_by="customer",
            conditions=(Condition(field="ticket.handler", op="is_set"),),
            actions=(SendTemplate(template="customer_replied", target=HANDLER, auto_submitted="auto-generated"),),
        ),
        Rule(
            id="notify-handler-on-assignment",
            name="Notify the handler when a ticket is assigned to them",
            event="ticket.updated",
            field="handler",
            conditions=(Condition(field="ticket.handler", op="is_set"),),
            actions=(SendTemplate(template="ticket_assigned", target=HANDLER, auto_submitted="auto-generated"),),
        ),
        Rule(
            id="reminder-waiting-for-customer-48h",
            name="Reminder after 48 h waiting for the customer",
            active=False,
            event="time",
            conditions=(
                Condition(field="ticket.status_category", op="is", value="waiting_for_customer"),
                Condition(field="ticket.status_since", op="older_than", value="48h"),
            ),
            actions=(SendTemplate(template="waiting_reminder", target=CUSTOMER, auto_submitted="auto-generated"),),
        ),
        Rule(
            id="wake-dormant-ticket",
            name="Dormant ticket wakes up when its time comes",
            event="time",
            conditions=(
                Condition(field="ticket.status_category", op="is", value="dormant"),
                Condition(field="ticket.wake_at", op="older_than", value="0m"),
            ),
            actions=(SetFields(fields={"status_category": "open"}),),
        ),
        Rule(
            id="reopen-recurring-ticket",
            name="Recurring ticket reopens on its interval",
            event="time",
            conditions=(
                Condition(field="ticket.recurrence", op="is_set"),
                Condition(field="ticket.status_category", op="in", value=["resolved", "closed"]),
                Condition(field="ticket.wake_at", op="older_than", value="0m"),
            ),
            actions=(SetFields(fields={"status_category": FromPath(**{"from": "ticket.recurrence.status"})}),),
        ),
    )


LEFT_OUT_NOTICE_ID = "attachments-left-out"
"""Id of the built-in notice in the firing log and in its notification ids."""

LEFT_OUT_NOTICE_NAME = "Notice of attachments left out (built-in)"
LEFT_OUT_TEMPLATE = "attachments_left_out"


@dataclass(frozen=True)
class AttachmentLimits:
    """The sizes ingest keeps attachments up to (the same `HELPDESK_MAX_ATTACHMENT*` settings as ingest's)."""

    per_file: int = 5 * 1024 * 1024
    per_message: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class Notice:
    """A built-in automatic mail to the sender of one message: to whom, about which comment, with what."""

    notice_id: str
    name: str
    template: str
    comment_id: str
    to: dict[str, str]
    in_reply_to: str | None
    context: dict[str, Any]
    conditions: tuple[str, ...]
    suppressed: str | None = None

    def as_record(self) -> dict[str, Any]:
        """Return the notice as plain data for the firing log (shaped like a rule's firing)."""
        action = {"type": "send_template", "template": self.template, "target": self.to["email"]}
        return {
            "rule_id": self.notice_id,
            "rule_name": self.name,
            "conditions_met": list(self.conditions),
            "actions": [] if self.suppressed else [action],
            "suppressed": [{"action": action, "reason": self.suppressed}] if self.suppressed else [],
        }


def human_size(size: int) -> str:
    """Return a byte count as people read it: `512 bytes`, `1.5 kB`, `6.3 MB` (powers of 1024)."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("kB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}".replace(".0 ", " ")


def _address_block_reason(email: Any, mailbox: Any) -> str | None:
    if not isinstance(email, str) or "@" not in email:
        return "the sender has no email address"
    if looks_automatic(email):
        return f"the sender address {email} looks automatic (no-reply, mailer-daemon, postmaster)"
    if isinstance(mailbox, str) and mailbox.casefold() == email.casefold():
        return "the sender is our own mailbox"
    return None


def left_out_notice(event_name: str, event: Mapping[str, Any], limits: AttachmentLimits) -> Notice | None:
    """Return the notice to the sender of an email whose attachments ingest left out, or None when none is due.

    Due for a ticket created from an email and for a customer's email comment, when the message had
    attachments left out for their size; never for automatic mail (a robot gets no answer).
    """
    if event_name == "ticket.created":
        left_out = event.get("left_out") or ()
        comment_id = event.get("comment_id")
        if not left_out or not comment_id or lookup(event, "ticket.channel") != "email":
            return None
        if lookup(event, "ticket.source_auto_submitted") is True:
            return None
        sender = lookup(event, "ticket.requester") or {}
        in_reply_to = lookup(event, "ticket.source_message_id")
        conditions = ("ticket.channel is 'email'", "ticket.source_auto_submitted is False", "left_out is not empty")
    elif event_name == "comment.added":
        comment = event.get("comment") or {}
        left_out = comment.get("left_out") or ()
        comment_id = comment.get("comment_id")
        if not left_out or not comment_id or event.get("author_role") != CUSTOMER or comment.get("channel") != "email":
            return None
        if comment.get("auto_submitted") is True:
            return None
        sender = comment.get("author") or {}
        in_reply_to = comment.get("message_id")
        conditions = (
            "author_role is 'customer'",
            "comment.channel is 'email'",
            "comment.auto_submitted is False",
            "comment.left_out is not empty",
        )
    else:
        return None
    to = {"email": str(sender.get("email") or ""), "name": str(sender.get("name") or "")}
    files = [
        {
            "filename": item.get("filename", ""),
            "size": item.get("size", 0),
            "human_size": human_size(int(item.get("size", 0))),
            "reason": item.get("reason", ""),
        }
        for item in left_out
    ]
    context = {
        "files": files,
        "limits": {
            "per_file": limits.per_file,
            "per_file_human": human_size(limits.per_file),
            "per_message": limits.per_message,
            "per_message_human": human_size(limits.per_message),
        },
        "sender": to,
    }
    return Notice(
        notice_id=LEFT_OUT_NOTICE_ID,
        name=LEFT_OUT_NOTICE_NAME,
        template=LEFT_OUT_TEMPLATE,
        comment_id=str(comment_id),
        to=to,
        in_reply_to=in_reply_to if isinstance(in_reply_to, str) and in_reply_to else None,
        context=context,
        conditions=conditions,
        suppressed=_address_block_reason(to["email"], lookup(event, "ticket.mailbox")),
    )
