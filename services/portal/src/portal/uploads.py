"""Files chosen in a portal form (an agent's reply, a customer's request): checked, then kept by ingest.

The forms' routes call `store_uploads` with the form's file inputs and pass what it returns to the tickets
API as the comment's or new ticket's `attachments`. The bytes never stay in the portal: each file is read
with a hard cap and handed to ingest before the next one is read.
"""

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from starlette.datastructures import UploadFile

from portal.domain import Actor, Role
from portal.i18n import Translate, translator
from portal.ingest_client import Ingest, UploadRefused
from portal.service_client import ServiceNotFound, ServiceRefused, ServiceUnavailable

if TYPE_CHECKING:
    from portal.pagekit import Portal

log = logging.getLogger(__name__)

DEFAULT_LIMIT_MB = 20
MAX_LIMIT_MB = 100
MAX_FILES = 10


class AttachmentRefused(Exception):
    """A chosen file cannot be attached; `reason` says which file and what limit, in the person's language."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def limit_bytes(limit_mb: object) -> int:
    """Return the upload limit in bytes for the admins' `attachment_limit_mb` setting (1..100, default 20)."""
    mb = limit_mb if isinstance(limit_mb, int) and not isinstance(limit_mb, bool) else DEFAULT_LIMIT_MB
    return min(max(mb, 1), MAX_LIMIT_MB) * 1024 * 1024


PORTAL_ACTOR = Actor(id="portal", role=cast(Role, "system"), email="")
"""The portal itself reading the tickets configuration for a person who may not (a customer)."""


async def upload_limit(portal: "Portal") -> int:
    """Return the admins' attachment limit in bytes; the default when the tickets service cannot say."""
    try:
        answer = await portal.tickets.call("GET", "/api/config", PORTAL_ACTOR)
    except (ServiceUnavailable, ServiceNotFound, ServiceRefused) as exc:
        log.warning("using the default attachment limit: the tickets configuration is unreadable: %s", exc)
        return limit_bytes(None)
    settings = answer.get("config", {}).get("settings", {}) if isinstance(answer, dict) else {}
    return limit_bytes(settings.get("attachment_limit_mb") if isinstance(settings, dict) else None)


async def attach_chosen(
    portal: "Portal", files: Sequence[UploadFile | str], *, uploaded_by: str, t: Translate
) -> list[dict[str, object]]:
    """Keep the files chosen in a form within the admins' limit; nothing is asked of anyone when none was chosen."""
    if not chosen(files):
        return []
    return await store_uploads(portal.ingest, files, max_bytes=await upload_limit(portal), uploaded_by=uploaded_by, t=t)


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


def chosen(files: Sequence[UploadFile | str]) -> list[UploadFile]:
    """Return the file inputs that hold a file (a browser sends an empty, nameless part when none was chosen)."""
    return [f for f in files if isinstance(f, UploadFile) and (f.filename or f.size)]


async def store_uploads(
    ingest: Ingest,
    files: Sequence[UploadFile | str],
    *,
    max_bytes: int,
    max_files: int = MAX_FILES,
    uploaded_by: str = "",
    t: Translate | None = None,
) -> list[dict[str, object]]:
    """Keep the chosen files in ingest; return them as the tickets API takes `attachments`.

    Raises `AttachmentRefused` before anything is kept when there are too many files or one is known to be
    too large, and when ingest refuses one; `IngestUnavailable` when ingest cannot be reached.
    """
    t = t or translator("en")
    picked = chosen(files)
    if len(picked) > max_files:
        raise AttachmentRefused(t("You can attach at most {n} files at once.", n=max_files))
    for file in picked:  # the form parser knows most sizes already: refuse before a byte goes to ingest
        if file.size is not None and file.size > max_bytes:
            raise _too_large(t, file, max_bytes)
    kept: list[dict[str, object]] = []
    for file in picked:
        await file.seek(0)
        data = await file.read(max_bytes + 1)  # never more than one byte past the limit in memory
        if len(data) > max_bytes:
            raise _too_large(t, file, max_bytes)
        name = file.filename or "attachment"
        if not data:
            raise AttachmentRefused(t("{name} is empty.", name=name))
        try:
            uploaded = await ingest.upload(name, file.content_type or "application/octet-stream", data, uploaded_by)
        except UploadRefused as exc:
            raise AttachmentRefused(t("{name} could not be attached: {reason}", name=name, reason=exc.reason)) from exc
        kept.append(uploaded.as_attachment())
    if kept:
        log.info("%s uploaded %d file(s)", uploaded_by or "someone", len(kept))
    return kept


def _too_large(t: Translate, file: UploadFile, max_bytes: int) -> AttachmentRefused:
    return AttachmentRefused(
        t(
            "{name} is larger than {limit}, the largest file you can attach.",
            name=file.filename or "attachment",
            limit=human_size(max_bytes),
        )
    )
