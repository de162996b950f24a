"""Ticket commands: who may do what, which values are valid, which workflow moves are allowed.

Pure functions over the ticket document (a dict), the configuration and contract models; no I/O.
Each returns the new document or a `Change` with the events to publish, or raises a `Refused` error
whose message tells a person exactly what to fix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from contracts.commands import (
    AbsorbTicket,
    AddComment,
    CloseTicket,
    CreateTicket,
    DeleteTicket,
    FollowTicket,
    LinkTicket,
    MergeTicket,
    RecordChild,
    SplitTicket,
    UpdateTicket,
)
from contracts.events import Comment, FieldChange
from contracts.models import Actor, Address, Automation
from hdkit.staff import StaffMember

from contracts import (
    CommentAdded,
    EmailReceived,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketDeleted,
    TicketLinked,
    TicketMerged,
    TicketUpdated,
    derived_id,
)
from tickets.config import PHASE_OF, STANDARD_FIELDS, Config, TicketType
from tickets.domain import (
    Change,
    Invalid,
    Refused,
    Threading,
    activity,
    distinct_files,
    new_document,
    new_files,
    snapshot,
    status_fields,
    stored_comment,
)

MAX_TITLE = 1000
MAX_TEXT_FIELD = 100_000
MAX_TAGS = 50
MAX_CC = 50
DURATION = re.compile(r"^(\d{1,4})([hdw])$")
DURATION_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
AGENT_ROLES = ("admin", "agent")
# Fields a customer may give when creating a ticket; everything else is for agents.
CUSTOMER_FIELDS = {"title", "description", "type", "category", "cc", "organisation"}
NOTIFY_MODES = ("never", "link", "email")
SLA_DUE = ("first_response_due", "resolution_due")
MAX_SLA_BREACHED = 10
DONE = ("resolved", "closed")
"""The categories of a finished ticket: a recurring ticket's next round is counted from entering them."""
# Comments in which `@handle` names a member of staff (customers' words mention nobody).
MENTIONING_KINDS = ("public_reply", "internal_comment")
MENTION = re.compile(r"(?<!\w)@([A-Za-z0-9._-]*[A-Za-z0-9_-])")
"""`@` at the start or after a space or punctuation (not inside `kund@example.se`); no trailing dot."""
MAX_MENTIONS = 50


class Forbidden(Refused):
    """The actor may not do this."""

    status = 403


class NotFound(Refused):
    """No such ticket, or not one the actor may see."""

    status = 404


class WorkflowRefused(Refused):
    """The change breaks a workflow rule."""

    status = 409


class VersionConflict(Refused):
    """The change was based on an old version and others changed the same fields meanwhile."""

    status = 409


@dataclass(frozen=True)
class Viewer:
    """The person a command or query acts for."""

    id: str
    role: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    organisation: str | None = None
    name: str = ""

    def actor(self) -> Actor:
        """Return the actor recorded on changes."""
        role = self.role if self.role in ("customer", "agent", "light_agent", "admin", "system") else "system"
        return Actor(role=role, id=self.id, email=self.email, name=self.name)  # type: ignore[arg-type]


def viewer_of(actor: Actor, groups: tuple[str, ...] = ("*",), organisation: str | None = None) -> Viewer:
    """Return the viewer for a command's actor; by default one an integration vouches for in every group.

    Commands from Kafka come from trusted producers (topic ACLs): the tickets service does not know the
    actor's groups, so it checks the role's rights but not group membership.
    """
    return Viewer(
        id=actor.id or actor.email or "system",
        role=actor.role,
        email=(actor.email or "").lower() or None,
        groups=groups,
        organisation=organisation,
        name=actor.name,
    )


def can_see(v: Viewer, ticket: dict[str, Any], *, organisation_visible: bool = False) -> bool:
    """Tell whether a viewer may see a ticket (the same rule as the store's queries)."""
    if ticket.get("phase") == "deleted":
        return False
    if v.role in ("admin", "system"):
        return True
    if v.role == "customer":
        if v.email and ticket.get("requester", {}).get("email", "").lower() == v.email:
            return True
        return bool(organisation_visible and v.organisation and ticket.get("organisation") == v.organisation)
    if ticket.get("phase") == "deleted":
        return False
    return ticket.get("group") is None or ticket.get("group") in v.groups or "*" in v.groups


# --------------------------------------------------------------------------- values


def _duration(value: Any, name: str) -> timedelta:
    match = DURATION.match(str(value)) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise Invalid(f"`{name}` must be a duration like `12h`, `3d` or `2w`", fields=(name,))
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def _datetime(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise Invalid(f"`{name}` must be a date and time (ISO 8601)", fields=(name,))


def _text(value: Any, name: str, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(f"`{name}` must be text", fields=(name,))
    value = value.strip() if name == "title" else value
    if len(value) > limit:
        raise Invalid(f"`{name}` is longer than {limit} characters", fields=(name,))
    if required and not value.strip():
        raise Invalid(f"`{name}` must not be empty", fields=(name,))
    return value


def _key(value: Any, name: str, allowed: list[str], *, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(allowed) or "none configured"
        raise Invalid(f"`{name}` must be one of: {choices}", fields=(name,))
    return value


def _user(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.@+-]{1,100}", value):
        raise Invalid(f"`{name}` must be a user or group id (letters, digits, _ . @ + -)", fields=(name,))
    return value


def missed_target(ticket: dict[str, Any], metric: str, at: datetime) -> dict[str, Any]:
    """Return the field to set when an SLA target is reached after its due time (`sla_missed`), else nothing.

    Triggers clears a target's due time once it is reached, so the lateness is kept here, at the moment it
    is known, in a field of its own that triggers' SLA updates (which replace `sla`) leave alone.
    """
    due = (ticket.get("sla") or {}).get(f"{metric}_due")
    if due is None or _datetime(due, f"sla.{metric}_due") >= at:
        return {}
    return {"sla_missed": list(dict.fromkeys([*(ticket.get("sla_missed") or []), metric]))}


def _sla(value: Any) -> dict[str, Any]:
    """Return SLA due times in stored form: both due keys (null when not given), policy and breached if given."""
    if value is None:
        return dict.fromkeys(SLA_DUE)
    if not isinstance(value, dict) or set(value) - {*SLA_DUE, "policy", "breached"}:
        raise Invalid(
            "`sla` is {first_response_due, resolution_due: a date and time or null, policy: text, breached: [text]}",
            fields=("sla",),
        )
    out: dict[str, Any] = {}
    for key in SLA_DUE:
        try:
            out[key] = None if value.get(key) is None else _datetime(value[key], f"sla.{key}")
        except Invalid as exc:
            raise Invalid(exc.message, fields=("sla",)) from None
    if "policy" in value:
        policy = value["policy"]
        if policy is not None and (not isinstance(policy, str) or not 0 < len(policy) <= 100):
            raise Invalid("`sla.policy` must be the id of an SLA policy (1–100 characters)", fields=("sla",))
        out["policy"] = policy
    if "breached" in value:
        breached = value["breached"]
        if (
            not isinstance(breached, list)
            or len(breached) > MAX_SLA_BREACHED
            or not all(isinstance(b, str) and 0 < len(b) <= 100 for b in breached)
        ):
            raise Invalid(f"`sla.breached` must be a list of at most {MAX_SLA_BREACHED} names", fields=("sla",))
        out["breached"] = list(dict.fromkeys(breached))
    return out


def _status_of_category(value: Any, ticket_type: TicketType, ticket: dict[str, Any]) -> str:
    """Return the status a `status_category` asks for: the type's first of that category.

    Rules name categories because each type names its statuses its own way. A ticket already in a status
    of that category keeps it, so a rule does not undo a person's finer choice.
    """
    if not isinstance(value, str) or value not in PHASE_OF:
        raise Invalid(f"`status_category` must be one of: {', '.join(PHASE_OF)}", fields=("status_category",))
    current = ticket_type.status(ticket["status"]) if ticket_type.key == ticket["type"] else None
    if current is not None and current.category == value:
        return current.key
    found = ticket_type.first(value)  # type: ignore[arg-type]
    if found is None:
        raise Invalid(
            f"the {ticket_type.name} workflow has no status of category `{value}`", fields=("status_category",)
        )
    return found.key


def mention_handles(text: str) -> list[str]:
    """Return the `@handle` tokens of a text in order, each once (at most MAX_MENTIONS)."""
    return list(dict.fromkeys(m.group(1) for m in MENTION.finditer(text)))[:MAX_MENTIONS]


def _rule(automation: Automation | None) -> str | None:
    """Return "rule 'name'" for a change a rule made (the reason on its events), None for a person's change."""
    return f"rule '{automation.rule_name or automation.rule_id}'" if automation else None


def _by_rule(automation: Automation | None) -> str:
    """Return the activity log's words for a change a rule made, e.g. " by rule 'Agent reply → Waiting'"."""
    rule = _rule(automation)
    return f" by {rule}" if rule else ""


def _custom_value(config: Config, key: str, value: Any) -> Any:
    definition = config.custom(key)
    name = f"custom.{key}"
    if definition is None:
        raise Invalid(f"unknown custom field `{key}`", fields=(name,))
    if not definition.used:
        raise Invalid(f"custom field `{key}` is not used", fields=(name,))
    if value is None:
        return None
    kind = definition.kind
    if kind == "text":
        return _text(value, name, 10_000)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"`{name}` must be a number", fields=(name,))
        return value
    if kind == "date":
        if isinstance(value, str):
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        raise Invalid(f"`{name}` must be a date (YYYY-MM-DD)", fields=(name,))
    if kind == "checkbox":
        if not isinstance(value, bool):
            raise Invalid(f"`{name}` must be true or false", fields=(name,))
        return value
    return _key(value, name, definition.options)


def _addresses(value: Any, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > MAX_CC:
        raise Invalid(f"`{name}` must be a list of at most {MAX_CC} addresses", fields=(name,))
    out = []
    for item in value:
        raw = item.model_dump() if isinstance(item, Address) else item
        if isinstance(raw, str):
            raw = {"email": raw}
        try:
            address = Address(**raw) if isinstance(raw, dict) else None
        except (TypeError, ValueError):
            address = None
        if address is None or "@" not in address.email:
            raise Invalid(f"`{name}` has an entry that is not an email address", fields=(name,))
        out.append({"email": address.email.lower(), "name": address.name})
    return out


def normalise(values: dict[str, Any], config: Config, ticket_type: TicketType, *, now: datetime) -> dict[str, Any]:
    """Validate field values against the configuration; return them in stored form (or raise Invalid)."""
    out: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith("custom."):
            custom[name.removeprefix("custom.")] = value
            continue
        if name == "custom":
            if not isinstance(value, dict):
                raise Invalid("`custom` must be an object of custom field values", fields=("custom",))
            custom.update(value)
            continue
        if name == "dormant_for":
            out["wake_at"] = now + _duration(value, name)
            continue
        if name in ("parent", "children", "merged_into"):
            raise Invalid(f"`{name}` changes only by linking or merging tickets", fields=(name,))
        if name not in config.fields and name not in _KNOWN:
            raise Invalid(f"unknown field `{name}`", fields=(name,))
        if not config.rule(name).used:
            raise Invalid(f"field `{name}` is not used in this helpdesk", fields=(name,))
        out[name] = _convert(name, value, config, ticket_type, now)
    for key, value in custom.items():
        out[f"custom.{key}"] = _custom_value(config, str(key), value)
    return out


# parent and children change only through LinkTicket, so that both sides stay in step; notify mode and the
# SLA due times are not configurable fields (always used, never required)
_KNOWN = (set(STANDARD_FIELDS) - {"parent"}) | {"notify_mode", "sla"}


def _convert(name: str, value: Any, config: Config, ticket_type: TicketType, now: datetime) -> Any:
    if name == "title":
        return _text(value, name, MAX_TITLE, required=True)
    if name == "description":
        return _text(value, name, MAX_TEXT_FIELD)
    if name == "type":
        return _key(value, name, [t.key for t in config.types], nullable=False)
    if name == "status":
        return _key(value, name, [s.key for s in ticket_type.statuses], nullable=False)
    if name == "priority":
        return _key(value, name, [p.key for p in config.priorities], nullable=False)
    if name == "category":
        return _key(value, name, [c.key for c in config.categories])
    if name in ("group", "handler"):
        return _user(value, name)
    if name == "organisation":
        return None if value is None else _text(value, name, 200)
    if name == "cc":
        return _addresses(value, name)
    if name == "tags":
        if not isinstance(value, list) or len(value) > MAX_TAGS:
            raise Invalid(f"`tags` must be a list of at most {MAX_TAGS} tags", fields=("tags",))
        tags = []
        for tag in value:
            if not isinstance(tag, str) or not re.fullmatch(r"[\w.-]{1,50}", tag):
                raise Invalid("a tag is 1–50 letters, digits, _ . or -", fields=("tags",))
            tags.append(tag.lower())
        return sorted(set(tags))
    if name == "dormant_until":
        return None if value is None else _datetime(value, name)
    if name == "recurrence":
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"every", "status"} or "every" not in value:
            raise Invalid("`recurrence` is {every: '1w', status: 'new'|'open'}", fields=("recurrence",))
        every = _duration(value["every"], "recurrence.every")
        status = value.get("status", "new")
        if status not in ("new", "open"):
            raise Invalid("`recurrence.status` must be `new` or `open`", fields=("recurrence",))
        return {"every": value["every"], "status": status, "next_at": now + every}
    if name == "notify_mode":
        return _key(value, name, list(NOTIFY_MODES))
    if name == "sla":
        return _sla(value)
    raise Invalid(f"unknown field `{name}`", fields=(name,))  # pragma: no cover - _KNOWN guards this


# --------------------------------------------------------------------------- documents


def create(
    cmd: CreateTicket,
    config: Config,
    v: Viewer,
    *,
    ticket_id: str,
    number: int,
    now: datetime,
    templates: dict[str, Any],
) -> tuple[dict[str, Any], list[Any]]:
    """Return the new ticket and its events for a create command (or raise Refused)."""
    if v.role == "light_agent":
        raise Forbidden("light agents cannot create tickets")
    fields: dict[str, Any] = {}
    if cmd.template:
        template = templates.get(cmd.template)
        if template is None:
            raise Invalid(f"unknown ticket template `{cmd.template}`", fields=("template",))
        fields.update(template.get("fields", {}))
    fields.update(cmd.fields)
    if v.role == "customer":
        extra = sorted(set(cmd.fields) - CUSTOMER_FIELDS)
        if extra:
            raise Forbidden(f"customers cannot set {', '.join(extra)}", fields=tuple(extra))
    _require_system_for_sla(fields, v)
    type_key = fields.get("type") or config.types[0].key
    ticket_type = config.type(type_key) if isinstance(type_key, str) else None
    if ticket_type is None:
        raise Invalid(f"`type` must be one of: {', '.join(t.key for t in config.types)}", fields=("type",))
    values = normalise(fields, config, ticket_type, now=now)
    missing = [
        name
        for name in ["title", *config.fields]
        if config.rule(name).used and config.rule(name).required and values.get(name) in (None, "", [])
    ]
    missing += [
        f"custom.{c.key}"
        for c in config.custom_fields
        if c.used and c.required and values.get(f"custom.{c.key}") is None
    ]
    if missing:
        raise Invalid(f"required: {', '.join(missing)}", fields=tuple(missing))
    if v.role == "customer":
        requester = {"email": v.email or "", "name": v.name}
    elif cmd.requester is not None:
        requester = {"email": cmd.requester.email.lower(), "name": cmd.requester.name}
    else:
        raise Invalid("`requester` is required when an agent creates a ticket", fields=("requester",))
    status = values.get("status")
    if status is not None:
        target = ticket_type.status(status)
        if target is not None and target.category != "new" and not values.get("handler") and v.role != "system":
            raise WorkflowRefused("a ticket needs a handler before it can leave New", fields=("status", "handler"))
    actor = v.actor()
    doc = new_document(
        ticket_id=ticket_id,
        number=number,
        title=values.pop("title"),
        ticket_type=ticket_type,
        requester=requester,
        channel=cmd.channel,
        actor=actor,
        now=now,
        values={k: val for k, val in values.items() if k != "type"},
    )
    if doc["status_category"] in DONE and doc["recurrence"]:
        doc["wake_at"] = now + _duration(doc["recurrence"]["every"], "recurrence.every")
    if cmd.template:
        doc["activity"].append(activity(now, actor, "template", f"from template {cmd.template}"))
    files = new_files(doc, cmd.attachments)
    if files:
        doc["attachments"] = [a.model_dump() for a in files]
        # The description is shown to the requester, so its files are too (`visible_attachments`).
        doc["description_attachment_ids"] = [a.attachment_id for a in files]
    doc["applied"] = [cmd.command_id]
    created = TicketCreated(
        ticket=snapshot(doc), description=doc["description"], actor=actor, cause=None, attachments=files
    )
    return doc, [created]


def _check_version(ticket: dict[str, Any], expected: int | None, touched: set[str], config: Config) -> None:
    if expected is None or expected == ticket["version"]:
        return
    if expected > ticket["version"]:
        raise VersionConflict(f"version {expected} is newer than the ticket's {ticket['version']}")
    changed = sorted(f for f, ver in ticket.get("fv", {}).items() if ver > expected)
    if config.settings.concurrent_edits == "refuse":
        raise VersionConflict(
            f"the ticket changed since version {expected}: {', '.join(changed) or 'its conversation'} "
            "changed meanwhile; reload and try again",
            fields=tuple(changed),
        )
    overlap = sorted(set(changed) & touched)
    if overlap:
        raise VersionConflict(
            f"{', '.join(overlap)} changed since version {expected}; reload and try again", fields=tuple(overlap)
        )


def _require_agent(v: Viewer, what: str) -> None:
    if v.role not in (*AGENT_ROLES, "system"):
        raise Forbidden(f"only agents can {what}")


def _require_system_for_sla(fields: dict[str, Any], v: Viewer) -> None:
    # the SLA clock is triggers': due times written by a person would be overwritten, or worse, believed
    if "sla" in fields and v.role != "system":
        raise Forbidden("only the system (triggers' SLA clock) sets `sla`", fields=("sla",))


def _wake_up(ticket: dict[str, Any], new: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """Return the wake-up fields a change sets, given the fields it changes (`new`, status fields included).

    A dormant ticket wakes at `dormant_until` (or after `dormant_for`); woken early it forgets that time.
    A recurring ticket that enters resolved or closed wakes `every` later, when triggers' time rules
    reopen it; moving between resolved and closed keeps that time, reopening it first forgets it.
    """
    before = ticket.get("status_category")
    after = new.get("status_category", before)
    recurrence = new["recurrence"] if "recurrence" in new else ticket.get("recurrence")
    if after in DONE:
        if before in DONE and "recurrence" not in new:
            return {}
        every = _duration(recurrence["every"], "recurrence.every") if recurrence else None
        return {"wake_at": now + every if every else None, "dormant_until": None}
    if after == "dormant":
        return {"wake_at": None} if before in DONE and "wake_at" not in new else {}
    if ticket.get("wake_at") or ticket.get("dormant_until"):
        return {"wake_at": None, "dormant_until": None}
    return {}


def update(
    ticket: dict[str, Any],
    cmd: UpdateTicket,
    config: Config,
    v: Viewer,
    *,
    now: datetime,
    cascade_from: int | None = None,
) -> Change:
    """Return the change an update command makes (fields, workflow, assignment, move), or raise Refused.

    The system (what triggers' rules act as) may take a ticket out of New without a handler and is not
    bound by the type's transitions: rules reopen resolved and closed tickets. People are bound by both.
    `status_category` picks the type's first status of that category, for rules that cannot know how a
    type names its statuses.
    """
    _require_agent(v, "change ticket fields")
    _require_system_for_sla(cmd.fields, v)
    fields = dict(cmd.fields)
    type_key = fields.get("type", ticket["type"])
    ticket_type = config.type(type_key) if isinstance(type_key, str) else None
    if ticket_type is None:
        raise Invalid(f"`type` must be one of: {', '.join(t.key for t in config.types)}", fields=("type",))
    if "status_category" in fields:
        if "status" in fields:
            raise Invalid("give `status` or `status_category`, not both", fields=("status", "status_category"))
        fields["status"] = _status_of_category(fields.pop("status_category"), ticket_type, ticket)
    values = normalise(fields, config, ticket_type, now=now)
    if "title" in values and not values["title"]:
        raise Invalid("`title` must not be empty", fields=("title",))
    actor = v.actor()
    by_rule = _by_rule(cmd.automation)
    log: list[dict[str, Any]] = []
    new: dict[str, Any] = {}
    # a move to another type keeps the status when the type has it, else the first of the same category
    if values.get("type", ticket["type"]) != ticket["type"] and "status" not in values:
        current = ticket["status"]
        if ticket_type.status(current) is None:
            same = ticket_type.first(ticket["status_category"]) or ticket_type.statuses[0]
            values["status"] = same.key
            detail = f"status {current} has no match in {ticket_type.name}: {same.key}{by_rule}"
            log.append(activity(now, actor, "move", detail))
    if "status" in values:
        old_type = config.type(ticket["type"])
        if (
            v.role != "system"
            and values.get("type", ticket["type"]) == ticket["type"]
            and old_type
            and not old_type.allows(ticket["status"], values["status"])
        ):
            allowed = old_type.transitions.get(ticket["status"], [])
            raise WorkflowRefused(
                f"the {old_type.name} workflow does not allow {ticket['status']} → {values['status']}; "
                f"allowed: {', '.join(allowed) or 'none'}",
                fields=("status",),
            )
        new.update(status_fields(ticket_type, values.pop("status")))
    custom = {k.removeprefix("custom."): values.pop(k) for k in [k for k in values if k.startswith("custom.")]}
    new.update(values)
    for key, value in custom.items():
        new[f"custom.{key}"] = value
    if "dormant_until" in new and new["dormant_until"] is not None:
        new["wake_at"] = new["dormant_until"]
    new.update(_wake_up(ticket, new, now=now))
    changes = [
        FieldChange(field=name, old=_get(ticket, name), new=value)
        for name, value in new.items()
        if _get(ticket, name) != value and name not in ("status_category", "phase")
    ]
    touched = {c.field for c in changes}
    _check_version(ticket, cmd.expected_version, touched | set(fields), config)
    if not changes:
        return Change()
    after = {**ticket, **{k: v_ for k, v_ in new.items() if not k.startswith("custom.")}}
    leaving_new = ticket["status_category"] == "new" and after.get("status_category", "new") != "new"
    if leaving_new and not after.get("handler") and v.role != "system":
        raise WorkflowRefused("a ticket needs a handler before it can leave New", fields=("status", "handler"))
    version = ticket["version"] + 1
    set_fields: dict[str, Any] = {
        **new,
        "updated_at": now,
        "last_updated_by": actor.model_dump(),
        **{f"fv.{c.field}": version for c in changes},
    }
    category = after.get("status_category")
    if category != ticket["status_category"]:
        if category == "resolved":
            set_fields["resolved_at"] = now
        if category == "closed":
            set_fields["closed_at"] = now
        if category in DONE and not ticket.get("resolved_at") and not ticket.get("closed_at"):
            set_fields.update(missed_target(ticket, "resolution", now))
        if PHASE_OF[str(category)] == "active" and ticket["status_category"] in ("resolved", "closed"):
            set_fields["resolved_at"] = set_fields["closed_at"] = None
    for c in changes:
        log.append(activity(now, actor, "field", f"{c.field}: {_show(c.old)} → {_show(c.new)}{by_rule}"))
    after.update({k: val for k, val in set_fields.items() if "." not in k})
    after["version"] = version
    snap = snapshot(after)
    automation = cmd.automation
    change = Change(set_fields=set_fields, push={"activity": log})
    change.events.append(
        TicketUpdated(ticket=snap, changes=tuple(changes), actor=actor, reason=_rule(automation), automation=automation)
    )
    by_field = {c.field: c for c in changes}
    if "group" in by_field or "handler" in by_field:
        change.events.append(
            TicketAssigned(
                ticket=snap,
                group=by_field.get("group"),
                handler=by_field.get("handler"),
                actor=actor,
                automation=automation,
            )
        )
    if category == "closed" and ticket["status_category"] != "closed":
        change.events.append(TicketClosed(ticket=snap, actor=actor, parent=cascade_from, automation=automation))
    return change


def _get(ticket: dict[str, Any], name: str) -> Any:
    if name.startswith("custom."):
        return ticket.get("custom", {}).get(name.removeprefix("custom."))
    return ticket.get(name)


def _show(value: Any) -> str:
    if value is None or value == []:
        return "—"
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(x)}" for k, x in value.items() if x not in (None, [])) or "—"
    if isinstance(value, list):
        return ", ".join(str(x.get("email", x)) if isinstance(x, dict) else str(x) for x in value)
    return str(value)


def add_comment(
    ticket: dict[str, Any],
    cmd: AddComment,
    config: Config,
    v: Viewer,
    *,
    now: datetime,
    html: str | None,
    mentions: Sequence[str] = (),
) -> Change:
    """Return the change a comment makes (conversation, timestamps), or raise Refused.

    A comment moves no status: triggers' default rules do that on the `CommentAdded` (a customer's reply
    → Waiting for agent), where an admin can change them. `mentions` are the user ids the comment's
    `@handles` name, resolved by the caller (the staff directory is I/O); a public reply or internal
    comment keeps them, without its author.
    """
    allowed = {
        "admin": {"public_reply", "internal_comment", "solution_note"},
        "agent": {"public_reply", "internal_comment", "solution_note"},
        "light_agent": {"internal_comment"},
        "customer": {"customer_comment"},
        "system": {"public_reply", "internal_comment", "solution_note", "customer_comment"},
    }
    if cmd.kind not in allowed.get(v.role, set()):
        raise Forbidden(f"a {v.role.replace('_', ' ')} cannot add a {cmd.kind.replace('_', ' ')}")
    if ticket["status_category"] == "closed" and v.role == "customer":
        raise WorkflowRefused("the ticket is closed; open a new one")
    actor = v.actor()
    visibility = "internal" if cmd.kind in ("internal_comment", "solution_note") else "public"
    comment = Comment(
        comment_id=derived_id("comment", ticket["_id"], cmd.command_id),
        visibility=visibility,
        author=actor,
        channel=cmd.channel,
        text=cmd.text,
        html=html,
        attachments=distinct_files(cmd.attachments),
        created_at=now,
    )
    authors = {v.id, actor.id}
    named = tuple(dict.fromkeys(m for m in mentions if m and m not in authors))
    named = named if cmd.kind in MENTIONING_KINDS else ()
    stored = stored_comment(comment, cmd.kind)
    set_fields: dict[str, Any] = {"updated_at": now, "last_updated_by": actor.model_dump(), "last_comment_at": now}
    if cmd.kind == "customer_comment":
        set_fields["last_customer_comment_at"] = now
    elif cmd.kind == "public_reply" and ticket.get("first_response_at") is None:
        set_fields["first_response_at"] = now
        set_fields.update(missed_target(ticket, "first_response", now))
    after = {**ticket, **set_fields, "version": ticket["version"] + 1}
    detail = f"{cmd.kind.replace('_', ' ')} via {cmd.channel}{_by_rule(cmd.automation)}"
    change = Change(
        set_fields=set_fields, push={"comments": [stored], "activity": [activity(now, actor, "comment", detail)]}
    )
    if files := new_files(ticket, comment.attachments):
        change.push["attachments"] = [a.model_dump() for a in files]
    change.events.append(
        CommentAdded(
            ticket=snapshot(after),
            comment=comment,
            author_role=actor.role,
            kind=cmd.kind,
            mentions=named,
            automation=cmd.automation,
        )
    )
    return change


def follow(ticket: dict[str, Any], cmd: FollowTicket, v: Viewer, *, now: datetime) -> Change:
    """Return the change of following or unfollowing a ticket."""
    if v.role not in ("admin", "agent", "light_agent"):
        raise Forbidden("only agents can follow tickets")
    actor = v.actor()
    if cmd.follow:
        return Change(
            add_to_set={"followers": [v.id]}, push={"activity": [activity(now, actor, "follow", "started following")]}
        )
    return Change(pull={"followers": v.id}, push={"activity": [activity(now, actor, "follow", "stopped following")]})


SYSTEM = Actor(role="system", name="tickets")


def close(ticket: dict[str, Any], cmd: CloseTicket, config: Config, v: Viewer, *, now: datetime) -> Change:
    """Return the change of closing a ticket (the type's first closed status), and its children's closing.

    A child closed because its parent closed may leave New without a handler: the rule is for people (the
    system closes it). A rule's close carries its firing on to the children's.
    """
    ticket_type = config.type(ticket["type"])
    target = ticket_type.first("closed") if ticket_type else None
    if target is None:
        raise WorkflowRefused(f"type {ticket['type']} has no closed status")
    update_cmd = UpdateTicket(
        command_id=cmd.command_id,
        actor=cmd.actor,
        number=cmd.number,
        expected_version=cmd.expected_version,
        fields={"status": target.key},
        automation=cmd.automation,
    )
    cascade = ticket.get("parent") if v.role == "system" else None
    change = update(ticket, update_cmd, config, v, now=now, cascade_from=cascade)
    close_children = config.settings.close_children_with_parent if cmd.close_children is None else cmd.close_children
    if close_children and ticket["status_category"] != "closed":
        change.commands.extend(
            CloseTicket(
                command_id=derived_id(cmd.command_id, "close child", str(child)),
                actor=SYSTEM,
                number=child,
                close_children=False,
                automation=cmd.automation,
            )
            for child in ticket.get("children", [])
        )
    return change


def link(child: dict[str, Any], cmd: LinkTicket, parent: dict[str, Any] | None, v: Viewer, *, now: datetime) -> Change:
    """Return the change of linking a ticket to a parent (or unlinking it), or raise Refused."""
    _require_agent(v, "link tickets")
    if cmd.parent == child["number"]:
        raise Invalid("a ticket cannot be its own parent", fields=("parent",))
    if cmd.parent is not None:
        if parent is None:
            raise NotFound(f"ticket #{cmd.parent} not found", fields=("parent",))
        if parent.get("parent") is not None:
            raise WorkflowRefused(
                f"#{parent['number']} is itself a child of #{parent['parent']}; link to #{parent['parent']}",
                fields=("parent",),
            )
        if child.get("children"):
            raise WorkflowRefused(f"#{child['number']} has children of its own, so it cannot become a child")
    old = child.get("parent")
    if old == cmd.parent:
        return Change()
    actor = v.actor()
    version = child["version"] + 1
    detail = f"parent: {'#' + str(old) if old else '—'} → {'#' + str(cmd.parent) if cmd.parent else '—'}"
    change = Change(
        set_fields={
            "parent": cmd.parent,
            "updated_at": now,
            "last_updated_by": actor.model_dump(),
            "fv.parent": version,
        },
        push={"activity": [activity(now, actor, "link", detail)]},
    )
    snap = snapshot({**child, "parent": cmd.parent, "updated_at": now, "version": version})
    change.events.append(TicketLinked(ticket=snap, parent=cmd.parent, previous_parent=old, actor=actor))
    for number, linked in ((old, False), (cmd.parent, True)):
        if number is not None:
            change.commands.append(
                RecordChild(
                    command_id=derived_id(cmd.command_id, "record child", str(number)),
                    actor=SYSTEM,
                    number=number,
                    child=child["number"],
                    linked=linked,
                )
            )
    return change


def record_child(parent: dict[str, Any], cmd: RecordChild, v: Viewer, *, now: datetime) -> Change:
    """Return the change to a parent's list of children after a link or unlink (sent by tickets itself)."""
    if v.role != "system":
        raise Forbidden("only the tickets service records children")
    entry = activity(now, cmd.actor, "child", f"#{cmd.child} {'linked' if cmd.linked else 'unlinked'}")
    if cmd.linked:
        return Change(add_to_set={"children": [cmd.child]}, push={"activity": [entry]})
    return Change(pull={"children": cmd.child}, push={"activity": [entry]})


DELETE_CONFIRMATION_TTL = timedelta(minutes=10)


def _delete_signature(ticket: dict[str, Any], expires: int, secret: str) -> str:
    message = f"delete|{ticket['_id']}|{ticket['version']}|{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def delete_confirmation(ticket: dict[str, Any], v: Viewer, *, now: datetime, secret: str) -> tuple[str, datetime]:
    """Return a token that confirms deleting this ticket at its current version, and when it expires."""
    if v.role != "admin":
        raise Forbidden("only admins delete tickets")
    expires = int((now + DELETE_CONFIRMATION_TTL).timestamp())
    token = base64.urlsafe_b64encode(str(expires).encode()).decode() + "." + _delete_signature(ticket, expires, secret)
    return token, datetime.fromtimestamp(expires, UTC)


def delete(ticket: dict[str, Any], cmd: DeleteTicket, v: Viewer, *, now: datetime, secret: str) -> Change:
    """Return the change that empties a ticket into a tombstone (removed once its event is out), or refuse.

    The confirmation must be for this ticket at this version and not older than ten minutes, so a ticket
    that changed after the admin looked at it is not deleted by mistake.
    """
    if v.role != "admin":
        raise Forbidden("only admins delete tickets")
    try:
        encoded, signature = cmd.confirmation.split(".", 1)
        expires = int(base64.urlsafe_b64decode(encoded.encode()))
    except ValueError:
        raise Invalid("the confirmation is not one we issued", fields=("confirmation",)) from None
    if not hmac.compare_digest(signature, _delete_signature(ticket, expires, secret)):
        raise WorkflowRefused(
            "the confirmation does not match this ticket as it is now (it changed, or the token is for another "
            "ticket); ask for a new one",
            fields=("confirmation",),
        )
    if now.timestamp() > expires:
        raise WorkflowRefused("the confirmation has expired; ask for a new one", fields=("confirmation",))
    actor = v.actor()
    change = Change(
        set_fields={
            "phase": "deleted",
            "status_category": "deleted",
            "title": "(deleted)",
            "description": "",
            "requester": {"email": "deleted@invalid", "name": ""},
            "organisation": None,
            "cc": [],
            "tags": [],
            "custom": {},
            "attachments": [],
            "comments": [],
            "message_ids": [],
            "link_token": secrets.token_urlsafe(24),
            "activity": [activity(now, actor, "deleted", "ticket deleted")],
            "updated_at": now,
            "last_updated_by": actor.model_dump(),
        }
    )
    change.events.append(TicketDeleted(ticket_id=ticket["_id"], number=ticket["number"], actor=actor, deleted_at=now))
    return change


def merge(
    source: dict[str, Any], cmd: MergeTicket, target: dict[str, Any] | None, config: Config, v: Viewer, *, now: datetime
) -> Change:
    """Return the change that closes `source` as merged into `target`, or raise Refused.

    The survivor takes the conversation through a follow-up command sent by the outbox.
    """
    _require_agent(v, "merge tickets")
    if cmd.into == source["number"]:
        raise Invalid("a ticket cannot be merged into itself", fields=("into",))
    if target is None:
        raise NotFound(f"ticket #{cmd.into} not found", fields=("into",))
    if source.get("merged_into"):
        raise WorkflowRefused(f"#{source['number']} is already merged into #{source['merged_into']}")
    if target.get("merged_into"):
        raise WorkflowRefused(
            f"#{target['number']} was merged into #{target['merged_into']}; merge into that one", fields=("into",)
        )
    ticket_type = config.type(source["type"])
    closed = ticket_type.first("closed") if ticket_type else None
    if closed is None:
        raise WorkflowRefused(f"type {source['type']} has no closed status")
    actor = v.actor()
    version = source["version"] + 1
    set_fields: dict[str, Any] = {
        "merged_into": target["number"],
        **status_fields(ticket_type, closed.key),  # type: ignore[arg-type]
        "closed_at": now,
        "updated_at": now,
        "last_updated_by": actor.model_dump(),
        "fv.status": version,
        "fv.merged_into": version,
    }
    after = {**source, **{k: x for k, x in set_fields.items() if "." not in k}, "version": version}
    snap = snapshot(after)
    change = Change(
        set_fields=set_fields,
        push={"activity": [activity(now, actor, "merge", f"merged into #{target['number']}")]},
    )
    change.events += [
        TicketMerged(ticket=snap, into=target["number"], actor=actor),
        TicketClosed(ticket=snap, actor=actor, automation=cmd.automation),
    ]
    change.commands.append(
        AbsorbTicket(
            command_id=derived_id(cmd.command_id, "absorb"),
            actor=SYSTEM,
            number=target["number"],
            source=source["number"],
        )
    )
    return change


def absorb(
    target: dict[str, Any], cmd: AbsorbTicket, source: dict[str, Any] | None, v: Viewer, *, now: datetime
) -> Change:
    """Return the change that gives the survivor of a merge the merged ticket's conversation and contacts."""
    if v.role != "system":
        raise Forbidden("only the tickets service completes a merge")
    if source is None:
        raise NotFound(f"merged ticket #{cmd.source} not found")
    comments = [{**c, "merged_from": source["number"]} for c in source.get("comments", [])]
    cc = [c for c in [source["requester"], *source.get("cc", [])] if c["email"] != target["requester"]["email"]]
    detail = f"#{source['number']} merged in ({len(comments)} conversation entries)"
    return Change(
        set_fields={"updated_at": now},
        push={"comments": comments, "activity": [activity(now, cmd.actor, "merge", detail)]},
        add_to_set={
            "message_ids": list(source.get("message_ids", [])),
            "cc": cc,
            "followers": list(source.get("followers", [])),
        },
    )


def split(
    source: dict[str, Any],
    cmd: SplitTicket,
    config: Config,
    v: Viewer,
    *,
    ticket_id: str,
    number: int,
    now: datetime,
) -> tuple[dict[str, Any], list[Any], Change]:
    """Return the new ticket made of some of `source`'s comments, its events, and the change to `source`."""
    _require_agent(v, "split tickets")
    chosen = [c for c in source.get("comments", []) if c["comment_id"] in set(cmd.comment_ids)]
    missing = sorted(set(cmd.comment_ids) - {c["comment_id"] for c in chosen})
    if missing:
        raise Invalid(f"no such comments on #{source['number']}: {', '.join(missing)}", fields=("comment_ids",))
    ticket_type = config.type(source["type"]) or config.types[0]
    actor = v.actor()
    title = _text(cmd.title, "title", MAX_TITLE, required=True) if cmd.title is not None else source["title"]
    doc = new_document(
        ticket_id=ticket_id,
        number=number,
        title=title,
        ticket_type=ticket_type,
        requester=source["requester"],
        channel=source.get("channel", "agent"),
        actor=actor,
        now=now,
        values={
            "group": source.get("group"),
            "handler": source.get("handler"),
            "priority": source.get("priority", "medium"),
            "organisation": source.get("organisation"),
            "description": chosen[0]["text"],
            "comments": [{**c, "split_from": source["number"]} for c in chosen],
            "message_ids": [c["message_id"] for c in chosen if c.get("message_id")],
        },
    )
    doc["activity"].append(activity(now, actor, "split", f"split from #{source['number']} ({len(chosen)} entries)"))
    doc["applied"] = [cmd.command_id]
    created = TicketCreated(ticket=snapshot(doc), description=doc["description"], actor=actor, cause=None)
    change = Change(
        set_fields={"updated_at": now, "last_updated_by": actor.model_dump()},
        push={"activity": [activity(now, actor, "split", f"{len(chosen)} entries split into #{number}")]},
    )
    return doc, [created], change


def staff_reply(
    ticket: dict[str, Any],
    email: EmailReceived,
    member: StaffMember,
    config: Config,
    *,
    now: datetime,
    threading: Threading,
    mentions: Sequence[str] = (),
) -> Change:
    """Return what mail from a member of staff does to a ticket: their comment, as if written in the portal.

    An agent's mail is a public reply (it reached the customer if they were addressed); a light agent's is
    an internal comment, the only kind a light agent may add. The usual rules for that kind apply, and
    `mentions` (the staff its new text `@mentions`, resolved by the caller) as for any comment of staff.
    """
    kind = "internal_comment" if member.role == "light_agent" else "public_reply"
    command = AddComment(
        command_id=derived_id("email-comment", ticket["_id"], email.message_id or email.raw_id),
        actor=Actor(role=member.role, id=member.id, email=member.email, name=member.name or email.sender.name),  # type: ignore[arg-type]
        number=ticket["number"],
        kind=kind,
        text=email.text or "(empty message)",
        channel="email",
        attachments=email.attachments,
    )
    viewer = viewer_of(command.actor, groups=member.groups or ("*",))
    change = add_comment(ticket, command, config, viewer, now=now, html=email.html, mentions=mentions)
    change.push["activity"].append(
        activity(now, command.actor, "email from staff", f"{member.email} wrote by email ({threading.reason})")
    )
    if email.text_new and email.text_new != email.text:
        change.push["comments"][0]["text_new"] = email.text_new
    change.add_to_set["message_ids"] = [i for i in (email.message_id,) if i]
    return change
