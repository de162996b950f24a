"""Calls to the triggers service's HTTP API: the firing log of a ticket (what the automations did)."""

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from portal.service_client import ServiceClient

log = logging.getLogger(__name__)


class TriggersUnavailable(Exception):
    """The triggers service could not be reached in time or gave no usable answer."""


class _Read(BaseModel):
    # Triggers may add fields to its records before the portal shows them; they must not break the page.
    model_config = ConfigDict(extra="ignore", frozen=True)


class SuppressedAction(_Read):
    """An action a guard stopped, and why."""

    action: dict[str, Any] = Field(default_factory=dict, description="The action as the rule has it (`type` ...).")
    reason: str = Field(default="", description="Why it was not done.")


class RuleFiring(_Read):
    """One rule that fired on an event: the conditions that held, what it did and what it did not do."""

    rule_id: str = Field(description="Id of the rule (or of a built-in notice).")
    rule_name: str = Field(default="", description="Name of the rule.")
    depth: int = Field(default=0, description="How many rules deep in a chain the event was (0: caused by a person).")
    conditions_met: list[str] = Field(default_factory=list, description="The conditions that held, as sentences.")
    actions: list[dict[str, Any]] = Field(default_factory=list, description="The actions done (each with `type`).")
    suppressed: list[SuppressedAction] = Field(default_factory=list, description="The actions a guard stopped.")
    notification_ids: list[str] = Field(default_factory=list, description="Ids of the notifications sent.")
    commands: list[Any] = Field(default_factory=list, description="The commands sent to the tickets service.")
    notes: list[str] = Field(default_factory=list, description="What the handler noted while acting.")

    @property
    def name(self) -> str:
        """The rule's name, falling back to its id."""
        return self.rule_name or self.rule_id


class CutOff(_Read):
    """A rule that loop protection kept from running on an event, and why."""

    rule_id: str = Field(description="Id of the rule.")
    reason: str = Field(default="", description="Why it did not run.")


class FiringRecord(_Read):
    """The firing log's record of one handled event of a ticket."""

    event_id: str = Field(description="Id of the handled event.")
    event: str = Field(default="", description="Rule event, e.g. `comment.added`, `time`, `sla.breached`.")
    event_type: str = Field(default="", description="Type of the event's envelope.")
    ticket_id: str = Field(default="", description="Id of the ticket.")
    ticket_number: int | None = Field(default=None, description="Number of the ticket.")
    handled_at: datetime | None = Field(default=None, description="When triggers handled the event.")
    firings: list[RuleFiring] = Field(default_factory=list, description="The rules that fired.")
    cut_offs: list[CutOff] = Field(default_factory=list, description="The rules loop protection cut off.")

    @property
    def is_empty(self) -> bool:
        """Tell whether no rule fired and none was cut off (nothing worth showing)."""
        return not self.firings and not self.cut_offs


_RECORDS = TypeAdapter(list[FiringRecord])


class Triggers(Protocol):
    """What the pages need from the triggers service (`TriggersClient`; tests use a fake)."""

    async def firings(self, ticket_id: str, *, limit: int = 100) -> list[FiringRecord]:
        """Return the firing log of one ticket, newest first; `TriggersUnavailable` when it cannot be had."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Make any call to the triggers API and return its JSON (see `service_client`)."""

    async def aclose(self) -> None:
        """Release connections."""


class TriggersClient(ServiceClient):
    """The triggers service over HTTP, authenticated with the service token (`call` for the admin API)."""

    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        timeout: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__("triggers", base_url, service_token, timeout=timeout, transport=transport)

    async def firings(self, ticket_id: str, *, limit: int = 100) -> list[FiringRecord]:
        """Return the firing log of one ticket, newest first; `TriggersUnavailable` when it cannot be had."""
        params: dict[str, str | int] = {"ticket_id": ticket_id, "limit": limit}
        try:
            # httpx's timeout bounds each read; a slow trickle of bytes must not hold the page either.
            async with asyncio.timeout(self._timeout):
                response = await self._http.get("/firings", params=params)
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("triggers unreachable: GET /firings of ticket %s: %r", ticket_id, exc)
            raise TriggersUnavailable(f"triggers unreachable: {type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            log.error("triggers refused our service token (HTTP %s) on GET /firings", response.status_code)
            raise TriggersUnavailable(f"triggers refused the portal (HTTP {response.status_code})")
        if response.status_code != 200:
            log.warning("triggers answered GET /firings of ticket %s with HTTP %s", ticket_id, response.status_code)
            raise TriggersUnavailable(f"unexpected answer from triggers (HTTP {response.status_code})")
        try:
            return _RECORDS.validate_json(response.content)
        except ValidationError as exc:
            log.warning("triggers answered GET /firings with an unreadable body: %s", exc)
            raise TriggersUnavailable("unreadable answer from triggers") from exc
