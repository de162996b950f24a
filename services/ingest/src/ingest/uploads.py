"""Files uploaded through the portal (an agent's reply, a customer's request): kept like mail attachments."""

import logging
import re
import secrets
from typing import Any

from contracts.envelope import utcnow
from contracts.models import Attachment
from prometheus_client import CollectorRegistry, Counter

from ingest.domain import safe_filename
from ingest.store import Store

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


class UploadRefused(ValueError):
    """An upload is not kept: empty, too large or malformed; `status` is the HTTP answer, `reason` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def new_upload_id() -> str:
    """Return a fresh upload id: 128 random bits, so nobody can name another person's file by guessing."""
    return f"upload:{secrets.token_hex(16)}"


def media_type(declared: str | None) -> str:
    """Return the declared type without parameters, lower-cased; `application/octet-stream` when unusable."""
    base = (declared or "").split(";", 1)[0].strip().lower()
    return base if _MEDIA_TYPE.fullmatch(base) else "application/octet-stream"


def human_size(size: int) -> str:
    """Return a byte count as people read it: `512 bytes`, `1.5 MB` (powers of 1024)."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("kB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}".replace(".0 ", " ")


class Uploads:
    """Keeps uploaded files: the bytes as a raw record, the metadata as an attachment record."""

    def __init__(self, store: Store, metrics: CollectorRegistry, *, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self._count = Counter(
            "helpdesk_ingest_uploads_total",
            "Files uploaded, by outcome (kept, empty, too_large).",
            ["outcome"],
            registry=metrics,
        )
        self._bytes = Counter("helpdesk_ingest_upload_bytes_total", "Bytes of kept uploads.", registry=metrics)

    def refuse(self, outcome: str, status: int, reason: str) -> UploadRefused:
        """Count a refused upload and return the exception that says why."""
        self._count.labels(outcome).inc()
        log.info("upload refused (%s): %s", outcome, reason)
        return UploadRefused(status, reason)

    def too_large(self, filename: str) -> UploadRefused:
        """Return the refusal of a file over the limit."""
        return self.refuse(
            "too_large", 413, f"{filename or 'The file'} is larger than {human_size(self.max_bytes)}, the upload limit."
        )

    async def keep(
        self, data: bytes, *, filename: str | None, content_type: str | None, uploaded_by: str | None
    ) -> Attachment:
        """Keep one file and return it as the tickets service records attachments; raise UploadRefused."""
        ctype = media_type(content_type)
        name = safe_filename(filename, ctype)
        if not data:
            raise self.refuse("empty", 422, f"{name} is empty.")
        if len(data) > self.max_bytes:
            raise self.too_large(name)
        attachment = Attachment(attachment_id=new_upload_id(), filename=name, content_type=ctype[:255], size=len(data))
        record: dict[str, Any] = {
            "_id": attachment.attachment_id,
            "raw_id": attachment.attachment_id,
            "source": "upload",
            "filename": attachment.filename,
            "content_type": attachment.content_type,
            "size": attachment.size,
            "uploaded_at": utcnow(),
            **({"uploaded_by": uploaded_by[:320]} if uploaded_by else {}),
        }
        await self._store.save_upload(record, data)
        self._count.labels("kept").inc()
        self._bytes.inc(len(data))
        log.info(
            "kept upload %s (%s, %d bytes) from %s", attachment.attachment_id, ctype, len(data), uploaded_by or "?"
        )
        return attachment
