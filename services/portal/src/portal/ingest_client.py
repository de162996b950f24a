"""Calls to the ingest service's admin API: attachment bytes and the quarantine of unreadable mail."""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

log = logging.getLogger(__name__)

# The headers of a download that the portal hands on to the browser as ingest chose them.
PASSED_HEADERS = ("content-type", "content-disposition", "x-content-type-options", "content-security-policy")


class IngestUnavailable(Exception):
    """The ingest service could not be reached or gave no usable answer."""


class IngestNotFound(Exception):
    """Ingest has no attachment or quarantine entry with that id."""


class UploadRefused(Exception):
    """Ingest would not keep an uploaded file (empty, too large); `reason` says so in its words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


UPLOAD_TIMEOUT = httpx.Timeout(120.0, connect=5.0)  # a large file on a slow link is no failure


class UploadedFile(BaseModel):
    """A file ingest kept: what the tickets API takes in a comment's or new ticket's `attachments`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    attachment_id: str = Field(description="Id to fetch the bytes with (`upload:` and 32 hex digits).")
    filename: str = Field(description="File name, made safe by ingest.")
    content_type: str = Field(description="MIME type as declared.")
    size: int = Field(ge=0, description="Size in bytes.")

    def as_attachment(self) -> dict[str, Any]:
        """Return the file as the tickets API takes it."""
        return self.model_dump()


@dataclass(frozen=True)
class Download:
    """A file from ingest: its bytes and the download headers ingest chose for it (lower-case names)."""

    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


class QuarantineEntry(BaseModel):
    """A message ingest could not read, as its quarantine list shows it (without the bytes)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: str = Field(alias="_id", description="Id of the entry.")
    received_at: datetime | None = Field(default=None, description="When the message arrived.")
    size: int = Field(default=0, description="Size of the raw message in bytes.")
    mailboxes: list[str] = Field(default_factory=list, description="Mailboxes it was sent to.")
    reason: str = Field(default="", description="Why it could not be read (the newest reason).")
    attempts: int = Field(default=1, description="How many times it was read.")


_ENTRIES = TypeAdapter(list[QuarantineEntry])


@dataclass(frozen=True)
class Reprocessed:
    """What reading a quarantined message again did: `accepted`, `duplicate` or `unreadable` (with the reason)."""

    outcome: str
    reason: str = ""


class Ingest(Protocol):
    """What the pages need from ingest (`IngestClient`; tests use a fake)."""

    async def attachment(self, attachment_id: str) -> Download:
        """Return an attachment's bytes and download headers; `IngestNotFound` when unknown."""

    async def quarantine(self) -> list[QuarantineEntry]:
        """Return the quarantined messages still waiting, newest first."""

    async def quarantine_raw(self, quarantine_id: str) -> Download:
        """Return a quarantined message as it arrived; `IngestNotFound` when unknown."""

    async def reprocess(self, quarantine_id: str) -> Reprocessed:
        """Read a quarantined message again; `IngestNotFound` when unknown."""

    async def upload(self, filename: str, content_type: str, data: bytes, uploaded_by: str) -> UploadedFile:
        """Keep a file in ingest; `UploadRefused` (with ingest's reason) when it is empty or too large."""

    async def aclose(self) -> None:
        """Release connections."""


class IngestClient:
    """The ingest service over HTTP, authenticated with the service token."""

    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {service_token}"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    async def _call(self, method: str, path: str) -> httpx.Response:
        try:
            response = await self._http.request(method, path)
        except httpx.HTTPError as exc:
            log.warning("ingest unreachable: %s %s: %s", method, path, exc)
            raise IngestUnavailable(f"ingest unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404:
            raise IngestNotFound(path)
        if response.status_code in (401, 403):
            log.error("ingest refused our service token (HTTP %s) on %s %s", response.status_code, method, path)
            raise IngestUnavailable(f"ingest refused the portal (HTTP {response.status_code})")
        if response.status_code >= 500:
            log.warning("ingest failed: %s %s: HTTP %s", method, path, response.status_code)
            raise IngestUnavailable(f"ingest error (HTTP {response.status_code})")
        return response

    async def _download(self, path: str) -> Download:
        response = await self._call("GET", path)
        if response.status_code != 200:
            log.warning("ingest answered GET %s with HTTP %s", path, response.status_code)
            raise IngestUnavailable(f"unexpected answer from ingest (HTTP {response.status_code})")
        headers = {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}
        return Download(response.content, headers)

    async def attachment(self, attachment_id: str) -> Download:
        """Return an attachment's bytes and download headers; `IngestNotFound` when unknown."""
        return await self._download(f"/api/attachments/{_segment(attachment_id)}")

    async def quarantine(self) -> list[QuarantineEntry]:
        """Return the quarantined messages still waiting, newest first."""
        response = await self._call("GET", "/api/quarantine")
        try:
            return _ENTRIES.validate_json(response.content)
        except ValidationError as exc:
            log.warning("ingest answered the quarantine list with an unreadable body: %s", exc)
            raise IngestUnavailable("unreadable answer from ingest") from exc

    async def quarantine_raw(self, quarantine_id: str) -> Download:
        """Return a quarantined message as it arrived; `IngestNotFound` when unknown."""
        return await self._download(f"/api/quarantine/{_segment(quarantine_id)}/raw")

    async def reprocess(self, quarantine_id: str) -> Reprocessed:
        """Read a quarantined message again; `IngestNotFound` when unknown."""
        response = await self._call("POST", f"/api/quarantine/{_segment(quarantine_id)}/reprocess")
        try:
            body = response.json()
        except ValueError as exc:
            raise IngestUnavailable("unreadable answer from ingest") from exc
        if response.status_code == 422:
            return Reprocessed("unreadable", str(body.get("reason") or ""))
        if response.status_code != 200 or body.get("outcome") not in ("accepted", "duplicate"):
            log.warning("ingest answered a reprocess with HTTP %s: %s", response.status_code, body)
            raise IngestUnavailable(f"unexpected answer from ingest (HTTP {response.status_code})")
        return Reprocessed(str(body["outcome"]))

    async def upload(self, filename: str, content_type: str, data: bytes, uploaded_by: str) -> UploadedFile:
        """Keep a file in ingest; `UploadRefused` (with ingest's reason) when it is empty or too large."""
        files = {"file": (filename or "attachment", data, content_type or "application/octet-stream")}
        form = {"filename": filename, "content_type": content_type, "uploaded_by": uploaded_by}
        try:
            response = await self._http.post("/api/attachments", files=files, data=form, timeout=UPLOAD_TIMEOUT)
        except httpx.HTTPError as exc:
            log.warning("ingest unreachable for an upload of %d bytes: %s", len(data), exc)
            raise IngestUnavailable(f"ingest unreachable: {type(exc).__name__}") from exc
        if response.status_code in (413, 422):
            raise UploadRefused(_detail(response) or f"the file was refused (HTTP {response.status_code})")
        if response.status_code != 201:
            log.warning("ingest answered an upload with HTTP %s", response.status_code)
            raise IngestUnavailable(f"unexpected answer from ingest (HTTP {response.status_code})")
        try:
            return UploadedFile.model_validate_json(response.content)
        except ValidationError as exc:
            log.warning("ingest answered an upload with an unreadable body: %s", exc)
            raise IngestUnavailable("unreadable answer from ingest") from exc

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    return detail[:500] if isinstance(detail, str) else ""


def _segment(value: str) -> str:
    # An id is one path segment: `/`, `?`, `#` or `..` must not reach another route of ingest.
    if value.strip(".") == "":
        raise IngestNotFound(value)
    return quote(value, safe=":@")
