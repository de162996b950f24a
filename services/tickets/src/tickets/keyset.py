"""Keyset pagination of queue pages: rows in (sort value, ticket number) order and the cursor after the last."""

import base64
import json
from datetime import UTC, datetime
from typing import Any

from tickets.domain import EPOCH


def sortable(value: Any) -> Any:
    """Return a sort value as the store orders it: none as the epoch, datetimes in UTC."""
    if value is None:
        return EPOCH
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def encode_cursor(value: Any, number: int) -> str:
    """Return an opaque cursor for keyset pagination (sort value and ticket number of the last row)."""
    if isinstance(value, datetime):
        raw: Any = {"d": sortable(value).isoformat()}
    elif value is None:
        raw = {"d": EPOCH.isoformat()}
    else:
        raw = {"v": value}
    return base64.urlsafe_b64encode(json.dumps({**raw, "n": number}).encode()).decode()


def decode_cursor(cursor: str) -> tuple[Any, int]:
    """Read a cursor made by `encode_cursor` (ValueError when it is not one)."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        value = datetime.fromisoformat(str(data["d"])) if "d" in data else data["v"]
        if not isinstance(value, datetime | int | str) or isinstance(value, bool):
            raise ValueError("invalid cursor value")
        return value, int(data["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
