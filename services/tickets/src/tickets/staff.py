"""Who the staff are (admins, agents, light agents), read from the portal, which owns the accounts, and cached.

Mail from a staff member's address counts as that person, not as a customer. When the portal cannot be
reached the last list read is kept; before any list was read, mail counts as a customer's (and a warning
is logged), so email intake never waits on the portal.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaffMember:
    """One member of staff as the portal lists them."""

    id: str
    email: str
    name: str
    role: str
    groups: tuple[str, ...] = ()


class StaffDirectory:
    """Answers "is this address a member of staff?" from a periodically refreshed copy of the portal's list."""

    def __init__(self, portal_url: str, token: str, refresh_seconds: float = 60.0) -> None:
        self._url = portal_url.rstrip("/") + "/internal/staff"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._refresh = refresh_seconds
        self._by_email: dict[str, StaffMember] | None = None
        self._loaded_at = 0.0
        self._tried_at = 0.0
        self._lock = asyncio.Lock()

    def set(self, members: list[dict[str, Any]]) -> None:
        """Replace the known staff (used by `refresh` and by tests)."""
        self._by_email = {
            str(m["email"]).lower(): StaffMember(
                id=str(m["id"]),
                email=str(m["email"]).lower(),
                name=str(m.get("name") or ""),
                role=str(m["role"]),
                groups=tuple(m.get("groups") or ()),
            )
            for m in members
        }
        self._loaded_at = time.monotonic()

    async def refresh(self) -> None:
        """Read the staff list from the portal."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self._url, headers=self._headers)
            response.raise_for_status()
            self.set(response.json())

    async def find(self, address: str) -> StaffMember | None:
        """Return the member of staff with this address, or None (also when the portal never answered)."""
        now = time.monotonic()
        if now - self._loaded_at > self._refresh and now - self._tried_at > min(self._refresh, 5.0):
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._refresh:
                    self._tried_at = time.monotonic()
                    try:
                        await self.refresh()
                    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                        known = "keeping the last list" if self._by_email is not None else "mail counts as customers'"
                        log.warning("could not read the staff list from the portal (%s): %r", known, exc)
        return (self._by_email or {}).get(address.lower())
