"""A JSON client of another service's HTTP API (service token), for the calls that need no typed model.

`TicketsClient` keeps its typed methods for the pages that run hot (lists, a ticket); the admin pages,
statistics and the ticket page's tools call `call()` and read the JSON. Errors are named so a page can
show what went wrong: `ServiceUnavailable` (down, 5xx, our token refused), `ServiceNotFound` (404) and
`ServiceRefused` (another 4xx, with the service's reason and, for 422, where in the body).
"""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500


class ServiceUnavailable(Exception):
    """The service could not be reached or gave no usable answer."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service


class ServiceNotFound(Exception):
    """The service has no such thing (HTTP 404)."""


class ServiceRefused(Exception):
    """The service refused the call (a 4xx other than 404): the reason, and for 422 where in the body."""

    def __init__(self, status: int, message: str, locations: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.locations = locations or []
        """(dotted path in the body, message) for each error of a 422."""


class JsonService(Protocol):
    """Something with `call` (a `ServiceClient`; tests use `fakes.FakeService`)."""

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Make one call and return the decoded JSON answer (None for an empty one)."""


class ServiceClient:
    """One service's HTTP API over httpx, authenticated with the service token."""

    def __init__(
        self,
        name: str,
        base_url: str,
        service_token: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {service_token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Make one call and return the decoded JSON answer (None for an empty one)."""
        try:
            # httpx's timeout bounds each read; a slow trickle of bytes must not hold the page either.
            async with asyncio.timeout(self._timeout * 2):
                response = await self._http.request(
                    method, path, params=dict(params) if params else None, json=json, headers=dict(headers or {})
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("%s unreachable: %s %s: %r", self.name, method, path, exc)
            raise ServiceUnavailable(self.name, f"unreachable ({type(exc).__name__})") from exc
        return answer_of(self.name, method, path, response)

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()


def answer_of(service: str, method: str, path: str, response: httpx.Response) -> Any:
    """Return the JSON of a successful answer, or raise the named error for a failed one."""
    status = response.status_code
    if status in (401, 403) and _is_token_refusal(response):
        log.error("%s refused our service token (HTTP %s) on %s %s", service, status, method, path)
        raise ServiceUnavailable(service, f"refused the portal (HTTP {status})")
    if status >= 500 or status < 200 or 300 <= status < 400:
        log.warning("%s failed: %s %s: HTTP %s", service, method, path, status)
        raise ServiceUnavailable(service, f"error (HTTP {status})")
    if status == 404:
        raise ServiceNotFound(path)
    if status >= 400:
        message, locations = refusal_of(response)
        log.info("%s refused %s %s (HTTP %s): %s", service, method, path, status, message)
        raise ServiceRefused(status, message, locations)
    if status == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        log.warning("%s answered %s %s with a body that is not JSON", service, method, path)
        raise ServiceUnavailable(service, "unreadable answer") from exc


def _is_token_refusal(response: httpx.Response) -> bool:
    # A 401 is always about our token; a 403 may also be the service refusing the acting user.
    if response.status_code == 401:
        return True
    message, _ = refusal_of(response)
    return "token" in message.lower()


def refusal_of(response: httpx.Response, fallback: str = "refused") -> tuple[str, list[tuple[str, str]]]:
    """Return a refusal's reason and, for a validation error, (where, what) for each error.

    Without a reason in the body the reason is `fallback` and the HTTP status.
    """
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    locations: list[tuple[str, str]] = []
    if isinstance(detail, list):
        for error in detail:
            if isinstance(error, Mapping) and error.get("msg"):
                where = ".".join(str(x) for x in error.get("loc", []) if x != "body")
                locations.append((where, str(error["msg"])))
        detail = "; ".join(f"{where}: {what}" if where else what for where, what in locations)
    if not isinstance(detail, str) or not detail.strip():
        return f"{fallback} (HTTP {response.status_code})", locations
    detail = detail.strip()
    if len(detail) > MAX_REASON_LENGTH:
        detail = detail[: MAX_REASON_LENGTH - 1] + "…"
    return detail, locations


__all__ = [
    "JsonService",
    "ServiceClient",
    "ServiceNotFound",
    "ServiceRefused",
    "ServiceUnavailable",
    "answer_of",
    "refusal_of",
]
