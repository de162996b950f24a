"""The automation firings told as sentences and merged by time into a ticket's activity log; no framework code."""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from portal.tickets_client import Activity
from portal.triggers_client import FiringRecord, RuleFiring

EVENT_LABELS: dict[str, str] = {"time": "a timer"}


@dataclass(frozen=True)
class NotDone:
    """An action of a firing that a guard stopped: what it was and why it was not done."""

    action: str
    reason: str


@dataclass(frozen=True)
class AutomationEntry:
    """One line of the activity log about a rule: it fired (with what it did) or it was cut off."""

    at: datetime | None
    sentence: str
    not_done: tuple[NotDone, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogEntry:
    """A row of the merged activity log: a ticket's own activity or an automation's."""

    at: datetime | None
    activity: Activity | None = None
    automation: AutomationEntry | None = field(default=None)


def describe_value(value: Any) -> str:
    """Return a field value of a `set_fields` action as people read it."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "from" in value:
        return f"(from {value['from']})"
    if isinstance(value, list | tuple):
        return ",".join(describe_value(v) for v in value)
    return json.dumps(value, default=str)


def describe_action(action: Mapping[str, Any]) -> str:
    """Return what an action does, as a short phrase: `send agent_reply to customer`."""
    kind = str(action.get("type") or "")
    if kind == "send_template":
        phrase = f"send {action.get('template') or 'a template'} to {action.get('target') or 'nobody'}"
        return phrase + (" with CC" if action.get("with_cc") else "")
    if kind == "set_fields":
        fields = action.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            return "set fields"
        return "set " + ", ".join(f"{name}={describe_value(value)}" for name, value in fields.items())
    if kind == "assign":
        to, user, group = action.get("to"), action.get("user"), action.get("group")
        if to == "user":
            return f"assign to user {user}"
        if to == "round_robin":
            return f"assign round-robin in group {group}"
        return f"assign to group {group}"
    if kind == "add_note":
        return "add an internal note"
    if kind == "webhook":
        # Only the host: a webhook's path or query may carry a key the agent has no need to see.
        host = urlsplit(str(action.get("url") or "")).hostname
        return f"call a webhook at {host}" if host else "call a webhook"
    if kind == "publish_event":
        return f"publish event {action.get('name')}"
    return kind.replace("_", " ") or "an unknown action"


def describe_firing(firing: RuleFiring, event: str) -> str:
    """Return a firing as one sentence: the rule, the event, the conditions that held and what it did."""
    details = []
    if firing.conditions_met:
        details.append("conditions: " + " and ".join(firing.conditions_met))
    done = [describe_action(a) for a in firing.actions]
    details.append("did: " + (", ".join(done) if done else "nothing"))
    on = EVENT_LABELS.get(event, event or "an event")
    sentence = f"Rule '{firing.name}' fired on {on} — " + "; ".join(details)
    if firing.depth > 1:  # depth 1: a person's (or the clock's) change fired it
        sentence += f" (set off by another rule's change, {firing.depth} rules deep)"
    return sentence


def automation_entries(records: Iterable[FiringRecord]) -> list[AutomationEntry]:
    """Return the log lines of firing records, oldest first; records where nothing fired are left out."""
    shown = [r for r in records if not r.is_empty]
    names = {f.rule_id: f.name for r in shown for f in r.firings}
    entries: list[AutomationEntry] = []
    for record in sorted(shown, key=lambda r: _utc(r.handled_at) or datetime.min.replace(tzinfo=UTC)):
        at = _utc(record.handled_at)
        for firing in record.firings:
            not_done = tuple(NotDone(describe_action(s.action), s.reason) for s in firing.suppressed)
            entries.append(AutomationEntry(at, describe_firing(firing, record.event), not_done, tuple(firing.notes)))
        for cut in record.cut_offs:
            name = names.get(cut.rule_id, cut.rule_id)
            entries.append(AutomationEntry(at, f"Rule '{name}' cut off: {cut.reason or 'loop protection'}"))
    return entries


def merged_log(activity: Iterable[Activity], automations: Iterable[AutomationEntry]) -> list[LogEntry]:
    """Return the ticket's activity and the automation lines in one list by time, oldest first.

    A rule answers an event, so at the same moment the ticket's own row comes first; a row without a time
    stays after the row before it.
    """
    keyed: list[tuple[datetime, int, int, LogEntry]] = []
    last = datetime.min.replace(tzinfo=UTC)
    for index, row in enumerate(activity):
        at = _utc(row.at)
        last = at or last
        keyed.append((last, 0, index, LogEntry(at, activity=row)))
    for index, entry in enumerate(automations):
        keyed.append((entry.at or last, 1, index, LogEntry(entry.at, automation=entry)))
    return [entry for *_, entry in sorted(keyed, key=lambda k: k[:3])]


def _utc(moment: datetime | None) -> datetime | None:
    # Triggers' store may hand back naive times; they are UTC.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
