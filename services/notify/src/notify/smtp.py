"""Sending mail over SMTP with aiosmtplib, and what its failures mean for a retry."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from notify.settings import OutboundSmtpSettings

log = logging.getLogger(__name__)


class DeliveryDeferred(Exception):
    """The server did not take the mail this time (4xx, unreachable); trying again later can work.

    `about_this_mail` tells a 4xx about this mail (its sender, recipient or content; worth a few more
    tries) from trouble with the server itself (down, refusing our login; worth waiting for).
    """

    def __init__(self, reason: str, *, about_this_mail: bool = False) -> None:
        super().__init__(reason)
        self.about_this_mail = about_this_mail


class DeliveryRefused(Exception):
    """The server refused the mail for good (5xx); trying again cannot help.

    Also raised, with `permanent` False, when the server said "later" (4xx) about the main recipient but
    took the copies: trying again would send the copies twice.
    """

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.permanent = permanent


class MailSender(Protocol):
    """Hands one mail to the outgoing mail server."""

    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> None:
        """Send it; raise `DeliveryDeferred` or `DeliveryRefused` when the server does not take it."""
        ...


def _verdict(code: int, text: str) -> Exception:
    reason = f"{code} {text}".strip()
    return DeliveryRefused(reason) if code >= 500 else DeliveryDeferred(reason, about_this_mail=True)


class SmtpSender:
    """A `MailSender` that opens one SMTP connection per mail."""

    def __init__(self, settings: OutboundSmtpSettings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> None:
        """Send one mail; translate the server's answer into deferred or refused."""
        s = self._settings
        try:
            refused, _ = await aiosmtplib.send(
                message,
                sender=sender,
                recipients=recipients,
                hostname=s.outbound_smtp_host,
                port=s.outbound_smtp_port,
                username=s.outbound_smtp_username,
                password=s.outbound_smtp_password.get_secret_value() if s.outbound_smtp_password else None,
                start_tls=s.outbound_smtp_starttls if not s.outbound_smtp_tls else None,
                use_tls=s.outbound_smtp_tls,
                timeout=s.outbound_smtp_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            worst = max(exc.recipients, key=lambda r: r.code)
            raise _verdict(worst.code, f"{worst.recipient}: {worst.message}") from exc
        except (
            aiosmtplib.SMTPAuthenticationError,
            aiosmtplib.SMTPHeloError,
            aiosmtplib.SMTPConnectResponseError,
        ) as exc:
            # Our login or greeting was refused: a setup problem of ours, not this mail's; keep it for later.
            raise DeliveryDeferred(f"{exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _verdict(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Refused connections, timeouts, dropped connections, TLS trouble: the server is away for now.
            raise DeliveryDeferred(f"{type(exc).__name__}: {exc}") from exc
        # The server took the mail for some recipients and refused others: it has gone out, so it is never
        # tried again. Refused copies are only logged; a refused main recipient makes the mail a failure.
        for recipient, answer in refused.items():
            log.warning("the mail server refused %s for %s: %s %s", recipient, message["Message-ID"], *answer)
        if recipients and (main := refused.get(recipients[0])) is not None:
            reason = f"{main.code} {recipients[0]}: {main.message}"
            if main.code >= 500:
                raise DeliveryRefused(reason)
            raise DeliveryRefused(f"{reason} (the copies went out, so it is not tried again)", permanent=False)
