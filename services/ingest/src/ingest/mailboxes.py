"""The list of helpdesk addresses, read from the tickets service (which owns it) and cached."""

import asyncio
import logging
import time

import httpx

log = logging.getLogger(__name__)


class MailboxUnknown(Exception):
    """Nothing is known yet about which addresses are ours (the tickets service has not answered)."""


class MailboxDirectory:
    """Answers "is this address one of our mailboxes?" from a periodically refreshed copy."""

    def __init__(self, tickets_url: str, token: str, refresh_seconds: float = 30.0) -> None:
        self._url = tickets_url.rstrip("/") + "/api/mailboxes"
        self._headers = {"Authorization": f"Bearer {token}", "X-Actor-Role": "system", "X-Actor-Id": "ingest"}
        self._refresh = refresh_seconds
        self._addresses: set[str] | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def set(self, addresses: set[str]) -> None:
        """Replace the known addresses (used by tests and by `refresh`)."""
        self._addresses = {a.lower() for a in addresses}
        self._loaded_at = time.monotonic()

    async def refresh(self) -> None:
        """Read the mailbox list from the tickets service."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self._url, headers=self._headers)
            response.raise_for_status()
            self.set({m["address"] for m in response.json()})

    async def is_ours(self, address: str) -> bool:
        """Tell whether mail to `address` belongs to the helpdesk; raise MailboxUnknown if we cannot tell."""
        if self._addresses is None or time.monotonic() - self._loaded_at > self._refresh:
            async with self._lock:
                if self._addresses is None or time.monotonic() - self._loaded_at > self._refresh:
                    try:
                        await self.refresh()
                    except (httpx.HTTPError, ValueError, KeyError) as exc:
                        log.warning("could not read the mailbox list: %r", exc)
                        if self._addresses is None:
                            raise MailboxUnknown(str(exc)) from exc
        assert self._addresses is not None  # noqa: S101 - set above or raised
        return address.lower() in self._addresses
