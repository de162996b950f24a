"""The SMTP/LMTP receiver: an MTA delivers here; we answer 250 only once Kafka has the message."""

import asyncio
import logging
import re
from functools import partial
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from ingest.handlers import EmailIntake, NotAccepted, Outcome
from ingest.mailboxes import MailboxDirectory, MailboxUnknown

log = logging.getLogger(__name__)


# `<local@domain>` followed by parameters: what MAIL FROM and RCPT TO carry nearly always.
_PLAIN_PATH = re.compile(
    r"\s*<([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)>\s*(.*)\Z", re.S
)


class _QuickAddress:
    """Reads a plain `<local@domain>` path directly; anything else goes to aiosmtpd's full RFC 5321 parser.

    aiosmtpd parses every MAIL and RCPT path with the email package's header grammar (and defines a class
    on each call), a twentieth of the receiver's CPU at a few hundred messages a second.
    """

    local_part_limit: int

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.match(arg)
        if plain and not (self.local_part_limit and len(plain.group(1).rpartition("@")[0]) > self.local_part_limit):
            return plain.group(1), plain.group(2)
        return super()._getaddr(arg)  # type: ignore[misc]


class QuickSMTP(_QuickAddress, SMTP):
    """aiosmtpd's SMTP with the quick path reader."""


class QuickLMTP(_QuickAddress, LMTP):
    """aiosmtpd's LMTP with the quick path reader."""


class DeliveryHandler:
    """aiosmtpd handler: checks recipients, then hands the message to the intake."""

    def __init__(self, intake: EmailIntake, mailboxes: MailboxDirectory) -> None:
        self._intake = intake
        self._mailboxes = mailboxes

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept only our own mailboxes as recipients."""
        try:
            ours = await self._mailboxes.is_ours(address)
        except MailboxUnknown:
            return "451 4.3.0 Mailbox list unavailable, try again later"
        if not ours:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address.lower())
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        """Accept the message once it is safe in Kafka (or kept in quarantine)."""
        reply = await self._accept(envelope, session)
        if isinstance(server, LMTP):
            # LMTP answers DATA once per recipient; all of ours share the one outcome.
            return "\r\n".join([reply] * max(1, len(envelope.rcpt_tos)))
        return reply

    async def _accept(self, envelope: Envelope, session: Session) -> str:
        raw = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes) else b"")
        peer = str(session.peer[0]) if session.peer else ""
        try:
            outcome = await self._intake.accept(raw, list(envelope.rcpt_tos), peer=peer)
        except NotAccepted:
            return "451 4.3.0 Temporary failure, please try again later"
        except Exception:
            log.exception("unexpected failure while accepting a message")
            return "451 4.3.0 Temporary failure, please try again later"
        if outcome is Outcome.QUARANTINED:
            return "250 2.0.0 Accepted (held for review)"
        return "250 2.0.0 Message accepted"


async def start_receivers(
    handler: DeliveryHandler,
    *,
    host: str,
    smtp_port: int,
    lmtp_port: int | None,
    hostname: str,
    max_bytes: int,
) -> list[asyncio.Server]:
    """Start the SMTP (and LMTP) listeners on the running event loop."""
    loop = asyncio.get_running_loop()
    common: dict[str, Any] = {
        "data_size_limit": max_bytes,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "hostname": hostname,
        "ident": "helpdesk ingest",
    }
    servers = [await loop.create_server(partial(QuickSMTP, handler, **common), host=host, port=smtp_port)]
    if lmtp_port:
        servers.append(await loop.create_server(partial(QuickLMTP, handler, **common), host=host, port=lmtp_port))
    log.info("receiving mail on %s:%s%s", host, smtp_port, f" and LMTP :{lmtp_port}" if lmtp_port else "")
    return servers
