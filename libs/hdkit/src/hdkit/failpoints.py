"""Crash on purpose at named points, so tests can prove that a crash between two steps loses nothing.

`HELPDESK_FAILPOINTS=after_handle:3,before_publish:1` makes the process exit at once (no clean-up, like
kill -9) the 3rd time a consumer has handled a message but not yet committed its offset, or the first
time a stored change is about to have its outbox published. Unset in normal operation.
"""

import logging
import os

log = logging.getLogger(__name__)

_remaining: dict[str, int] | None = None


def _load() -> dict[str, int]:
    spec = os.environ.get("HELPDESK_FAILPOINTS", "")
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        points[name] = int(count or 1)
    return points


def hit(name: str) -> None:
    """Count one pass through the point `name`; exit the process when its count runs out."""
    global _remaining
    if _remaining is None:
        _remaining = _load()
    if name not in _remaining:
        return
    _remaining[name] -= 1
    if _remaining[name] <= 0:
        log.critical("failpoint %s reached: exiting now, as a crash would", name)
        logging.shutdown()
        os._exit(70)
