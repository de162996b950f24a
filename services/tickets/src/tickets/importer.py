"""Import tickets from CSV or JSON: each row becomes a CreateTicket command; refused rows are reported.

Columns / keys: `id` (optional; makes the import safe to run again), `requester_email` (or `requester`),
`requester_name`, and any ticket field (`title`, `description`, `type`, `status`, `priority`, `category`,
`group`, `handler`, `organisation`, `tags` as `a;b`, `cc` as `x@y;z@w`, `custom.<key>`). Each row is
checked by the same rules as any other command; a bad row is reported with the reason and the rest go on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.commands import CreateTicket
from contracts.envelope import derived_id
from contracts.models import Address
from pydantic import ValidationError

from tickets.workflow import Refused, Viewer

LIST_FIELDS = {"tags", "cc"}


@dataclass
class Report:
    """What an import did."""

    created: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)

    def lines(self) -> list[str]:
        """Return the report as text lines."""
        out = [f"created {len(self.created)} tickets, rejected {len(self.rejected)} rows"]
        out += [f"row {row}: {reason}" for row, reason in self.rejected]
        return out


def read_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (row number, row) from a CSV file (header row first) or a JSON array of objects."""
    kind = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    text = path.read_text(encoding="utf-8-sig")
    if kind == "json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("a JSON import is an array of objects")
        for n, row in enumerate(data, start=1):
            yield n, row if isinstance(row, dict) else {"__invalid__": row}
        return
    for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        yield n, {k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}


def command_for(row: dict[str, Any], *, source: str, row_number: int, actor: Viewer) -> CreateTicket:
    """Return the CreateTicket command of one row (ValueError/ValidationError when it cannot be one)."""
    if "__invalid__" in row:
        raise ValueError("the row is not an object")
    row = dict(row)
    key = str(row.pop("id", "") or f"{source}#{row_number}")
    email = row.pop("requester_email", None) or row.pop("requester", None)
    name = row.pop("requester_name", "") or ""
    if not isinstance(email, str) or "@" not in email:
        raise ValueError("requester_email is missing or not an address")
    fields: dict[str, Any] = {}
    for name_, value in row.items():
        if name_ in LIST_FIELDS and isinstance(value, str):
            value = [v.strip() for v in value.split(";") if v.strip()]
        fields[name_] = value
    return CreateTicket(
        command_id=derived_id("import", key),
        actor=actor.actor(),
        channel="import",
        requester=Address(email=email.lower(), name=str(name)),
        fields=fields,
    )


async def run_import(
    rows: Iterator[tuple[int, dict[str, Any]]],
    execute: Callable[[CreateTicket], Awaitable[dict[str, Any]]],
    *,
    source: str,
    actor: Viewer,
) -> Report:
    """Create a ticket for every good row; report every rejected one with its reason."""
    report = Report()
    for n, row in rows:
        try:
            command = command_for(row, source=source, row_number=n, actor=actor)
            ticket = await execute(command)
        except Refused as exc:
            report.rejected.append((n, exc.message))
        except ValidationError as exc:
            report.rejected.append((n, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())))
        except ValueError as exc:
            report.rejected.append((n, str(exc)))
        else:
            report.created.append(int(ticket["number"]))
    return report
