"""Who the staff are (admins, agents, light agents), read from the portal, which owns the accounts, and cached.

Mail from a staff member's address counts as that person, not as a customer; an `@handle` in a comment
names a member of staff. When the portal cannot be reached the last list read is kept; before any list was
read every look-up finds nobody (and a warning is logged), so email intake never waits on the portal.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
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

    @property
    def local_part(self) -> str:
        """Return the part of the email address before the `@`, lower-cased (a handle that names them)."""
        return self.email.rsplit("@", 1)[0].lower()


@dataclass(frozen=True)
class _Known:
    """One list read from the portal, with the indexes the look-ups use."""

    members: tuple[StaffMember, ...]
    by_email: dict[str, StaffMember]
    by_id: dict[str, StaffMember]
    by_id_folded: dict[str, tuple[StaffMember, ...]]
    by_local_part: dict[str, tuple[StaffMember, ...]]

    @classmethod
    def of(cls, members: Iterable[StaffMember]) -> "_Known":
        ordered = tuple(sorted(members, key=lambda m: m.id))
        folded: dict[str, list[StaffMember]] = {}
        local: dict[str, list[StaffMember]] = {}
        for m in ordered:
            folded.setdefault(m.id.lower(), []).append(m)
            local.setdefault(m.local_part, []).append(m)
        return cls(
            members=ordered,
            by_email={m.email: m for m in ordered},
            by_id={m.id: m for m in ordered},
            by_id_folded={k: tuple(v) for k, v in folded.items()},
            by_local_part={k: tuple(v) for k, v in local.items()},
        )


NOBODY = _Known.of(())


def _member(raw: dict[str, Any]) -> StaffMember:
    return StaffMember(
        id=str(raw["id"]),
        email=str(raw["email"]).lower(),
        name=str(raw.get("name") or ""),
        role=str(raw["role"]),
        groups=tuple(str(g) for g in raw.get("groups") or ()),
    )


def _active(raw: dict[str, Any]) -> bool:
    # The portal lists only accounts that are not disabled; an entry that says otherwise is left out anyway.
    return not raw.get("disabled") and raw.get("active", True) is not False


class StaffDirectory:
    """Answers "who is this member of staff?" from a periodically refreshed copy of the portal's list."""

    def __init__(
        self,
        portal_url: str,
        token: str,
        refresh_seconds: float = 60.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = portal_url.rstrip("/") + "/internal/staff"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._refresh = refresh_seconds
        self._known: _Known | None = None
        # never read: the first look-up reads, however recently the machine started (monotonic starts near 0)
        self._loaded_at = float("-inf")
        self._tried_at = float("-inf")
        self._lock = asyncio.Lock()
        self._transport = transport  # tests hand in an httpx.MockTransport

    def set(self, members: list[dict[str, Any]]) -> None:
        """Replace the known staff (used by `refresh` and by tests); disabled accounts are left out."""
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise TypeError("the staff list is not a list of objects")
        self._known = _Known.of(_member(m) for m in members if _active(m))
        self._loaded_at = time.monotonic()

    async def refresh(self) -> None:
        """Read the staff list from the portal."""
        async with httpx.AsyncClient(timeout=5, transport=self._transport) as client:
            response = await client.get(self._url, headers=self._headers)
            response.raise_for_status()
            self.set(response.json())

    async def _current(self) -> _Known:
        """Return the known staff, read again from the portal when the copy is older than the refresh period.

        After a failed read the next attempt waits a little (at most 5 s), so a portal that is down is not
        asked on every look-up.
        """
        now = time.monotonic()
        if now - self._loaded_at > self._refresh and now - self._tried_at > min(self._refresh, 5.0):
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._refresh:
                    self._tried_at = time.monotonic()
                    try:
                        await self.refresh()
                    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                        known = "keeping the last list" if self._known is not None else "nobody counts as staff"
                        log.warning("could not read the staff list from the portal (%s): %r", known, exc)
        return self._known or NOBODY

    async def find(self, address: str) -> StaffMember | None:
        """Return the member of staff with this address, or None (also when the portal never answered)."""
        return (await self._current()).by_email.get(address.lower())

    async def by_id(self, user_id: str) -> StaffMember | None:
        """Return the member of staff with this user id, or None."""
        return (await self._current()).by_id.get(user_id)

    async def by_handle(self, handle: str) -> StaffMember | None:
        """Return the member of staff an `@handle` names: their user id, else their email's local part.

        Case does not matter. A handle that fits several people equally (two ids differing only in case,
        or the same local part at two domains) names nobody, so a mention never reaches the wrong person.
        """
        known = await self._current()
        if handle in known.by_id:
            return known.by_id[handle]
        folded = handle.lower()
        for candidates in (known.by_id_folded.get(folded, ()), known.by_local_part.get(folded, ())):
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                return None
        return None

    async def members(self, group: str) -> list[StaffMember]:
        """Return the (active) members of staff in a group, sorted by user id."""
        return [m for m in (await self._current()).members if group in m.groups]
