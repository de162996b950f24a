"""The rule engine: a rule is an event + conditions + actions. Pure code: no Kafka, no store, no HTTP.

A rule fires when its trigger event happens and every condition holds against the event as a dict
(`ticket.*` is the ticket snapshot, `actor.*`, `comment.*`, `changes` ... the rest of the event).
`evaluate` returns one `Firing` per rule that fired, with the conditions that held and the actions to
run; guarded actions (no auto-reply to automatic or no-reply addresses) are kept aside with a reason.

Besides the rules an admin edits there is one built-in behaviour, `left_out_notice`: the sender of an
email whose attachments ingest left out for their size gets one notice saying which, and why. It is
code rather than a seeded rule because it answers the sender of that one message (who may be a CC,
not the requester), threads to that message, and lists its files, which a rule's actions cannot say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

EventName = Literal["ticket.created", "ticket.updated", "comment.added"]
"""Trigger events: after created; after update of one field; after a comment by the counterpart."""

Op = Literal["is", "is_not", "contains", "in"]

CUSTOMER = "customer"
"""Target of a `send_template` action: the ticket's requester."""

KNOWN_TARGETS = (CUSTOMER,)
"""Named targets; any other target must be a fixed email address. (handler, group, cc: later.)"""

_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

# Local parts that never read their mail; an auto-reply to them is a bounce or a loop waiting to happen.
_AUTOMATIC_LOCAL_PART = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?|auto[-_.]?reply)"
    r"([-_.+].*)?$",
    re.IGNORECASE,
)


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


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Strict):
    """One test on a field of the event, e.g. `ticket.channel is email`."""

    field: FieldPath = Field(description="Dotted path into the event, e.g. `ticket.requester.email`.")
    op: Op = Field(description="`is`, `is_not`, `contains` (text or list) or `in` (value is a list).")
    value: Any = Field(description="Value to compare with (a list for `in`).")

    @model_validator(mode="after")
    def _in_takes_a_list(self) -> Condition:
        if self.op == "in" and not isinstance(self.value, list | tuple):
            raise ValueError("`in` needs a list as its value")
        return self

    def holds(self, event: Mapping[str, Any]) -> bool:
        """Tell whether the condition holds for this event."""
        actual = lookup(event, self.field)
        if self.op == "is":
            return _same(actual, self.value)
        if self.op == "is_not":
            return not _same(actual, self.value)
        if self.op == "contains":
            if isinstance(actual, str) and isinstance(self.value, str):
                return self.value.casefold() in actual.casefold()
            if isinstance(actual, list | tuple):
                return any(_same(item, self.value) for item in actual)
            return False
        return any(_same(actual, option) for option in self.value)

    def describe(self) -> str:
        """Return the condition as a short sentence for the log."""
        return f"{self.field} {self.op} {self.value!r}"


class SendTemplate(_Strict):
    """Action: send an email template to a target."""

    type: Literal["send_template"] = Field(default="send_template", description="Action kind.")
    template: str = Field(description="Template key, e.g. `auto_reply`.", min_length=1, max_length=100)
    language: str = Field(default="en", description="Template language.", min_length=2, max_length=10)
    target: Target = Field(description="`customer` (the requester) or a fixed email address.")
    auto_submitted: Literal["auto-replied", "auto-generated"] | None = Field(
        default="auto-replied", description="RFC 3834 Auto-Submitted value of the mail (None: as a person)."
    )


Action = Annotated[SendTemplate, Field(discriminator="type")]
"""Every action kind (a discriminated union once set_field, assign, note, webhook ... join)."""


class RuleSpec(_Strict):
    """What a rule says, without its id: the body an admin edits."""

    name: str = Field(description="Name shown in the admin list and the log.", min_length=1, max_length=200)
    active: bool = Field(default=True, description="Inactive rules never fire.")
    event: EventName = Field(description="Trigger event.")
    field: str | None = Field(
        default=None,
        description="For `ticket.updated`: the field to follow (e.g. `status`); fires when it changes.",
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
        return self


class Rule(RuleSpec):
    """An automation rule: when `event` happens and all `conditions` hold, run `actions`."""

    id: str = Field(description="Stable id (slug), e.g. `auto-reply-new-ticket`.", pattern=RULE_ID_PATTERN)


@dataclass(frozen=True)
class Suppressed:
    """An action a guard stopped, and why."""

    action: SendTemplate
    reason: str


@dataclass(frozen=True)
class Firing:
    """One rule that fired on an event: the conditions that held, the actions to run, the ones stopped."""

    rule_id: str
    rule_name: str
    conditions_met: tuple[Condition, ...]
    actions: tuple[SendTemplate, ...]
    suppressed: tuple[Suppressed, ...] = ()

    def as_record(self) -> dict[str, Any]:
        """Return the firing as plain data for the firing log."""
        return {
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "conditions_met": [c.describe() for c in self.conditions_met],
            "actions": [a.model_dump(mode="json") for a in self.actions],
            "suppressed": [{"action": s.action.model_dump(mode="json"), "reason": s.reason} for s in self.suppressed],
        }


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


def _guard(action: SendTemplate, event: Mapping[str, Any]) -> str | None:
    if action.target == CUSTOMER:
        return customer_block_reason(event)
    if looks_automatic(action.target):
        return f"the target address {action.target} looks automatic"
    return None


def recipient(action: SendTemplate, event: Mapping[str, Any]) -> dict[str, str]:
    """Return the `{email, name}` an action's mail goes to."""
    if action.target == CUSTOMER:
        requester = lookup(event, "ticket.requester") or {}
        return {"email": str(requester.get("email", "")), "name": str(requester.get("name", ""))}
    return {"email": action.target, "name": ""}


def _event_matches(rule: Rule, event_name: str, event: Mapping[str, Any]) -> bool:
    if rule.event != event_name:
        return False
    if rule.event == "ticket.updated":
        changes = event.get("changes") or ()
        return any(isinstance(c, Mapping) and c.get("field") == rule.field for c in changes)
    if rule.event == "comment.added":
        role = event.get("author_role")
        author_is_customer = role == "customer"
        return author_is_customer if rule.comment_by == "customer" else (role is not None and not author_is_customer)
    return True


def evaluate(rules: Iterable[Rule], event_name: str, event: Mapping[str, Any]) -> list[Firing]:
    """Return a firing for each active rule that the event triggers and whose conditions all hold."""
    firings: list[Firing] = []
    for rule in rules:
        if not rule.active or not _event_matches(rule, event_name, event):
            continue
        if not all(c.holds(event) for c in rule.conditions):
            continue
        to_run: list[SendTemplate] = []
        stopped: list[Suppressed] = []
        for action in rule.actions:
            reason = _guard(action, event)
            if reason is None:
                to_run.append(action)
            else:
                stopped.append(Suppressed(action=action, reason=reason))
        firings.append(
            Firing(
                rule_id=rule.id,
                rule_name=rule.name,
                conditions_met=rule.conditions,
                actions=tuple(to_run),
                suppressed=tuple(stopped),
            )
        )
    return firings


def default_rules() -> Sequence[Rule]:
    """Return the rules a fresh helpdesk starts with (seeded by `triggers migrate`)."""
    return (
        Rule(
            id="auto-reply-new-ticket",
            name="Auto-reply on new ticket",
            active=True,
            event="ticket.created",
            conditions=(
                Condition(field="ticket.channel", op="is", value="email"),
                Condition(field="ticket.source_auto_submitted", op="is", value=False),
            ),
            actions=(SendTemplate(template="auto_reply", target=CUSTOMER, auto_submitted="auto-replied"),),
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
