"""Wiring of the ingest process: SMTP/LMTP receiver, IMAP pollers, store, outbox relay, HTTP ops and quarantine API."""

import re
import unicodedata
from typing import Any
from urllib.parse import quote

from contracts.models import Attachment
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from hdkit.auth import require_service_token
from hdkit.mongo import OutboxRelay
from hdkit.service import build_runtime, http_app
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from contracts import EmailReceived, topics
from ingest.handlers import EmailIntake, Limits, NotAccepted, QuarantineEntryNotFound, StillUnreadable
from ingest.imap import ImapIntake
from ingest.mailboxes import MailboxDirectory
from ingest.settings import Settings
from ingest.smtp import DeliveryHandler, start_receivers
from ingest.store import Store
from ingest.uploads import UploadRefused, Uploads


def create_app(
    settings: Settings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    mailboxes: MailboxDirectory | None = None,
    configure_logging: bool = False,
) -> FastAPI:
    """Build the ingest app; the SMTP listeners start and stop with it."""
    rt = build_runtime("ingest", settings, broker=broker, mongo=mongo, configure_logging=configure_logging)
    store = Store(rt.db)
    relay = OutboxRelay(store.messages, rt.publisher)
    intake = EmailIntake(
        store,
        relay,
        rt.metrics,
        loop_domain=settings.loop_domain,
        limits=Limits(
            max_attachment_bytes=settings.max_attachment_bytes,
            max_attachments_bytes_per_message=settings.max_attachments_bytes_per_message,
        ),
    )
    directory = mailboxes or MailboxDirectory(
        settings.tickets_url, settings.service_token.get_secret_value(), settings.mailbox_refresh_seconds
    )
    receivers: list[Any] = []

    async def start_smtp() -> None:
        receivers.extend(
            await start_receivers(
                DeliveryHandler(intake, directory),
                host=settings.smtp_host,
                smtp_port=settings.smtp_port,
                lmtp_port=settings.lmtp_port,
                hostname=settings.smtp_hostname,
                max_bytes=settings.max_message_bytes,
            )
        )

    async def stop_smtp() -> None:
        for server in receivers:
            server.close()
            await server.wait_closed()

    rt.on_start += [store.ensure_indexes, relay.ensure_indexes, start_smtp]
    rt.on_stop += [stop_smtp, relay.drain]  # receivers first, then empty the outboxes of what was published
    rt.background.append(relay.run_sweeper)
    imap = ImapIntake(settings.imap_accounts, intake, rt.metrics, max_message_bytes=settings.max_message_bytes)
    if imap.pollers:
        # a background task: cancelled on shutdown, when every poller logs out
        rt.background.append(imap.run)
    rt.declare_publisher(topics.INBOUND_EMAIL, EmailReceived)

    app = http_app(rt, title="helpdesk ingest", description="Channels in: email by SMTP/LMTP; quarantine.")
    app.state.runtime = rt
    app.state.intake = intake
    app.state.imap = imap
    app.state.store = store
    uploads = Uploads(store, rt.metrics, max_bytes=settings.max_upload_bytes)
    app.include_router(api(store, intake, settings.service_token.get_secret_value(), uploads=uploads))
    return app


# Types a browser shows without running anything; everything else is served as application/octet-stream.
SAFE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"})
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private",
}
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]+")


def download_type(declared: str) -> str:
    """Return the Content-Type to serve a file with: its declared type if on the safe list, else octet-stream."""
    base = declared.split(";", 1)[0].strip().lower()
    return base if base in SAFE_TYPES else "application/octet-stream"


def content_disposition(filename: str, fallback: str = "attachment") -> str:
    """Return `attachment` with an ASCII filename= and the exact name in RFC 5987 filename*=UTF-8''."""
    name = "".join(ch for ch in filename.replace("\\", "/").rsplit("/", 1)[-1] if unicodedata.category(ch)[0] != "C")
    name = name.strip().lstrip(".")  # no hidden files, no path
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = _UNSAFE_IN_NAME.sub("_", ascii_name).strip(" ._")[:150] or fallback
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name[:200] or ascii_name, safe='')}"


UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The file."},
                        "filename": {"type": "string", "description": "Its name, if not the part's own."},
                        "content_type": {"type": "string", "description": "Its type, if not the part's own."},
                        "uploaded_by": {"type": "string", "description": "Who uploaded it (user id), for audit."},
                    },
                }
            }
        },
    }
}
_FORM_SLACK = 64 * 1024  # multipart boundaries and the small fields around the file


def _form_text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def api(store: Store, intake: EmailIntake, token: str, *, uploads: Uploads | None = None) -> APIRouter:
    """Return the admin API of ingest: the quarantine, attachment downloads and uploads."""
    router = APIRouter(prefix="/api", dependencies=[Depends(require_service_token(token))])
    uploads = uploads or Uploads(store, CollectorRegistry())

    @router.get(
        "/quarantine",
        tags=["quarantine"],
        summary="Messages that could not be read, newest first, with the reason (all=true: also reprocessed ones).",
    )
    async def quarantine(limit: int = 100, all: bool = False) -> list[dict[str, Any]]:  # noqa: A002 - query name
        return await store.list_quarantine(min(max(limit, 1), 1000), include_reprocessed=all)

    @router.get(
        "/quarantine/{quarantine_id}/raw",
        tags=["quarantine"],
        summary="The quarantined message as it arrived, as an .eml download.",
        response_class=Response,
        responses={200: {"content": {"message/rfc822": {}}}, 404: {"description": "Unknown id."}},
    )
    async def quarantine_raw(quarantine_id: str) -> Response:
        entry = await store.find_quarantine(quarantine_id)
        raw = await store.load_raw(entry.get("raw_id", quarantine_id)) if entry else None
        if entry is None or raw is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such quarantine entry")
        name = _UNSAFE_IN_NAME.sub("_", quarantine_id)[:100]
        headers = {**DOWNLOAD_HEADERS, "Content-Disposition": f'attachment; filename="quarantine-{name}.eml"'}
        return Response(raw, media_type="message/rfc822", headers=headers)

    @router.post(
        "/quarantine/{quarantine_id}/reprocess",
        tags=["quarantine"],
        summary="Read a quarantined message again and publish it if it is readable now.",
        responses={
            404: {"description": "Unknown id."},
            422: {"description": "Still unreadable: the entry stays, with the new reason and one more attempt."},
            503: {"description": "Kafka or the store is unavailable; try again later."},
        },
    )
    async def reprocess(quarantine_id: str) -> JSONResponse:
        try:
            entry = await intake.reprocess(quarantine_id)
        except QuarantineEntryNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such quarantine entry") from exc
        except StillUnreadable as exc:
            body = {"id": quarantine_id, "outcome": "unreadable", "reason": exc.reason}
            return JSONResponse(
                {**body, "attempts": exc.entry.get("attempts")}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
            )
        except NotAccepted as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "could not publish now, try again", {"Retry-After": "30"}
            ) from exc
        reprocessed_at = entry.get("reprocessed_at")
        return JSONResponse(
            {
                "id": quarantine_id,
                "outcome": entry.get("outcome"),
                "reprocessed_at": reprocessed_at.isoformat() if reprocessed_at else None,
                "attempts": entry.get("attempts"),
            }
        )

    @router.get(
        "/attachments/{attachment_id}",
        tags=["attachments"],
        summary="An attachment's bytes, always as a download (never rendered by the browser).",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "Unknown id."}},
    )
    async def attachment(attachment_id: str) -> Response:
        """Serve a kept attachment so that a browser downloads it and never renders or runs it.

        Only ingest's service token is checked here: the portal proxies this route after its own check that
        the user may see the ticket the attachment belongs to. Attachment ids are ``{raw_id}:a{n}`` (mail) or
        ``upload:{32 hex}`` (uploads) and need a metadata record, so a raw message's bytes are never served here.
        """
        meta = await store.find_attachment(attachment_id)
        data = await store.load_raw(attachment_id) if meta else None
        if meta is None or data is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such attachment")
        headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(str(meta.get("filename") or ""))}
        return Response(data, media_type=download_type(str(meta.get("content_type") or "")), headers=headers)

    @router.post(
        "/attachments",
        tags=["attachments"],
        status_code=status.HTTP_201_CREATED,
        response_model=Attachment,
        summary="Keep an uploaded file (multipart: file, filename?, content_type?, uploaded_by?) like a mail "
        "attachment; returns it as tickets records attachments.",
        openapi_extra=UPLOAD_FORM,
        responses={
            413: {"description": "Larger than the upload limit; `detail` says which file and what limit."},
            422: {"description": "No file, or an empty one; `detail` says why."},
        },
    )
    async def upload(request: Request) -> Attachment:
        """Keep one file; it is downloadable at once through `GET /api/attachments/{attachment_id}`.

        The id is random (128 bits): the tickets service accepts only such ids from its API, so nobody can
        attach a file of someone else's mail by naming its id.
        """
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > uploads.max_bytes + _FORM_SLACK:
            raise _refused(uploads.too_large(""))  # refused before a byte of the body is read
        try:
            form = await request.form(max_files=1, max_fields=10)
        except (MultiPartException, ClientDisconnect) as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not a readable form: {exc}") from exc
        try:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise _refused(uploads.refuse("empty", 422, "No file was sent (the form field is `file`)."))
            data = await part.read(uploads.max_bytes + 1)  # never more than one byte past the limit
            filename = _form_text(form.get("filename"), 1000) or part.filename
            content_type = _form_text(form.get("content_type"), 255) or part.content_type
            try:
                return await uploads.keep(
                    data,
                    filename=filename,
                    content_type=content_type,
                    uploaded_by=_form_text(form.get("uploaded_by"), 320),
                )
            except UploadRefused as exc:
                raise _refused(exc) from exc
        finally:
            await form.close()  # the spooled temporary file of the part

    return router


def _refused(exc: UploadRefused) -> HTTPException:
    return HTTPException(exc.status, exc.reason)
