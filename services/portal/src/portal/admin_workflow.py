"""Admin: ticket types with statuses and transitions, fields, automations, SLA policies and business hours.

Types and fields are parts of the tickets service's one configuration document: a save reads the
document, changes the part that was edited and writes the whole back with the version the form was
made from, so a save over someone else's change is refused (409) instead of undoing it. Rules, SLA
policies and calendars belong to the triggers service, which validates them; its 422 locations are
shown next to the row or field they point at.

Every form works without JavaScript: lists of rows come with a few empty rows and an "add rows"
button that shows the form again with more; `static/admin_workflow.js` only hides what does not apply.
"""

import json
import logging
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date
from functools import cache
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from portal.domain import CHANNEL_LABELS, STATUS_LABELS, Actor, User
from portal.i18n import Translate, translator
from portal.pagekit import AdminUser, PageError, Portal, language_for, page_router, render
from portal.service_client import ServiceNotFound, ServiceRefused, ServiceUnavailable
from portal.settings import Settings

log = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = tuple(STATUS_LABELS)
"""Status categories, as the tickets service knows them (`tickets.config.Category`)."""

STANDARD_FIELDS: tuple[str, ...] = (
    "title",
    "description",
    "type",
    "status",
    "priority",
    "category",
    "group",
    "handler",
    "organisation",
    "cc",
    "tags",
    "parent",
    "recurrence",
    "dormant_until",
)
"""The standard ticket fields an admin may switch on, off or make required (`tickets.config.STANDARD_FIELDS`)."""

CUSTOM_KINDS: dict[str, str] = {
    "text": "Text",
    "number": "Number",
    "date": "Date",
    "pick_list": "Pick-list",
    "checkbox": "Checkbox",
}

EVENTS: dict[str, str] = {
    "ticket.created": "Ticket created",
    "ticket.updated": "Ticket updated (a field changed)",
    "comment.added": "Comment added",
    "time": "Time (scheduled)",
    "sla.near_breach": "SLA near breach",
    "sla.breached": "SLA breached",
}

OPERATORS: dict[str, str] = {
    "is": "is",
    "is_not": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "in": "is one of",
    "not_in": "is none of",
    "is_set": "is set",
    "is_not_set": "is not set",
    "changed": "changed",
    "changed_from": "changed from",
    "changed_to": "changed to",
    "older_than": "older than",
    "newer_than": "newer than",
    "within_business_hours": "within business hours",
    "outside_business_hours": "outside business hours",
}
NO_VALUE_OPS = frozenset({"is_set", "is_not_set", "changed"})
LIST_OPS = frozenset({"in", "not_in"})

ACTION_TYPES: dict[str, str] = {
    "set_fields": "Set a field",
    "assign": "Assign",
    "send_template": "Send an email template",
    "add_note": "Add an internal note",
    "webhook": "Call a webhook",
}
ASSIGN_TO: dict[str, str] = {"user": "a user", "group": "a group", "round_robin": "round-robin in a group"}
TARGETS: dict[str, str] = {
    "customer": "The customer",
    "handler": "The handler",
    "group": "The group",
    "cc": "The CC list",
}
AUTO_SUBMITTED: dict[str, str] = {
    "auto-replied": "auto-replied",
    "auto-generated": "auto-generated",
    "": "none (as a person)",
}
COMMENT_BY: dict[str, str] = {"customer": "the customer", "agent": "an agent"}
SECRET_MASK = "**********"  # noqa: S105 - the mask triggers shows instead of a secret
"""Triggers shows a webhook's secret as this; sent back unchanged it keeps the stored one."""

WEEKDAYS: dict[str, str] = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
ALWAYS_OPEN = "24x7"
"""The built-in calendar triggers keeps; it cannot be changed or deleted."""

BLANK_ROWS = 3
"""Empty rows a list of rows gets for additions without JavaScript."""
MAX_ROWS = 60
MAX_TYPES = 10
"""The most ticket types the tickets service takes (`tickets.config.MAX_TYPES`)."""
SLUG = re.compile(r"[^a-z0-9]+")
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
HOURS = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})$")
DURATION_PART = re.compile(r"(\d{1,6})\s*([hm]?)")
VALUE_ERROR_PREFIX = re.compile(r"^(Value error|Assertion failed), ")
RESERVED_IDS = frozenset({"new", "save"})
"""Ids the editors' own URLs use; a name that slugs to one gets a prefix."""

NOTICES: dict[str, str] = {
    "saved": "Saved.",
    "deleted": "Deleted.",
    "switched_on": "The rule is active.",
    "switched_off": "The rule is switched off.",
}
"""Messages a redirect may ask a list page to show (by key, so a link cannot put words on the page)."""


class FormProblem(Exception):
    """A form's input cannot be sent as it is; `errors` says where (form field or row) and why."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


# ------------------------------------------------------------------------------------------------ small helpers


class Fields:
    """The fields of a posted form, read as trimmed text, ticks and lists."""

    def __init__(self, form: FormData) -> None:
        self.form = form

    def text(self, name: str, limit: int = 2000, *, strip: bool = True) -> str:
        """Return a text field (empty when missing), cut to `limit` characters."""
        value = self.form.get(name)
        if not isinstance(value, str):
            return ""
        value = value.replace("\r\n", "\n")
        return (value.strip() if strip else value)[:limit]

    def ticked(self, name: str) -> bool:
        """Tell whether a checkbox was ticked."""
        return self.form.get(name) in ("on", "true", "1", "yes")

    def many(self, name: str) -> list[str]:
        """Return every value of a repeated field (ticked checkboxes), in order, without blanks."""
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]

    def rows(self, name: str) -> int:
        """Return how many rows a list had (a hidden count), within sane bounds."""
        value = self.text(name, 4)
        return min(int(value), MAX_ROWS) if value.isdigit() else 0


def slug(text: str, *, sep: str = "-") -> str:
    """Return a URL-safe id made from a name: `VIP first!` → `vip-first`."""
    return SLUG.sub(sep, text.lower()).strip(sep)[:64].strip(sep)


def new_id(name: str, prefix: str) -> str:
    """Return the id a new rule, policy or calendar gets from its name (never one of the editors' URLs)."""
    made = slug(name)
    return f"{prefix}-{made}"[:64] if made in RESERVED_IDS else made


def key_of(text: str) -> str:
    """Return a configuration key made from a name (lower-case, underscores, starting with a letter)."""
    key = slug(text, sep="_")
    key = key.lstrip("0123456789_")
    return key[:40].rstrip("_")


def error_text(message: str) -> str:
    """Return a validation message without pydantic's 'Value error, ' prefix, as a sentence."""
    message = VALUE_ERROR_PREFIX.sub("", message.strip())
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def path_of(where: str) -> list[str]:
    """Return a dotted error location as its parts."""
    return [p for p in where.split(".") if p]


def config_version_of(value: str) -> int:
    """Return the configuration version a form was made from (0 before anything was saved)."""
    if not value.isdigit() or len(value) > 12:
        raise PageError(400, "Form incomplete", "This form is missing a part. Reload the page and try again.")
    return int(value)


def checked_id(value: str, what: str) -> str:
    """Return an id from a URL, or a 404 page for one triggers could never have made."""
    if not ID_PATTERN.fullmatch(value):
        raise PageError(404, f"No such {what}", f"There is no {what} with that id.")
    return value


def value_text(value: Any, op: str = "is") -> str:
    """Return a rule value as the form shows it: text as it is, anything else as JSON."""
    if value is None:
        return ""
    if op in LIST_OPS and isinstance(value, list) and all(_plain_item(v) for v in value):
        return ", ".join(value)
    if isinstance(value, str):
        if value == "" or _parses_as_json(value):
            return json.dumps(value, ensure_ascii=False)
        return value
    return json.dumps(value, ensure_ascii=False)


def _plain_item(value: Any) -> bool:
    return isinstance(value, str) and value != "" and value == value.strip() and "," not in value


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def value_of(text: str, op: str = "is") -> Any:
    """Return the value a form's text stands for: JSON when it reads as JSON, else the text; a list for `in`."""
    text = text.strip()
    if op in NO_VALUE_OPS or text == "":
        return None
    if op in LIST_OPS and not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        return json.loads(text)
    except ValueError:
        return text


def duration_text(minutes: int | None) -> str:
    """Return minutes as the SLA form shows them: `90` → `1h 30m`."""
    if not minutes:
        return ""
    hours, rest = divmod(minutes, 60)
    return " ".join(part for part in (f"{hours}h" if hours else "", f"{rest}m" if rest else "") if part)


def minutes_of(text: str) -> int | None:
    """Return the minutes in a duration like `90`, `4h` or `1h 30m` (None when empty; ValueError if unreadable)."""
    text = text.strip().lower()
    if not text:
        return None
    total, position = 0, 0
    for found in DURATION_PART.finditer(text):
        if text[position : found.start()].strip():
            break
        total += int(found.group(1)) * (60 if found.group(2) == "h" else 1)
        position = found.end()
    if position == 0 or text[position:].strip():
        raise ValueError("write minutes or hours, e.g. 90, 4h or 1h 30m")
    return total


def hours_text(intervals: Iterable[Any]) -> str:
    """Return a weekday's opening intervals as the form shows them: `08:00-12:00, 13:00-17:00`."""
    parts = []
    for start, end in intervals:
        end_text = str(end)[:5]
        parts.append(f"{str(start)[:5]}-{'24:00' if end_text == '00:00' else end_text}")
    return ", ".join(parts)


def intervals_of(text: str) -> list[list[str]]:
    """Return the intervals written as `08:00-12:00, 13:00-17:00`; ValueError naming the one it cannot read."""
    intervals = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        found = HOURS.match(part)
        if not found:
            raise ValueError(f"cannot read {part!r}: write opening hours like 08:00-17:00")
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{part!r} is not a time of day")
        intervals.append([f"{h1:02d}:{m1:02d}", f"{h2:02d}:{m2:02d}"])
    return intervals


@cache
def time_zones() -> tuple[str, ...]:
    """Return the IANA time zone names, sorted, for the business-hours form's suggestions."""
    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith("Etc/")))


@dataclass
class Outcome:
    """What a page shows about the last attempt: a message at the top and messages next to fields or rows."""

    alert: str = ""
    errors: dict[str, str] = dataclass_field(default_factory=dict)


def refusal_outcome(
    t: Translate,
    exc: ServiceRefused,
    place: Any,
    *,
    conflict: str = "",
    prefix: tuple[str, ...] = (),
    trying: bool = False,
) -> Outcome:
    """Return what to show for a refusal: 409 as the conflict message, 422 errors next to what they point at.

    `place(parts)` returns the form key an error location belongs to (None: show it at the top).
    """
    failed = "Cannot try it: {reason}" if trying else "Not saved: {reason}"
    if exc.status == 409:
        return Outcome(alert=conflict or t(failed, reason=error_text(exc.message)))
    outcome = Outcome()
    general = []
    for where, message in exc.locations:
        parts = path_of(where)
        if prefix and parts[: len(prefix)] == list(prefix):
            parts = parts[len(prefix) :]
        key = place(parts)
        if key is None:
            general.append(f"{'.'.join(parts) + ': ' if parts else ''}{error_text(message)}")
        else:
            outcome.errors.setdefault(key, error_text(message))
    if general or not exc.locations:
        outcome.alert = t(failed, reason=" ".join(general) or error_text(exc.message))
    else:
        outcome.alert = t("Cannot try it: see the marked fields." if trying else "Not saved: see the marked fields.")
    return outcome


# ------------------------------------------------------------------------------------------------ configuration


async def load_config(portal: Portal, user: User) -> tuple[int, dict[str, Any]]:
    """Return the tickets configuration and its version, as the admin may read it."""
    body = await portal.tickets.call("GET", "/api/config", Actor.of(user))
    if not isinstance(body, Mapping) or not isinstance(body.get("config"), Mapping):
        raise ServiceUnavailable("tickets", "unreadable configuration")
    return int(body.get("version") or 0), dict(body["config"])


async def save_config(portal: Portal, user: User, version: int, config: Mapping[str, Any]) -> int:
    """Write the whole configuration over `version`; return the new version (ServiceRefused when refused)."""
    body = await portal.tickets.call(
        "PUT", "/api/config", Actor.of(user), json={"version": version, "config": dict(config)}
    )
    return int(body.get("version") or 0) if isinstance(body, Mapping) else version + 1


@dataclass
class TypeForm:
    """A ticket type as its editor shows it: the type's fields, status rows and the transition matrix."""

    original_key: str
    key: str
    name: str
    colour: str
    mailbox: str
    statuses: list[dict[str, str]]
    allowed: list[set[int]]
    """For each status row, the rows it may move to (all rows: any)."""
    base: dict[str, Any] = dataclass_field(default_factory=dict)
    """The type as stored, so a save keeps what the form does not show (icon ...)."""

    @classmethod
    def of(cls, kind: Mapping[str, Any] | None, blank: int = BLANK_ROWS) -> "TypeForm":
        """Return the editor of a stored type (None: a new one) with `blank` empty status rows."""
        kind = kind or {}
        statuses = [
            {"key": str(s.get("key", "")), "name": str(s.get("name", "")), "category": str(s.get("category", ""))}
            for s in kind.get("statuses", [])
        ]
        if not kind:
            statuses = [
                {"key": "new", "name": "New", "category": "new"},
                {"key": "open", "name": "Open", "category": "open"},
                {"key": "closed", "name": "Closed", "category": "closed"},
            ]
        count = len(statuses) + blank
        statuses += [{"key": "", "name": "", "category": ""} for _ in range(blank)]
        index = {s["key"]: i for i, s in enumerate(statuses) if s["key"]}
        transitions = kind.get("transitions") or {}
        allowed = []
        for status in statuses:
            targets = transitions.get(status["key"]) if status["key"] else None
            if targets is None:
                allowed.append(set(range(count)))
            else:
                allowed.append({index[k] for k in targets if k in index})
        return cls(
            original_key=str(kind.get("key", "")),
            key=str(kind.get("key", "")),
            name=str(kind.get("name", "")),
            colour=str(kind.get("colour", "#7f8c8d")),
            mailbox=str(kind.get("mailbox") or ""),
            statuses=statuses,
            allowed=allowed,
            base=dict(kind),
        )

    @classmethod
    def read(cls, fields: Fields, base: Mapping[str, Any] | None) -> "TypeForm":
        """Return the editor as the admin posted it (rows marked for removal are kept until saved)."""
        count = fields.rows("rows")
        statuses = []
        for i in range(count):
            statuses.append(
                {
                    "key": fields.text(f"status_key_{i}", 40),
                    "name": fields.text(f"status_name_{i}", 60),
                    "category": fields.text(f"status_category_{i}", 40),
                    "remove": "on" if fields.ticked(f"status_remove_{i}") else "",
                }
            )
        allowed = [{int(j) for j in fields.many(f"tr_{i}") if j.isdigit() and int(j) < count} for i in range(count)]
        return cls(
            original_key=fields.text("original_key", 40),
            key=fields.text("key", 40),
            name=fields.text("name", 60),
            colour=fields.text("colour", 7) or "#7f8c8d",
            mailbox=fields.text("mailbox", 320),
            statuses=statuses,
            allowed=allowed,
            base=dict(base or {}),
        )

    def more_rows(self, extra: int = BLANK_ROWS) -> None:
        """Add empty status rows; rows that may move anywhere may move to the new ones too."""
        count = len(self.statuses)
        total = min(count + extra, MAX_ROWS)
        for i, targets in enumerate(self.allowed):
            if targets >= set(range(count)) - {i}:
                targets.update(range(count, total))
        for _ in range(count, total):
            self.statuses.append({"key": "", "name": "", "category": ""})
            self.allowed.append(set(range(total)))

    def kept(self) -> list[int]:
        """Return the rows that are statuses: not empty and not marked for removal."""
        return [i for i, s in enumerate(self.statuses) if (s["key"] or s["name"]) and not s.get("remove")]

    def to_type(self) -> tuple[dict[str, Any], list[int]]:
        """Return the type to store and, for each of its statuses, the form row it came from."""
        kept = self.kept()
        problems: dict[str, str] = {}
        statuses = []
        for i in kept:
            row = self.statuses[i]
            key = row["key"] or key_of(row["name"])
            if not key:
                problems[f"status.{i}"] = "Give the status a key (lower-case letters, digits and _)."
            statuses.append(
                {"key": key, "name": row["name"] or key.replace("_", " ").capitalize(), "category": row["category"]}
            )
        keys = {i: s["key"] for i, s in zip(kept, statuses, strict=True)}
        transitions: dict[str, list[str]] = {}
        for i in kept:
            others = [j for j in kept if j != i]
            targets = [j for j in others if j in self.allowed[i]]
            if len(targets) != len(others):
                transitions[keys[i]] = [keys[j] for j in targets]
        if problems:
            raise FormProblem(problems)
        kind = dict(self.base)
        kind.update(
            key=self.key or key_of(self.name),
            name=self.name,
            colour=self.colour,
            mailbox=self.mailbox or None,
            statuses=statuses,
            transitions=transitions,
        )
        return kind, kept


def type_place(type_index: int, rows: list[int]) -> Any:
    """Return where a 422 location of the configuration lands on the type editor."""

    def place(parts: list[str]) -> str | None:
        if parts[:3] != ["config", "types", str(type_index)]:
            return None
        rest = parts[3:]
        if len(rest) >= 2 and rest[0] == "statuses" and rest[1].isdigit() and int(rest[1]) < len(rows):
            return f"status.{rows[int(rest[1])]}"
        if rest and rest[0] in ("key", "name", "colour", "mailbox", "transitions", "statuses"):
            return rest[0]
        return None

    return place


def list_place(sections: Mapping[str, tuple[str, list[int]]]) -> Any:
    """Return where a 422 location of the configuration lands on the fields page (`section → (form key, rows)`)."""

    def place(parts: list[str]) -> str | None:
        if len(parts) >= 3 and parts[0] == "config" and parts[1] in sections and parts[2].isdigit():
            name, rows = sections[parts[1]]
            index = int(parts[2])
            return f"{name}.{rows[index]}" if index < len(rows) else None
        return None

    return place


@dataclass
class FieldsForm:
    """The fields page: standard fields used/required, custom fields, priorities and categories as rows."""

    standard: dict[str, dict[str, bool]]
    custom: list[dict[str, Any]]
    priorities: list[dict[str, str]]
    categories: list[dict[str, str]]

    @classmethod
    def of(cls, config: Mapping[str, Any], blank: int = BLANK_ROWS) -> "FieldsForm":
        """Return the page's form for a stored configuration, with `blank` empty rows per list."""
        rules = config.get("fields") or {}
        standard = {
            name: {
                "used": True if name == "title" else bool((rules.get(name) or {}).get("used", True)),
                "required": True if name == "title" else bool((rules.get(name) or {}).get("required", False)),
            }
            for name in STANDARD_FIELDS
        }
        custom = [
            {
                "key": str(c.get("key", "")),
                "name": str(c.get("name", "")),
                "kind": str(c.get("kind", "text")),
                "options": "\n".join(str(o) for o in c.get("options") or []),
                "used": bool(c.get("used", True)),
                "required": bool(c.get("required", False)),
            }
            for c in config.get("custom_fields") or []
        ]
        form = cls(
            standard=standard,
            custom=custom,
            priorities=[{"key": str(p["key"]), "name": str(p["name"])} for p in config.get("priorities") or []],
            categories=[{"key": str(p["key"]), "name": str(p["name"])} for p in config.get("categories") or []],
        )
        form.more_rows(blank)
        return form

    def more_rows(self, extra: int = BLANK_ROWS) -> None:
        """Add empty rows to every list."""
        for _ in range(extra):
            if len(self.custom) < MAX_ROWS:
                self.custom.append(
                    {"key": "", "name": "", "kind": "text", "options": "", "used": True, "required": False}
                )
            if len(self.priorities) < MAX_ROWS:
                self.priorities.append({"key": "", "name": ""})
            if len(self.categories) < MAX_ROWS:
                self.categories.append({"key": "", "name": ""})

    @classmethod
    def read(cls, fields: Fields) -> "FieldsForm":
        """Return the form as the admin posted it."""
        standard = {
            name: {
                "used": name == "title" or fields.ticked(f"used_{name}") or fields.ticked(f"required_{name}"),
                "required": name == "title" or fields.ticked(f"required_{name}"),
            }
            for name in STANDARD_FIELDS
        }
        custom = [
            {
                "key": fields.text(f"cf_key_{i}", 40),
                "name": fields.text(f"cf_name_{i}", 60),
                "kind": fields.text(f"cf_kind_{i}", 20),
                "options": fields.text(f"cf_options_{i}", 20_000),
                "used": fields.ticked(f"cf_used_{i}"),
                "required": fields.ticked(f"cf_required_{i}"),
                "remove": fields.ticked(f"cf_remove_{i}"),
            }
            for i in range(fields.rows("rows_custom"))
        ]

        def choices(prefix: str) -> list[dict[str, Any]]:
            return [
                {
                    "key": fields.text(f"{prefix}_key_{i}", 40),
                    "name": fields.text(f"{prefix}_name_{i}", 60),
                    "remove": fields.ticked(f"{prefix}_remove_{i}"),
                }
                for i in range(fields.rows(f"rows_{prefix}"))
            ]

        return cls(standard=standard, custom=custom, priorities=choices("pr"), categories=choices("ca"))

    def apply(self, config: dict[str, Any]) -> dict[str, list[int]]:
        """Write the form into the configuration; return, per list, the form row of each stored entry."""
        config["fields"] = {name: dict(rule) for name, rule in self.standard.items()}
        rows: dict[str, list[int]] = {"custom_fields": [], "priorities": [], "categories": []}
        custom = []
        for i, row in enumerate(self.custom):
            if row.get("remove") or not (row["key"] or row["name"]):
                continue
            options = [o.strip() for o in str(row["options"]).split("\n") if o.strip()]
            custom.append(
                {
                    "key": row["key"] or key_of(row["name"]),
                    "name": row["name"] or row["key"],
                    "kind": row["kind"],
                    "options": options if row["kind"] == "pick_list" else [],
                    "used": bool(row["used"]) or bool(row["required"]),
                    "required": bool(row["required"]),
                }
            )
            rows["custom_fields"].append(i)
        config["custom_fields"] = custom
        for section, entries in (("priorities", self.priorities), ("categories", self.categories)):
            kept = []
            for i, row in enumerate(entries):
                if row.get("remove") or not (row["key"] or row["name"]):
                    continue
                kept.append({"key": row["key"] or key_of(row["name"]), "name": row["name"] or row["key"]})
                rows[section].append(i)
            config[section] = kept
        return rows


# ------------------------------------------------------------------------------------------------ rules


def _condition_row(condition: Mapping[str, Any]) -> dict[str, str]:
    op = str(condition.get("op", "is"))
    return {"field": str(condition.get("field", "")), "op": op, "value": value_text(condition.get("value"), op)}


BLANK_ACTION: dict[str, Any] = {
    "type": "",
    "field": "",
    "value": "",
    "to": "user",
    "user": "",
    "group": "",
    "template": "",
    "target": "customer",
    "language": "en",
    "with_cc": False,
    "as_agent": False,
    "auto_submitted": "auto-replied",
    "text": "",
    "url": "",
    "secret": "",
}


def _action_rows(action: Mapping[str, Any]) -> list[dict[str, Any]]:
    kind = action.get("type")
    row = dict(BLANK_ACTION, type=kind)
    if kind == "set_fields":
        rows = []
        for name, value in (action.get("fields") or {}).items():
            shown = (
                ", ".join(value)
                if name == "tags" and isinstance(value, list) and all(_plain_item(v) for v in value)
                else value_text(value)
            )
            rows.append(dict(row, field=name, value=shown))
        return rows
    if kind == "assign":
        row.update(to=action.get("to") or "user", user=action.get("user") or "", group=action.get("group") or "")
    elif kind == "send_template":
        row.update(
            template=action.get("template") or "",
            target=action.get("target") or "customer",
            language=action.get("language") or "en",
            with_cc=bool(action.get("with_cc")),
            as_agent=bool(action.get("as_agent")),
            auto_submitted=action.get("auto_submitted") or "",
        )
    elif kind == "add_note":
        row.update(text=action.get("text") or "")
    elif kind == "webhook":
        row.update(url=action.get("url") or "", secret=action.get("secret") or "")
    return [row]


@dataclass
class RuleForm:
    """A rule as its editor shows it: the rule's fields and its conditions and actions as rows."""

    name: str = ""
    active: bool = True
    event: str = "ticket.created"
    field: str = ""
    comment_by: str = "customer"
    types: list[str] = dataclass_field(default_factory=list)
    groups: str = ""
    channels: list[str] = dataclass_field(default_factory=list)
    conditions: list[dict[str, str]] = dataclass_field(default_factory=list)
    actions: list[dict[str, Any]] = dataclass_field(default_factory=list)

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> "RuleForm | None":
        """Return the editor of a rule, or None when its rows cannot say all the rule says (edit it as JSON)."""
        scope = spec.get("applies_to") or {}
        try:
            form = cls(
                name=str(spec.get("name", "")),
                active=bool(spec.get("active", True)),
                event=str(spec.get("event", "ticket.created")),
                field=str(spec.get("field") or ""),
                comment_by=str(spec.get("comment_by") or "customer"),
                types=[str(x) for x in scope.get("types") or []],
                groups=", ".join(str(x) for x in scope.get("groups") or []),
                channels=[str(x) for x in scope.get("channels") or []],
                conditions=[_condition_row(c) for c in spec.get("conditions") or []],
                actions=[row for a in spec.get("actions") or [] for row in _action_rows(a)],
            )
            same = form.to_spec()[0] == normalised(spec)
        except (FormProblem, TypeError, AttributeError, ValueError):
            return None
        return form if same else None

    @classmethod
    def read(cls, fields: Fields) -> "RuleForm":
        """Return the editor as the admin posted it."""
        conditions = [
            {
                "field": fields.text(f"cond_field_{i}", 200),
                "op": fields.text(f"cond_op_{i}", 40),
                "value": fields.text(f"cond_value_{i}", 2000),
            }
            for i in range(fields.rows("rows_conditions"))
        ]
        actions = []
        for i in range(fields.rows("rows_actions")):
            actions.append(
                {
                    "type": fields.text(f"act_type_{i}", 40),
                    "field": fields.text(f"act_field_{i}", 100),
                    "value": fields.text(f"act_value_{i}", 2000),
                    "to": fields.text(f"act_to_{i}", 20) or "user",
                    "user": fields.text(f"act_user_{i}", 100),
                    "group": fields.text(f"act_group_{i}", 100),
                    "template": fields.text(f"act_template_{i}", 100),
                    "target": fields.text(f"act_target_{i}", 320) or "customer",
                    "language": fields.text(f"act_language_{i}", 10) or "en",
                    "with_cc": fields.ticked(f"act_with_cc_{i}"),
                    "as_agent": fields.ticked(f"act_as_agent_{i}"),
                    "auto_submitted": fields.text(f"act_auto_submitted_{i}", 20),
                    "text": fields.text(f"act_text_{i}", 10_000),
                    "url": fields.text(f"act_url_{i}", 2000),
                    "secret": fields.text(f"act_secret_{i}", 200),
                }
            )
        return cls(
            name=fields.text("name", 200),
            active=fields.ticked("active"),
            event=fields.text("event", 40),
            field=fields.text("field", 100),
            comment_by=fields.text("comment_by", 20),
            types=fields.many("types"),
            groups=fields.text("groups", 2000),
            channels=fields.many("channels"),
            conditions=conditions,
            actions=actions,
        )

    def more_rows(self, extra: int = BLANK_ROWS) -> None:
        """Add empty condition and action rows."""
        for _ in range(extra):
            if len(self.conditions) < MAX_ROWS:
                self.conditions.append({"field": "", "op": "is", "value": ""})
            if len(self.actions) < MAX_ROWS:
                self.actions.append(dict(BLANK_ACTION))

    def to_spec(self) -> tuple[dict[str, Any], list[int], list[int]]:
        """Return the rule as triggers takes it, the form row of each condition and of each action."""
        problems: dict[str, str] = {}
        conditions, condition_rows = [], []
        for i, row in enumerate(self.conditions):
            if not row["field"] and not row["value"]:
                continue
            value: Any = None
            if row["op"] not in NO_VALUE_OPS:
                try:
                    value = value_of(row["value"], row["op"])
                except ValueError:
                    problems[f"cond.{i}"] = "The list is not valid JSON."
            conditions.append({"field": row["field"], "op": row["op"], "value": value})
            condition_rows.append(i)
        actions: list[dict[str, Any]] = []
        action_rows: list[int] = []
        for i, row in enumerate(self.actions):
            kind = row["type"]
            if not kind:
                continue
            if kind == "set_fields":
                if not row["field"]:
                    problems[f"action.{i}"] = "Choose the field to set."
                    continue
                raw = row["value"]
                value = (
                    [p.strip() for p in raw.split(",") if p.strip()]
                    if row["field"] == "tags" and not raw.startswith("[")
                    else value_of(raw)
                )
                if actions and actions[-1]["type"] == "set_fields" and action_rows[-1] == _last_set_row(self, i):
                    if row["field"] in actions[-1]["fields"]:
                        problems[f"action.{i}"] = "This field is set twice."
                    actions[-1]["fields"][row["field"]] = value
                    continue
                actions.append({"type": "set_fields", "fields": {row["field"]: value}})
            elif kind == "assign":
                to = row["to"]
                actions.append(
                    {
                        "type": "assign",
                        "to": to,
                        "user": (row["user"] or None) if to == "user" else None,
                        "group": (row["group"] or None) if to != "user" else None,
                    }
                )
            elif kind == "send_template":
                actions.append(
                    {
                        "type": "send_template",
                        "template": row["template"],
                        "language": row["language"] or "en",
                        "target": row["target"],
                        "with_cc": bool(row["with_cc"]),
                        "as_agent": bool(row["as_agent"]),
                        "auto_submitted": row["auto_submitted"] or None,
                    }
                )
            elif kind == "add_note":
                actions.append({"type": "add_note", "text": row["text"]})
            elif kind == "webhook":
                actions.append({"type": "webhook", "url": row["url"], "secret": row["secret"]})
            else:
                problems[f"action.{i}"] = "Choose what the action does."
                continue
            action_rows.append(i)
        if problems:
            raise FormProblem(problems)
        spec = {
            "name": self.name,
            "active": self.active,
            "applies_to": {
                "types": list(self.types),
                "groups": [g.strip() for g in self.groups.split(",") if g.strip()],
                "channels": list(self.channels),
            },
            "event": self.event,
            "field": (self.field or None) if self.event == "ticket.updated" else None,
            "comment_by": (self.comment_by or None) if self.event == "comment.added" else None,
            "conditions": conditions,
            "actions": actions,
        }
        return spec, condition_rows, action_rows


def _last_set_row(form: RuleForm, row: int) -> int:
    """Return the row where the run of set-field rows that `row` belongs to starts (blank rows skipped)."""
    start = row
    for j in range(row - 1, -1, -1):
        kind = form.actions[j]["type"]
        if kind == "set_fields":
            start = j
        elif kind:
            break
    return start


def normalised(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return a rule as its editable body: without the id, with every part present."""
    body = {k: v for k, v in spec.items() if k != "id"}
    scope = body.get("applies_to") or {}
    body["applies_to"] = {k: list(scope.get(k) or []) for k in ("types", "groups", "channels")}
    body.setdefault("active", True)
    body.setdefault("field", None)
    body.setdefault("comment_by", None)
    body["conditions"] = [
        {"field": c.get("field"), "op": c.get("op"), "value": c.get("value")} for c in body.get("conditions") or []
    ]
    body["actions"] = list(body.get("actions") or [])
    return body


def rule_place(condition_rows: list[int], action_rows: list[int]) -> Any:
    """Return where a 422 location of a rule lands on the editor (a row, a field, or the top)."""

    def place(parts: list[str]) -> str | None:
        if len(parts) >= 2 and parts[0] in ("conditions", "actions") and parts[1].isdigit():
            rows = condition_rows if parts[0] == "conditions" else action_rows
            index = int(parts[1])
            if index < len(rows):
                return f"{'cond' if parts[0] == 'conditions' else 'action'}.{rows[index]}"
            return None
        if parts and parts[0] in ("name", "event", "field", "comment_by", "applies_to", "active"):
            return parts[0]
        return None

    return place


def rule_summary(rule: Mapping[str, Any]) -> dict[str, Any]:
    """Return what the rules list shows of a rule."""
    event = str(rule.get("event", ""))
    detail = ""
    if event == "ticket.updated" and rule.get("field"):
        detail = str(rule["field"])
    elif event == "comment.added" and rule.get("comment_by"):
        detail = str(rule["comment_by"])
    return {
        "id": str(rule.get("id", "")),
        "name": str(rule.get("name", "")),
        "active": bool(rule.get("active", True)),
        "event": event,
        "event_label": EVENTS.get(event, event),
        "detail": detail,
        "conditions": len(rule.get("conditions") or []),
        "actions": len(rule.get("actions") or []),
    }


# ------------------------------------------------------------------------------------------------ SLA and calendars


def policy_form(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return an SLA policy as its editor shows it (None: a new one)."""
    policy = policy or {}
    return {
        "id": str(policy.get("id", "")),
        "name": str(policy.get("name", "")),
        "active": bool(policy.get("active", True)),
        "priorities": [str(p) for p in policy.get("priorities") or []],
        "types": [str(p) for p in policy.get("types") or []],
        "calendar": str(policy.get("calendar") or ALWAYS_OPEN),
        "first_response": duration_text(policy.get("first_response_minutes")),
        "resolution": duration_text(policy.get("resolution_minutes")),
        "near_breach": duration_text(policy.get("near_breach_minutes", 60)) or "0",
        "pause_in": [str(p) for p in policy.get("pause_in", ["waiting_for_customer"])],
    }


def calendar_form(calendar: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a business-hours calendar as its editor shows it (None: a new one, office hours Mon–Fri)."""
    if calendar is None:
        office = "08:00-17:00"
        return {
            "id": "",
            "name": "",
            "timezone": "Europe/Stockholm",
            "hours": {day: office if day not in ("sat", "sun") else "" for day in WEEKDAYS},
            "holidays": "",
        }
    hours = calendar.get("hours") or {}
    return {
        "id": str(calendar.get("id", "")),
        "name": str(calendar.get("name", "")),
        "timezone": str(calendar.get("timezone", "")),
        "hours": {day: hours_text(hours.get(day) or []) for day in WEEKDAYS},
        "holidays": "\n".join(str(d) for d in calendar.get("holidays") or []),
    }


def field_place(names: Iterable[str]) -> Any:
    """Return a placer that puts errors on the named top-level fields (and `hours.<day>` on that day)."""
    known = set(names)

    def place(parts: list[str]) -> str | None:
        if not parts:
            return None
        if parts[0] == "hours" and len(parts) > 1 and parts[1] in WEEKDAYS:
            return f"hours.{parts[1]}"
        return parts[0] if parts[0] in known else None

    return place


# ------------------------------------------------------------------------------------------------ pages


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
    router = page_router()

    def t_of(request: Request) -> Translate:
        return translator(language_for(request))

    async def fields_of(request: Request) -> Fields:
        return Fields(await request.form())

    def notice_of(request: Request, key: str) -> str:
        return t_of(request)(NOTICES[key]) if key in NOTICES else ""

    def back_to(url: str, notice: str) -> RedirectResponse:
        return RedirectResponse(f"{url}?notice={notice}", status_code=303)

    # ------------------------------------------------------------------------- ticket types

    @router.get("/admin/types")
    async def types_list(request: Request, user: AdminUser, notice: str = "") -> Response:
        _, config = await load_config(portal, user)
        return render(
            request,
            "admin_types.html",
            types=config.get("types") or [],
            notice=notice_of(request, notice),
            max_types=MAX_TYPES,
        )

    def show_type(
        request: Request, form: TypeForm, version: int, *, status: int = 200, outcome: Outcome | None = None
    ) -> Response:
        return render(
            request,
            "admin_types_edit.html",
            status,
            form=form,
            version=version,
            categories=CATEGORIES,
            outcome=outcome or Outcome(),
        )

    @router.get("/admin/types/new")
    async def type_new(request: Request, user: AdminUser) -> Response:
        version, _ = await load_config(portal, user)
        return show_type(request, TypeForm.of(None), version)

    def find_type(config: Mapping[str, Any], key: str) -> tuple[int, dict[str, Any]] | None:
        for index, kind in enumerate(config.get("types") or []):
            if kind.get("key") == key:
                return index, dict(kind)
        return None

    @router.get("/admin/types/{key}")
    async def type_edit(request: Request, user: AdminUser, key: str) -> Response:
        version, config = await load_config(portal, user)
        found = find_type(config, key)
        if found is None:
            raise PageError(404, "No such ticket type", "There is no ticket type with that key.")
        return show_type(request, TypeForm.of(found[1]), version)

    @router.post("/admin/types/save")
    async def type_save(
        request: Request, user: AdminUser, version: Annotated[str, Form()] = "", more: Annotated[str, Form()] = ""
    ) -> Response:
        t = t_of(request)
        form_version = config_version_of(version)
        fields = await fields_of(request)
        current_version, config = await load_config(portal, user)
        original = fields.text("original_key", 40)
        found = find_type(config, original) if original else None
        if original and found is None:
            form = TypeForm.read(fields, None)
            form.original_key = ""
            alert = t("This type was deleted meanwhile. Saving creates it again.")
            return show_type(request, form, current_version, status=409, outcome=Outcome(alert=alert))
        form = TypeForm.read(fields, found[1] if found else None)
        if more:
            form.more_rows()
            return show_type(request, form, form_version)
        if original:
            form.key = original  # a type's key is how tickets name it: it does not change
        try:
            kind, rows = form.to_type()
        except FormProblem as problem:
            outcome = Outcome(
                alert=t("Not saved: see the marked fields."), errors={k: t(v) for k, v in problem.errors.items()}
            )
            return show_type(request, form, form_version, status=422, outcome=outcome)
        types = list(config.get("types") or [])
        if found is None:
            if not KEY_PATTERN.fullmatch(kind["key"]):
                outcome = Outcome(
                    alert=t("Not saved: see the marked fields."),
                    errors={"key": t("Give the type a key: lower-case letters, digits and _, starting with a letter.")},
                )
                return show_type(request, form, form_version, status=422, outcome=outcome)
            if find_type(config, kind["key"]) is not None:
                outcome = Outcome(
                    alert=t("Not saved: see the marked fields."),
                    errors={"key": t("There is a type with this key already.")},
                )
                return show_type(request, form, form_version, status=422, outcome=outcome)
            index = len(types)
            types.append(kind)
        else:
            index = found[0]
            types[index] = kind
        config["types"] = types
        try:
            await save_config(portal, user, form_version, config)
        except ServiceRefused as exc:
            conflict = t(
                "Someone else changed the configuration while you were editing. Your input is kept below: "
                "check the type and save again, or reload to start from the current version."
            )
            outcome = refusal_outcome(t, exc, type_place(index, rows), conflict=conflict)
            # Saving again after a conflict applies this type to the configuration as it is now.
            return show_type(
                request,
                form,
                current_version if exc.status == 409 else form_version,
                status=exc.status,
                outcome=outcome,
            )
        log.info("%s saved ticket type %r", user.email, kind["key"])
        return back_to("/admin/types", "saved")

    @router.get("/admin/types/{key}/delete")
    async def type_delete_confirm(request: Request, user: AdminUser, key: str) -> Response:
        version, config = await load_config(portal, user)
        found = find_type(config, key)
        if found is None:
            raise PageError(404, "No such ticket type", "There is no ticket type with that key.")
        return confirm_page(
            request,
            title=t_of(request)("Delete the ticket type {name}?", name=found[1].get("name", key)),
            message=t_of(request)(
                "Tickets of this type keep their type key but the type, its statuses and its workflow are gone."
            ),
            action=f"/admin/types/{quote(key, safe='')}/delete",
            back=f"/admin/types/{quote(key, safe='')}",
            version=str(version),
        )

    def confirm_page(
        request: Request,
        *,
        title: str,
        message: str,
        action: str,
        back: str,
        version: str = "",
        alert: str = "",
        status: int = 200,
    ) -> Response:
        return render(
            request,
            "admin_rule_confirm.html",
            status,
            title=title,
            message=message,
            action=action,
            back=back,
            version=version,
            alert=alert,
        )

    @router.post("/admin/types/{key}/delete")
    async def type_delete(
        request: Request, user: AdminUser, key: str, version: Annotated[str, Form()] = ""
    ) -> Response:
        t = t_of(request)
        form_version = config_version_of(version)
        current_version, config = await load_config(portal, user)
        found = find_type(config, key)
        if found is None:
            return back_to("/admin/types", "deleted")
        config["types"] = [k for k in config.get("types") or [] if k.get("key") != key]
        try:
            await save_config(portal, user, form_version, config)
        except ServiceRefused as exc:
            alert = (
                t("Someone else changed the configuration meanwhile. Look at the type again before deleting it.")
                if exc.status == 409
                else t("Not deleted: {reason}", reason=error_text(exc.message))
            )
            return confirm_page(
                request,
                title=t("Delete the ticket type {name}?", name=found[1].get("name", key)),
                message="",
                action=f"/admin/types/{quote(key, safe='')}/delete",
                back=f"/admin/types/{quote(key, safe='')}",
                version=str(current_version),
                alert=alert,
                status=exc.status,
            )
        log.info("%s deleted ticket type %r", user.email, key)
        return back_to("/admin/types", "deleted")

    # ------------------------------------------------------------------------- fields

    def show_fields(
        request: Request,
        form: FieldsForm,
        version: int,
        *,
        status: int = 200,
        outcome: Outcome | None = None,
        notice: str = "",
    ) -> Response:
        return render(
            request,
            "admin_fields.html",
            status,
            form=form,
            version=version,
            kinds=CUSTOM_KINDS,
            outcome=outcome or Outcome(),
            notice=notice,
        )

    @router.get("/admin/fields")
    async def fields_page(request: Request, user: AdminUser, notice: str = "") -> Response:
        version, config = await load_config(portal, user)
        return show_fields(request, FieldsForm.of(config), version, notice=notice_of(request, notice))

    @router.post("/admin/fields")
    async def fields_save(
        request: Request, user: AdminUser, version: Annotated[str, Form()] = "", more: Annotated[str, Form()] = ""
    ) -> Response:
        t = t_of(request)
        form_version = config_version_of(version)
        form = FieldsForm.read(await fields_of(request))
        if more:
            form.more_rows()
            return show_fields(request, form, form_version)
        current_version, config = await load_config(portal, user)
        rows = form.apply(config)
        try:
            await save_config(portal, user, form_version, config)
        except ServiceRefused as exc:
            conflict = t(
                "Someone else changed the configuration while you were editing. Your input is kept below: "
                "check it and save again, or reload to start from the current version."
            )
            place = list_place(
                {
                    "custom_fields": ("cf", rows["custom_fields"]),
                    "priorities": ("pr", rows["priorities"]),
                    "categories": ("ca", rows["categories"]),
                }
            )
            outcome = refusal_outcome(t, exc, place, conflict=conflict)
            return show_fields(
                request,
                form,
                current_version if exc.status == 409 else form_version,
                status=exc.status,
                outcome=outcome,
            )
        log.info("%s saved the ticket fields", user.email)
        return back_to("/admin/fields", "saved")

    # ------------------------------------------------------------------------- automations

    @router.get("/admin/automations")
    async def rules_list(request: Request, user: AdminUser, notice: str = "") -> Response:
        rules = await portal.triggers.call("GET", "/rules") or []
        return render(
            request,
            "admin_automations.html",
            rules=[rule_summary(r) for r in rules if isinstance(r, Mapping)],
            notice=notice_of(request, notice),
        )

    async def rule_choices(user: User) -> dict[str, Any]:
        # What the editor offers to pick from; each is a help, so a service that is down leaves it empty.
        types: list[dict[str, str]] = []
        try:
            _, config = await load_config(portal, user)
            types = [{"key": str(k.get("key")), "name": str(k.get("name"))} for k in config.get("types") or []]
        except (ServiceUnavailable, ServiceNotFound, ServiceRefused) as exc:
            log.warning("rule editor without the ticket types: %s", exc)
        templates: list[str] = []
        notify = portal.services.get("notify")
        if notify is not None:
            try:
                answer = await notify.call("GET", "/templates")
                templates = sorted({str(x.get("key")) for x in answer or [] if isinstance(x, Mapping)})
            except (ServiceUnavailable, ServiceNotFound, ServiceRefused) as exc:
                log.warning("rule editor without the template keys: %s", exc)
        staff = await portal.accounts.users.staff()
        return {
            "type_choices": types,
            "template_keys": templates,
            "staff": sorted(((u.id, u.display_name) for u in staff), key=lambda x: x[1].lower()),
            "group_keys": sorted({g for u in staff for g in u.groups}),
        }

    async def show_rule(
        request: Request,
        user: User,
        rule_id: str,
        form: RuleForm | None,
        *,
        json_text: str = "",
        status: int = 200,
        outcome: Outcome | None = None,
        dry_run: Mapping[str, Any] | None = None,
    ) -> Response:
        choices = await rule_choices(user)
        known_users = {uid for uid, _ in choices["staff"]}
        if form is not None:
            for row in form.actions:
                if row["type"] == "assign" and row["user"] and row["user"] not in known_users:
                    choices["staff"].append((row["user"], row["user"]))
                    known_users.add(row["user"])
        return render(
            request,
            "admin_rule.html",
            status,
            rule_id=rule_id,
            form=form,
            json_text=json_text,
            outcome=outcome or Outcome(),
            dry_run=dry_run,
            events=EVENTS,
            operators=OPERATORS,
            no_value_ops=NO_VALUE_OPS,
            action_types=ACTION_TYPES,
            assign_to=ASSIGN_TO,
            targets=TARGETS,
            auto_submitted=AUTO_SUBMITTED,
            comment_by=COMMENT_BY,
            channels=CHANNEL_LABELS,
            **choices,
        )

    @router.get("/admin/automations/new")
    async def rule_new(request: Request, user: AdminUser) -> Response:
        form = RuleForm()
        form.more_rows()
        return await show_rule(request, user, "", form)

    @router.get("/admin/automations/{rule_id}")
    async def rule_edit(request: Request, user: AdminUser, rule_id: str) -> Response:
        rule_id = checked_id(rule_id, "rule")
        rule = await portal.triggers.call("GET", f"/rules/{rule_id}")
        spec = normalised(rule)
        form = RuleForm.of(spec)
        if form is None:
            outcome = Outcome(alert=t_of(request)("This rule uses more than the form can show: edit it as JSON."))
            return await show_rule(request, user, rule_id, None, json_text=pretty(spec), outcome=outcome)
        form.more_rows(1)
        return await show_rule(request, user, rule_id, form)

    async def free_rule_id(name: str) -> str:
        base = new_id(name, "rule") or "rule"
        for attempt in range(1, 50):
            candidate = base if attempt == 1 else f"{base[:60]}-{attempt}"
            try:
                await portal.triggers.call("GET", f"/rules/{candidate}")
            except ServiceNotFound:
                return candidate
        raise PageError(409, "No free id", "Too many rules have this name. Choose another name.")

    @router.post("/admin/automations/save")
    async def rule_save(request: Request, user: AdminUser) -> Response:
        t = t_of(request)
        fields = await fields_of(request)
        rule_id = fields.text("rule_id", 64)
        if rule_id:
            checked_id(rule_id, "rule")
        mode = fields.text("mode", 10)
        do = fields.text("do", 20) or "save"
        form: RuleForm | None = None
        json_text = ""
        place: Any = nowhere
        if mode == "json":
            json_text = fields.text("rule_json", 100_000, strip=False)
            spec, problem = json_object_of(json_text)
            if spec is None:
                outcome = Outcome(
                    alert=t("Not saved: see the marked fields."),
                    errors={"json": t("This is not a JSON object: {reason}", reason=problem)},
                )
                return await show_rule(request, user, rule_id, None, json_text=json_text, status=422, outcome=outcome)
            spec.pop("id", None)
            if do == "form":
                form = RuleForm.of(normalised(spec))
                if form is None:
                    outcome = Outcome(alert=t("This rule uses more than the form can show: edit it as JSON."))
                    return await show_rule(request, user, rule_id, None, json_text=json_text, outcome=outcome)
                form.more_rows(1)
                return await show_rule(request, user, rule_id, form)
        else:
            form = RuleForm.read(fields)
            if do == "more":
                form.more_rows()
                return await show_rule(request, user, rule_id, form)
            try:
                spec, condition_rows, action_rows = form.to_spec()
            except FormProblem as problem:
                outcome = Outcome(
                    alert=t("Not saved: see the marked fields."), errors={k: t(v) for k, v in problem.errors.items()}
                )
                return await show_rule(request, user, rule_id, form, status=422, outcome=outcome)
            if do == "json":
                return await show_rule(request, user, rule_id, None, json_text=pretty(spec))
            place = rule_place(condition_rows, action_rows)
        if do == "dry_run":
            try:
                result = await portal.triggers.call("POST", "/rules/dry-run", json={"rule": spec, "days": 7})
            except ServiceRefused as exc:
                outcome = refusal_outcome(t, exc, place, prefix=("rule",), trying=True)
                return await show_rule(
                    request, user, rule_id, form, json_text=json_text, status=exc.status, outcome=outcome
                )
            return await show_rule(request, user, rule_id, form, json_text=json_text, dry_run=result)
        new_id = rule_id or await free_rule_id(str(spec.get("name") or ""))
        try:
            await portal.triggers.call("PUT", f"/rules/{new_id}", json=spec)
        except ServiceRefused as exc:
            outcome = refusal_outcome(t, exc, place)
            return await show_rule(
                request, user, rule_id, form, json_text=json_text, status=exc.status, outcome=outcome
            )
        log.info("%s saved rule %r", user.email, new_id)
        return back_to("/admin/automations", "saved")

    @router.post("/admin/automations/{rule_id}/active")
    async def rule_active(
        request: Request, user: AdminUser, rule_id: str, active: Annotated[str, Form()] = ""
    ) -> Response:
        rule_id = checked_id(rule_id, "rule")
        if active not in ("true", "false"):
            raise PageError(400, "Form incomplete", "This form is missing a part. Reload the page and try again.")
        rule = await portal.triggers.call("POST", f"/rules/{rule_id}/active", json={"active": active == "true"})
        state = bool(rule.get("active")) if isinstance(rule, Mapping) else active == "true"
        log.info("%s switched rule %r %s", user.email, rule_id, "on" if state else "off")
        return back_to("/admin/automations", "switched_on" if state else "switched_off")

    @router.get("/admin/automations/{rule_id}/delete")
    async def rule_delete_confirm(request: Request, user: AdminUser, rule_id: str) -> Response:
        rule_id = checked_id(rule_id, "rule")
        rule = await portal.triggers.call("GET", f"/rules/{rule_id}")
        t = t_of(request)
        return confirm_page(
            request,
            title=t("Delete the rule {name}?", name=rule.get("name", rule_id)),
            message=t("The rule stops firing at once. Its entries in the automation log stay."),
            action=f"/admin/automations/{rule_id}/delete",
            back=f"/admin/automations/{rule_id}",
        )

    @router.post("/admin/automations/{rule_id}/delete")
    async def rule_delete(request: Request, user: AdminUser, rule_id: str) -> Response:
        rule_id = checked_id(rule_id, "rule")
        try:
            await portal.triggers.call("DELETE", f"/rules/{rule_id}")
        except ServiceNotFound:
            pass  # deleted already: what the admin wanted
        log.info("%s deleted rule %r", user.email, rule_id)
        return back_to("/admin/automations", "deleted")

    # ------------------------------------------------------------------------- SLA policies

    async def calendars_of() -> list[dict[str, Any]]:
        answer = await portal.triggers.call("GET", "/calendars") or []
        return [dict(c) for c in answer if isinstance(c, Mapping)]

    async def policies_of() -> list[dict[str, Any]]:
        answer = await portal.triggers.call("GET", "/sla-policies") or []
        return [dict(p) for p in answer if isinstance(p, Mapping)]

    @router.get("/admin/sla")
    async def sla_list(request: Request, user: AdminUser, notice: str = "") -> Response:
        policies, calendars = await policies_of(), await calendars_of()
        return render(
            request,
            "admin_sla.html",
            policies=[policy_form(p) for p in policies],
            calendar_names={str(c.get("id")): str(c.get("name") or c.get("id")) for c in calendars},
            notice=notice_of(request, notice),
        )

    async def show_policy(
        request: Request,
        user: User,
        form: dict[str, Any],
        *,
        is_new: bool,
        status: int = 200,
        outcome: Outcome | None = None,
    ) -> Response:
        _, config = await load_config(portal, user)
        calendars = await calendars_of()
        return render(
            request,
            "admin_sla_edit.html",
            status,
            form=form,
            is_new=is_new,
            outcome=outcome or Outcome(),
            priority_choices=[(str(p["key"]), str(p["name"])) for p in config.get("priorities") or []],
            type_choices=[(str(k["key"]), str(k["name"])) for k in config.get("types") or []],
            calendars=[(str(c.get("id")), str(c.get("name") or c.get("id"))) for c in calendars],
            categories=CATEGORIES,
        )

    @router.get("/admin/sla/new")
    async def sla_new(request: Request, user: AdminUser) -> Response:
        form = policy_form(None)
        form["first_response"], form["resolution"] = "4h", "24h"
        return await show_policy(request, user, form, is_new=True)

    async def find_policy(policy_id: str) -> dict[str, Any]:
        found = next((p for p in await policies_of() if p.get("id") == policy_id), None)
        if found is None:
            raise PageError(404, "No such SLA policy", "There is no SLA policy with that id.")
        return found

    @router.get("/admin/sla/{policy_id}")
    async def sla_edit(request: Request, user: AdminUser, policy_id: str) -> Response:
        policy = await find_policy(checked_id(policy_id, "SLA policy"))
        return await show_policy(request, user, policy_form(policy), is_new=False)

    @router.post("/admin/sla/save")
    async def sla_save(request: Request, user: AdminUser) -> Response:
        t = t_of(request)
        fields = await fields_of(request)
        policy_id = fields.text("policy_id", 64)
        form = {
            "id": policy_id,
            "name": fields.text("name", 200),
            "active": fields.ticked("active"),
            "priorities": fields.many("priorities"),
            "types": fields.many("types"),
            "calendar": fields.text("calendar", 64) or ALWAYS_OPEN,
            "first_response": fields.text("first_response", 40),
            "resolution": fields.text("resolution", 40),
            "near_breach": fields.text("near_breach", 40),
            "pause_in": fields.many("pause_in"),
        }
        is_new = not policy_id
        errors: dict[str, str] = {}
        minutes: dict[str, int | None] = {}
        for name in ("first_response", "resolution", "near_breach"):
            try:
                minutes[name] = minutes_of(form[name])
            except ValueError as exc:
                errors[name] = error_text(str(exc))
        if is_new:
            policy_id = new_id(form["name"], "sla")
            if not policy_id:
                errors["name"] = t("Give the policy a name.")
            elif any(p.get("id") == policy_id for p in await policies_of()):
                errors["name"] = t("There is a policy with this name already.")
        else:
            checked_id(policy_id, "SLA policy")
        if errors:
            outcome = Outcome(alert=t("Not saved: see the marked fields."), errors=errors)
            return await show_policy(request, user, form, is_new=is_new, status=422, outcome=outcome)
        body = {
            "name": form["name"],
            "active": form["active"],
            "priorities": form["priorities"],
            "types": form["types"],
            "calendar": form["calendar"],
            "first_response_minutes": minutes["first_response"],
            "resolution_minutes": minutes["resolution"],
            "near_breach_minutes": minutes["near_breach"] or 0,
            "pause_in": form["pause_in"],
        }
        try:
            await portal.triggers.call("PUT", f"/sla-policies/{policy_id}", json=body)
        except ServiceRefused as exc:
            names = {
                "name": "name",
                "calendar": "calendar",
                "first_response_minutes": "first_response",
                "resolution_minutes": "resolution",
                "near_breach_minutes": "near_breach",
                "pause_in": "pause_in",
                "priorities": "priorities",
                "types": "types",
            }

            def place(parts: list[str]) -> str | None:
                return names.get(parts[0]) if parts else None

            outcome = refusal_outcome(t, exc, place)
            return await show_policy(request, user, form, is_new=is_new, status=exc.status, outcome=outcome)
        log.info("%s saved SLA policy %r", user.email, policy_id)
        return back_to("/admin/sla", "saved")

    @router.get("/admin/sla/{policy_id}/delete")
    async def sla_delete_confirm(request: Request, user: AdminUser, policy_id: str) -> Response:
        policy = await find_policy(checked_id(policy_id, "SLA policy"))
        t = t_of(request)
        return confirm_page(
            request,
            title=t("Delete the SLA policy {name}?", name=policy.get("name", policy_id)),
            message=t("Tickets it covered get no new due times from it."),
            action=f"/admin/sla/{policy_id}/delete",
            back=f"/admin/sla/{policy_id}",
        )

    @router.post("/admin/sla/{policy_id}/delete")
    async def sla_delete(request: Request, user: AdminUser, policy_id: str) -> Response:
        policy_id = checked_id(policy_id, "SLA policy")
        try:
            await portal.triggers.call("DELETE", f"/sla-policies/{policy_id}")
        except ServiceNotFound:
            pass  # deleted already: what the admin wanted
        log.info("%s deleted SLA policy %r", user.email, policy_id)
        return back_to("/admin/sla", "deleted")

    # ------------------------------------------------------------------------- business hours

    @router.get("/admin/business-hours")
    async def hours_list(request: Request, user: AdminUser, notice: str = "") -> Response:
        calendars = await calendars_of()
        return render(
            request,
            "admin_hours.html",
            calendars=[dict(calendar_form(c), built_in=c.get("id") == ALWAYS_OPEN) for c in calendars],
            weekdays=WEEKDAYS,
            notice=notice_of(request, notice),
            always_open=ALWAYS_OPEN,
        )

    def show_calendar(
        request: Request, form: dict[str, Any], *, is_new: bool, status: int = 200, outcome: Outcome | None = None
    ) -> Response:
        return render(
            request,
            "admin_hours_edit.html",
            status,
            form=form,
            is_new=is_new,
            weekdays=WEEKDAYS,
            zones=time_zones(),
            outcome=outcome or Outcome(),
        )

    async def find_calendar(calendar_id: str) -> dict[str, Any]:
        if calendar_id == ALWAYS_OPEN:
            raise PageError(409, "Built in", "The 24x7 calendar is built in and cannot be changed.")
        found = next((c for c in await calendars_of() if c.get("id") == calendar_id), None)
        if found is None:
            raise PageError(404, "No such calendar", "There is no business-hours calendar with that id.")
        return found

    @router.get("/admin/business-hours/new")
    async def hours_new(request: Request, user: AdminUser) -> Response:
        return show_calendar(request, calendar_form(None), is_new=True)

    @router.get("/admin/business-hours/{calendar_id}")
    async def hours_edit(request: Request, user: AdminUser, calendar_id: str) -> Response:
        calendar = await find_calendar(checked_id(calendar_id, "calendar"))
        return show_calendar(request, calendar_form(calendar), is_new=False)

    @router.post("/admin/business-hours/save")
    async def hours_save(request: Request, user: AdminUser) -> Response:
        t = t_of(request)
        fields = await fields_of(request)
        calendar_id = fields.text("calendar_id", 64)
        is_new = not calendar_id
        form = {
            "id": calendar_id,
            "name": fields.text("name", 200),
            "timezone": fields.text("timezone", 100),
            "hours": {day: fields.text(f"hours_{day}", 500) for day in WEEKDAYS},
            "holidays": fields.text("holidays", 20_000),
        }
        errors: dict[str, str] = {}
        hours: dict[str, list[list[str]]] = {}
        for day in WEEKDAYS:
            try:
                intervals = intervals_of(form["hours"][day])
            except ValueError as exc:
                errors[f"hours.{day}"] = error_text(str(exc))
                continue
            if intervals:
                hours[day] = intervals
        holidays = []
        for line in form["holidays"].split("\n"):
            if line.strip():
                try:
                    holidays.append(date.fromisoformat(line.strip()).isoformat())
                except ValueError:
                    errors["holidays"] = t("Cannot read {line}: write one date a line, e.g. 2025-12-25.", line=line)
        if is_new:
            calendar_id = new_id(form["name"], "calendar")
            if not calendar_id or calendar_id == ALWAYS_OPEN:
                errors["name"] = t("Give the calendar another name.")
            elif any(c.get("id") == calendar_id for c in await calendars_of()):
                errors["name"] = t("There is a calendar with this name already.")
        elif calendar_id == ALWAYS_OPEN:
            raise PageError(409, "Built in", "The 24x7 calendar is built in and cannot be changed.")
        else:
            checked_id(calendar_id, "calendar")
        if errors:
            outcome = Outcome(alert=t("Not saved: see the marked fields."), errors=errors)
            return show_calendar(request, form, is_new=is_new, status=422, outcome=outcome)
        body = {"name": form["name"], "timezone": form["timezone"], "hours": hours, "holidays": holidays}
        try:
            await portal.triggers.call("PUT", f"/calendars/{calendar_id}", json=body)
        except ServiceRefused as exc:
            outcome = refusal_outcome(t, exc, field_place(("name", "timezone", "hours", "holidays")))
            return show_calendar(request, form, is_new=is_new, status=exc.status, outcome=outcome)
        log.info("%s saved business-hours calendar %r", user.email, calendar_id)
        return back_to("/admin/business-hours", "saved")

    @router.get("/admin/business-hours/{calendar_id}/delete")
    async def hours_delete_confirm(request: Request, user: AdminUser, calendar_id: str) -> Response:
        calendar = await find_calendar(checked_id(calendar_id, "calendar"))
        t = t_of(request)
        return confirm_page(
            request,
            title=t("Delete the calendar {name}?", name=calendar.get("name", calendar_id)),
            message=t("A calendar that an SLA policy or a rule uses cannot be deleted."),
            action=f"/admin/business-hours/{calendar_id}/delete",
            back=f"/admin/business-hours/{calendar_id}",
        )

    @router.post("/admin/business-hours/{calendar_id}/delete")
    async def hours_delete(request: Request, user: AdminUser, calendar_id: str) -> Response:
        calendar_id = checked_id(calendar_id, "calendar")
        t = t_of(request)
        try:
            await portal.triggers.call("DELETE", f"/calendars/{calendar_id}")
        except ServiceNotFound:
            pass  # deleted already: what the admin wanted
        except ServiceRefused as exc:
            return confirm_page(
                request,
                title=t("Delete the calendar {name}?", name=calendar_id),
                message="",
                action=f"/admin/business-hours/{calendar_id}/delete",
                back=f"/admin/business-hours/{calendar_id}",
                alert=t("Not deleted: {reason}", reason=error_text(exc.message)),
                status=exc.status,
            )
        log.info("%s deleted business-hours calendar %r", user.email, calendar_id)
        return back_to("/admin/business-hours", "deleted")

    app.include_router(router)


def nowhere(parts: list[str]) -> str | None:
    """Place no error next to a field: the JSON editor shows every error at the top."""
    return None


def json_object_of(text: str) -> tuple[dict[str, Any] | None, str]:
    """Return the JSON object a text holds, or None and why not."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(value, dict):
        return None, "it must be an object: {...}"
    return value, ""


def pretty(spec: Mapping[str, Any]) -> str:
    """Return a rule as the JSON editor shows it."""
    return json.dumps(dict(spec), indent=2, ensure_ascii=False)


__all__ = [
    "FieldsForm",
    "FormProblem",
    "RuleForm",
    "TypeForm",
    "duration_text",
    "intervals_of",
    "minutes_of",
    "setup",
    "slug",
    "value_of",
    "value_text",
]
