"""Mail with a customer's sign-in link: sent at once, while the portal waits, never queued or retried.

The portal asks (`POST /sign-in-links`) and tells the customer whether the link is on its way, so this mail
does not go through Kafka and the notifications log: a link that arrives an hour late is useless (it lasts
15 minutes), and the customer simply asks again. It belongs to no ticket: no ticket token in the subject, a
random Message-ID, From a no-reply address of our mail domain (replies to it would reach nobody we read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

from contracts.envelope import utcnow

from notify.domain import (
    LOOP_HEADER,
    MailSettings,
    Rendered,
    RenderError,
    Template,
    languages_to_try,
    render_without_ticket,
)
from notify.handlers import MailIdentity
from notify.smtp import DeliveryDeferred, DeliveryRefused, MailSender

log = logging.getLogger(__name__)

TEMPLATE_KEY = "sign_in_link"
NO_REPLY_LOCAL_PART = "no-reply"


class SignInLinkNotSent(Exception):
    """The sign-in mail did not go out; `retry` tells a passing problem (server away) from a lasting one."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


class SignInLinkStore(Protocol):
    """What the mailer reads from notify's store."""

    async def find_template(self, key: str, languages: Sequence[str]) -> Template | None:
        """Return the template in the first of the languages that has it, or None."""
        ...

    async def suppression(self, address: str) -> dict[str, Any] | None:
        """Return why mail to an address is suppressed, or None."""
        ...

    async def mail_settings(self) -> MailSettings:
        """Return the mail settings."""
        ...


class SignInLinkMailer:
    """Renders the `sign_in_link` template and hands the mail to the SMTP server once."""

    def __init__(
        self,
        store: SignInLinkStore,
        sender: MailSender,
        identity: MailIdentity,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._sender = sender
        self._identity = identity
        self._clock = clock

    @property
    def from_address(self) -> str:
        """The address the mail comes from."""
        return f"{NO_REPLY_LOCAL_PART}@{self._identity.mail_domain}"

    async def send(self, to: str, link: str, language: str) -> None:
        """Send the link to `to`; raise `SignInLinkNotSent` when the mail server did not take it."""
        if await self._store.suppression(to) is not None:
            raise SignInLinkNotSent(f"{to.lower()} is undeliverable (it bounced for good)", retry=False)
        template = await self._store.find_template(TEMPLATE_KEY, languages_to_try(language))
        if template is None:
            raise SignInLinkNotSent(f"no template {TEMPLATE_KEY!r} ({language}); run `notify migrate`", retry=False)
        settings = await self._store.mail_settings()
        name = settings.from_name or self._identity.default_from_name
        context = {"link": link, "recipient": {"email": to, "name": ""}, "sender": {"name": name}}
        try:
            message = self._message(render_without_ticket(template, context), to=to, from_name=name)
        except (RenderError, ValueError, IndexError, HeaderParseError) as exc:
            raise SignInLinkNotSent(f"cannot make the mail: {exc}", retry=False) from exc
        try:
            await self._sender.send(message, sender=self.from_address, recipients=[to])
        except DeliveryDeferred as exc:
            raise SignInLinkNotSent(f"the mail server did not take it: {exc}", retry=True) from exc
        except DeliveryRefused as exc:
            raise SignInLinkNotSent(f"the mail server refused it: {exc}", retry=False) from exc
        log.info("sent a sign-in link to %s", to.lower())

    def _message(self, rendered: Rendered, *, to: str, from_name: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = Address(display_name=" ".join(from_name.split()), addr_spec=self.from_address)
        msg["To"] = Address(addr_spec=to)
        msg["Subject"] = rendered.subject
        msg["Date"] = format_datetime(self._clock())
        msg["Message-ID"] = make_msgid(domain=self._identity.mail_domain)
        # An automatic mail: auto-responders stay quiet, and ingest knows our own mail if it comes back.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg[LOOP_HEADER] = self._identity.mail_domain
        msg.set_content(rendered.text)
        if rendered.html is not None:
            msg.add_alternative(rendered.html, subtype="html")
        return msg
