"""The files of a public reply in its mail: fetched from ingest, within a total size, the rest named in the mail."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from contracts.models import Attachment
from markupsafe import Markup
from pydantic import ValidationError

from notify.domain import Rendered

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


class FileUnavailable(Exception):
    """A file's bytes could not be fetched from ingest now (down, unknown id, unexpected answer)."""


class FileSource(Protocol):
    """Where the bytes of ticket files come from (`IngestFiles`; tests use a fake)."""

    async def fetch(self, attachment_id: str) -> bytes:
        """Return a file's bytes; raise `FileUnavailable` when they cannot be had."""
        ...


class IngestFiles:
    """Ingest's download route (`GET /api/attachments/{id}`), with the service token."""

    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        timeout: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {service_token}"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    async def fetch(self, attachment_id: str) -> bytes:
        """Return a file's bytes; raise `FileUnavailable` when they cannot be had."""
        path = f"/api/attachments/{quote(attachment_id, safe=':@')}"
        try:
            response = await self._http.get(path)
        except httpx.HTTPError as exc:
            raise FileUnavailable(f"ingest unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise FileUnavailable(f"ingest answered HTTP {response.status_code}")
        return response.content

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()


@dataclass(frozen=True)
class LeftOutFile:
    """A file of the reply that is not in its mail, and why (`too_large` or `unavailable`)."""

    filename: str
    size: int
    reason: str


@dataclass(frozen=True)
class Files:
    """The files a mail carries, and the ones it only names."""

    attached: tuple[tuple[Attachment, bytes], ...] = ()
    left_out: tuple[LeftOutFile, ...] = ()

    def record(self) -> dict[str, Any]:
        """Return what the notification record keeps about them."""
        return {
            "attachments": [a.attachment_id for a, _ in self.attached],
            "attachments_left_out": [
                {"filename": f.filename, "size": f.size, "reason": f.reason} for f in self.left_out
            ],
        }


def files_to_attach(context: Mapping[str, Any], *, audience: str) -> list[Attachment]:
    """Return the files of the public comment a customer mail is about; none for staff notices or internal notes.

    The files come from the comment the command's context carries (`CommentAdded.comment.attachments`).
    """
    comment = context.get("comment")
    if audience == "staff" or not isinstance(comment, Mapping) or comment.get("visibility") != "public":
        return []
    files = []
    for item in comment.get("attachments") or ():
        try:
            files.append(Attachment.model_validate(item))
        except ValidationError:
            log.warning("a comment names a file notify cannot read: %r", item)
    return files


async def gather(files: Sequence[Attachment], source: FileSource, *, max_bytes: int) -> Files:
    """Fetch the files that fit within `max_bytes` together, in order; name the rest and why."""
    attached: list[tuple[Attachment, bytes]] = []
    left_out: list[LeftOutFile] = []
    total = 0
    for file in files:
        if total + file.size > max_bytes:
            left_out.append(LeftOutFile(file.filename, file.size, "too_large"))
            continue
        try:
            data = await source.fetch(file.attachment_id)
        except FileUnavailable as exc:
            log.warning("file %s could not be attached: %s", file.attachment_id, exc)
            left_out.append(LeftOutFile(file.filename, file.size, "unavailable"))
            continue
        if total + len(data) > max_bytes:  # the record's size was wrong; the bytes decide
            left_out.append(LeftOutFile(file.filename, len(data), "too_large"))
            continue
        total += len(data)
        attached.append((file, data))
    return Files(tuple(attached), tuple(left_out))


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


_NOTE = {
    "en": {
        "intro": "Not attached to this email:",
        "too_large": "the attachments of one email may total at most {limit}",
        "unavailable": "it could not be fetched just now",
        "where": "You find {them} on your request: {link}",
        "them": ("it", "them"),
    },
    "sv": {
        "intro": "Bifogas inte i det här mejlet:",
        "too_large": "bilagorna i ett mejl får tillsammans vara högst {limit}",
        "unavailable": "den kunde inte hämtas just nu",
        "where": "Du hittar {them} i ditt ärende: {link}",
        "them": ("den", "dem"),
    },
}


def with_left_out_note(
    rendered: Rendered, left_out: Sequence[LeftOutFile], *, language: str, link: str, max_bytes: int
) -> Rendered:
    """Return the mail's text and HTML with a note naming the files left out, why, and where to find them."""
    if not left_out:
        return rendered
    words = _NOTE.get(language.split("-", 1)[0].lower(), _NOTE["en"])
    lines = [
        f"{f.filename} ({human_size(f.size)}): {words[f.reason].format(limit=human_size(max_bytes))}" for f in left_out
    ]
    them = words["them"][0 if len(left_out) == 1 else 1]
    where = words["where"].format(them=them, link=link) if link else ""
    text = rendered.text.rstrip("\n") + "\n\n" + words["intro"] + "\n" + "".join(f"- {line}\n" for line in lines)
    text += f"{where}\n" if where else ""
    html = rendered.html
    if html is not None:
        items = Markup("").join(Markup("<li>{}</li>").format(line) for line in lines)
        note = Markup("<p>{}</p><ul>{}</ul>").format(words["intro"], items)
        if link:
            before, _, _ = words["where"].partition("{link}")
            note += Markup('<p>{}<a href="{}">{}</a></p>').format(before.format(them=them), link, link)
        # the template's HTML is already safe markup; the note goes before </body> when there is one
        head, body_end, tail = html.rpartition("</body>")
        html = head + str(note) + body_end + tail if body_end else html + str(note)
    return replace(rendered, text=text, html=html)


def attach(message: EmailMessage, files: Sequence[tuple[Attachment, bytes]]) -> None:
    """Add the files to the mail as attachments (the mail becomes multipart/mixed)."""
    for file, data in files:
        declared = file.content_type.split(";", 1)[0].strip().lower()
        maintype, subtype = (declared if _MEDIA_TYPE.fullmatch(declared) else "application/octet-stream").split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=file.filename)
