"""Templates and the mail they become, signatures, notify modes, in-app notices. Pure: no SMTP, store, Kafka.

Templates are data an admin edits, so they are rendered in Jinja's immutable sandbox: tags read
ticket fields, but cannot call methods that change things or reach Python internals. A tag that names
a missing field renders empty instead of failing the mail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any, Literal

from contracts.models import Actor, Automation
from jinja2 import ChainableUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts import CommentAdded, TicketAssigned, derived_id

DEFAULT_LANGUAGE = "en"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"
DEFAULT_FROM_NAME = "Support"
LOOP_HEADER = "X-Helpdesk-Loop"
"""Header ingest recognises as our own mail coming back (value: our mail domain)."""


class Template(BaseModel):
    """An email template: subject, plain text and HTML, with `{{ tags }}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="Template key, e.g. `auto_reply`.", pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    language: str = Field(default=DEFAULT_LANGUAGE, description="Language code.", pattern=LANGUAGE_PATTERN)
    subject: str = Field(description="Subject; the ticket token `[#n]` is added when missing.", max_length=1000)
    text: str = Field(description="Plain-text body.", max_length=200_000)
    html: str | None = Field(default=None, description="HTML body (tags are HTML-escaped).", max_length=400_000)


class RenderError(ValueError):
    """A template could not be rendered (bad syntax, or it tried to leave the sandbox)."""


class BadAddress(ValueError):
    """An address cannot be put in a mail header."""


@dataclass(frozen=True)
class Rendered:
    """A template filled in for one mail."""

    subject: str
    text: str
    html: str | None


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, but unsafe access fails loudly instead of rendering as empty."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Refuse access to an unsafe attribute."""
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


_TEXT = _Sandbox(autoescape=False, undefined=ChainableUndefined)
_HTML = _Sandbox(autoescape=True, undefined=ChainableUndefined)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Any:
    return (_HTML if html else _TEXT).from_string(source)


def check_template(template: Template) -> None:
    """Raise `RenderError` when a template's subject or bodies do not compile."""
    for name, source, html in (("subject", template.subject, False), ("text", template.text, False)):
        _compile(name, source, html)
    if template.html is not None:
        _compile("html", template.html, True)


def _compile(part: str, source: str, html: bool) -> Any:
    try:
        return _compiled(source, html)
    except TemplateError as exc:
        raise RenderError(f"{part}: {exc}") from exc


def _render(part: str, source: str, html: bool, context: Mapping[str, Any]) -> str:
    try:
        return str(_compile(part, source, html).render(**context))
    except SecurityError as exc:
        raise RenderError(f"{part}: refused: {exc}") from exc
    except TemplateError as exc:
        raise RenderError(f"{part}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # Filters applied to wrong types fail with plain Python errors; report them as the template's fault.
        raise RenderError(f"{part}: {type(exc).__name__}: {exc}") from exc


def ticket_token(number: int) -> str:
    """Return the subject token that pairs replies with a ticket, e.g. `[#1001]`."""
    return f"[#{number}]"


_TOKEN = re.compile(r"\[#(\d+)\]")


def subject_with_token(subject: str, number: int) -> str:
    """Return the subject as one line, with the ticket token in front unless it is there already.

    Tokens of other tickets (say, a title that quotes one) are defused, so a reply cannot be paired
    with a ticket this mail is not about.
    """
    line = " ".join(subject.split())
    line = _TOKEN.sub(lambda m: m.group(0) if int(m.group(1)) == number else f"#{m.group(1)}", line)
    token = ticket_token(number)
    return line if token in line else f"{token} {line}".rstrip()


def render(template: Template, context: Mapping[str, Any], *, ticket_number: int) -> Rendered:
    """Fill a template in; the subject always carries the ticket token.

    A value with an `__html__` method (see `TextAndHtml`) prints as its HTML in the HTML body.
    """
    subject = _render("subject", template.subject, False, context)
    text = _render("text", template.text, False, context)
    html = _render("html", template.html, True, context) if template.html is not None else None
    return Rendered(subject=subject_with_token(subject, ticket_number), text=text, html=html)


def render_without_ticket(template: Template, context: Mapping[str, Any]) -> Rendered:
    """Fill in a template for mail about no ticket (a sign-in link): the subject one line, no ticket token."""
    subject = " ".join(_render("subject", template.subject, False, context).split())
    text = _render("text", template.text, False, context)
    html = _render("html", template.html, True, context) if template.html is not None else None
    return Rendered(subject=subject, text=text, html=html)


def _bracketed(message_id: str) -> str:
    return f"<{message_id.strip().strip('<>')}>"


def _address(email: str, name: str = "") -> HeaderAddress:
    try:
        return HeaderAddress(display_name=name.replace("\r", " ").replace("\n", " "), addr_spec=email)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise BadAddress(f"cannot use {email!r} as an address: {exc}") from exc


def usable_address(email: str) -> bool:
    """Tell whether an address can be put in a mail header."""
    try:
        _address(email)
    except BadAddress:
        return False
    return True


def references_for(in_reply_to: str | None, references: Sequence[str]) -> list[str]:
    """Return the References chain: the given ones, oldest first, ending with the mail we answer."""
    chain = [r.strip().strip("<>") for r in references if r and r.strip().strip("<>")]
    if in_reply_to and in_reply_to.strip("<>") not in chain:
        chain.append(in_reply_to.strip().strip("<>"))
    return list(dict.fromkeys(chain))


def build_message(
    rendered: Rendered,
    *,
    to_email: str,
    to_name: str,
    mailbox: str,
    mailbox_name: str | None,
    message_id: str,
    ticket_number: int,
    mail_domain: str,
    date: datetime,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    auto_submitted: str | None = None,
    cc: Sequence[tuple[str, str]] = (),
) -> EmailMessage:
    """Return the mail: From/Reply-To the mailbox, To and Cc, threading headers, loop guards, text and HTML."""
    msg = EmailMessage()
    msg["From"] = _address(mailbox, mailbox_name or DEFAULT_FROM_NAME)
    msg["Reply-To"] = _address(mailbox)
    msg["To"] = _address(to_email, to_name)
    if cc:
        msg["Cc"] = [_address(email, name) for email, name in cc]
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _bracketed(message_id)
    if in_reply_to:
        msg["In-Reply-To"] = _bracketed(in_reply_to)
    chain = references_for(in_reply_to, references)
    if chain:
        msg["References"] = " ".join(_bracketed(r) for r in chain)
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = mail_domain
    msg["X-Helpdesk-Ticket"] = str(ticket_number)
    msg.set_content(rendered.text)
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html")
    return msg


_LANGUAGE = re.compile(r"^[a-z]{2,3}")


def languages_to_try(language: str) -> list[str]:
    """Return the languages to look a template up in, most specific first (`sv-SE`, `sv`, `en`)."""
    tried = [language]
    base = _LANGUAGE.match(language.lower())
    if base and base.group(0) != language:
        tried.append(base.group(0))
    if DEFAULT_LANGUAGE not in tried:
        tried.append(DEFAULT_LANGUAGE)
    return tried


class TextAndHtml(str):
    """Text that prints as itself in a plain-text body and as its own HTML in an HTML body.

    Jinja's autoescape asks a value for `__html__`; a plain str is escaped instead. Templates use one tag
    (`{{ signature }}`) for both bodies; the sandbox keeps `_html` out of a template's reach.
    """

    _html: str

    def __new__(cls, text: str, html: str) -> TextAndHtml:
        """Return the text, carrying its HTML."""
        value = super().__new__(cls, text)
        value._html = html
        return value

    def __html__(self) -> str:
        """Return the HTML form (already safe)."""
        return self._html


def text_as_html(text: str) -> Markup:
    """Return plain text as HTML: escaped, its line breaks kept as `<br>`."""
    return Markup("<br>\n").join(escape(line) for line in text.split("\n"))


# Notify mode: how much a customer is told by mail. `never`: nothing; `link`: that there is news, with the
# link (never the text); `email`: the whole mail.
NotifyMode = Literal["never", "link", "email"]
NOTIFY_MODES: tuple[NotifyMode, ...] = ("never", "link", "email")
Audience = Literal["customer", "staff", "other"]

DEFAULT_CLOSINGS: dict[str, str] = {"en": "Best regards,", "sv": "Vänliga hälsningar,"}
_LANGUAGE_KEY = re.compile(LANGUAGE_PATTERN)


class MailSettings(BaseModel):
    """What an admin sets for all outgoing mail: the notify mode and the closing greeting per language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notify_mode: NotifyMode = Field(
        default="email",
        description="For mail to customers, unless the ticket has its own: `never` (not sent), `link` (only that "
        "there is news, and the link) or `email` (the whole mail).",
    )
    closing_greeting: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CLOSINGS),
        description='Closing greeting by language, before the signature: {"en": "Best regards,"}.',
    )
    from_name: str = Field(
        default="",
        max_length=100,
        description="The From display name of mail from a mailbox that has no name of its own (the service's "
        "`mailbox_names`); empty: the service's `default_from_name`. The From address is always the mailbox.",
    )

    @field_validator("closing_greeting")
    @classmethod
    def _languages_and_lines(cls, value: dict[str, str]) -> dict[str, str]:
        for language, greeting in value.items():
            if not _LANGUAGE_KEY.match(language):
                raise ValueError(f"{language!r} is not a language code like `en` or `sv-SE`")
            if len(greeting) > 200 or "\n" in greeting or "\r" in greeting:
                raise ValueError(f"the greeting for {language!r} must be one line of at most 200 characters")
        return value

    @field_validator("from_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("the From name must be one line")
        return value.strip()

    def closing(self, language: str) -> str:
        """Return the closing greeting for a language (regional, base, then English; "" when none is set)."""
        for tried in languages_to_try(language):
            if tried in self.closing_greeting:
                return self.closing_greeting[tried]
        return ""


def notify_mode_for(ticket: Mapping[str, Any] | None, default: NotifyMode) -> tuple[NotifyMode, str]:
    """Return the notify mode for a customer's mail about a ticket, and where it comes from."""
    own = ticket.get("notify_mode") if isinstance(ticket, Mapping) else None
    if own in NOTIFY_MODES:
        return own, "the ticket's notify mode"
    return default, "the global notify mode"


# What a comment says, wherever a command's context may carry it. Link mode takes these out before
# rendering, so no template (an admin's own included) can print the content.
_CONTENT_KEYS = ("text", "text_new", "html")
_CONTENT_TOP_LEVEL = ("description",)


def without_content(context: Mapping[str, Any]) -> dict[str, Any]:
    """Return the context with the comment's text and HTML (and a ticket's first message) taken out."""
    kept = {k: v for k, v in context.items() if k not in _CONTENT_TOP_LEVEL}
    comment = kept.get("comment")
    if isinstance(comment, Mapping):
        kept["comment"] = {k: v for k, v in comment.items() if k not in _CONTENT_KEYS}
    elif comment is not None:
        del kept["comment"]
    return kept


SignatureScope = Literal["general", "mailbox", "personal", "personal_mailbox"]
_NEEDS: dict[str, tuple[bool, bool]] = {  # scope: (needs a mailbox, needs a user id)
    "general": (False, False),
    "mailbox": (True, False),
    "personal": (False, True),
    "personal_mailbox": (True, True),
}


def scope_problem(scope: str, mailbox: str | None, user_id: str | None) -> tuple[str, str] | None:
    """Return (field, what is wrong) when a signature's mailbox and user id do not fit its scope, else None."""
    needs_mailbox, needs_user = _NEEDS[scope]
    for name, value, needed in (("mailbox", mailbox, needs_mailbox), ("user_id", user_id, needs_user)):
        if needed and not value:
            return name, f"required for scope {scope!r}"
        if not needed and value:
            return name, f"not used for scope {scope!r}; leave it out"
    return None


class SignatureFields(BaseModel):
    """The fields of a signature, each checked on its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: SignatureScope = Field(
        description="`general`, `mailbox`, `personal` (an agent's) or `personal_mailbox` (an agent's, in one mailbox)."
    )
    mailbox: str | None = Field(
        default=None,
        description="The mailbox address (scopes `mailbox`, `personal_mailbox`).",
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+$",
    )
    user_id: str | None = Field(
        default=None, description="The agent's user id (scopes `personal`, `personal_mailbox`).", max_length=200
    )
    language: str | None = Field(
        default=None, description="Language it is for; none: any language.", pattern=LANGUAGE_PATTERN
    )
    text: str = Field(description="Plain-text signature.", min_length=1, max_length=10_000)
    html: str | None = Field(
        default=None, description="HTML signature (sanitised when stored); none: the text.", max_length=50_000
    )

    @field_validator("mailbox")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @field_validator("user_id")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class Signature(SignatureFields):
    """A signature of one layer: general, a mailbox's, an agent's, or an agent's in one mailbox."""

    @model_validator(mode="after")
    def _fits_scope(self) -> Signature:
        if (problem := scope_problem(self.scope, self.mailbox, self.user_id)) is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        return self

    @property
    def key(self) -> tuple[str, str | None, str | None, str | None]:
        """Return what identifies it: scope, mailbox, user id and language."""
        return (self.scope, self.mailbox, self.user_id, self.language)

    def value(self) -> TextAndHtml:
        """Return it for a template: its text in plain text, its HTML (or the text as HTML) in HTML."""
        return TextAndHtml(self.text, self.html if self.html else str(text_as_html(self.text)))


def signature_id(scope: str, mailbox: str | None, user_id: str | None, language: str | None) -> str:
    """Return the document id of a signature."""
    return "|".join((scope, (mailbox or "").lower(), user_id or "", language or ""))


def signature_languages(language: str) -> list[str | None]:
    """Return the languages to look a signature up in: the language, its base, any language, then English."""
    base = _LANGUAGE.match(language.lower())
    english = base is not None and base.group(0) == DEFAULT_LANGUAGE
    own: list[str | None] = [t for t in languages_to_try(language) if t != DEFAULT_LANGUAGE]
    return [*own, DEFAULT_LANGUAGE, None] if english else [*own, None, DEFAULT_LANGUAGE]


def with_configured_mailbox_signature(stored: Sequence[Signature], mailbox: str, configured: str) -> list[Signature]:
    """Return the stored signatures, plus the configured one of a mailbox when none is stored for it."""
    mailbox = mailbox.lower()
    if not configured.strip() or any(s.scope == "mailbox" and s.mailbox == mailbox for s in stored):
        return list(stored)
    return [*stored, Signature(scope="mailbox", mailbox=mailbox, text=configured.strip("\n"))]


def pick_signature(
    signatures: Sequence[Signature], *, mailbox: str, user_id: str | None, language: str
) -> Signature | None:
    """Return the most specific signature that exists for a mail, or None.

    Layers, most specific first: the agent's in this mailbox, the agent's, the mailbox's, the general one
    (the agent's only when the mail speaks for an agent: `user_id`). In each layer the mail's language
    wins over a signature for any language, and that over English.
    """
    mailbox = mailbox.lower()
    layers: list[tuple[str, str | None, str | None]] = []
    if user_id:
        layers += [("personal_mailbox", mailbox, user_id), ("personal", None, user_id)]
    layers += [("mailbox", mailbox, None), ("general", None, None)]
    by_key = {s.key: s for s in signatures}
    for scope, layer_mailbox, layer_user in layers:
        for tried in signature_languages(language):
            if (found := by_key.get((scope, layer_mailbox, layer_user, tried))) is not None:
                return found
    return None


def from_name(mailbox_name: str, on_behalf_of: Actor | None) -> str:
    """Return the From display name: the mailbox's, or "<agent> (<mailbox>)" for mail an agent speaks in."""
    agent = " ".join((on_behalf_of.name if on_behalf_of else "").split())
    return f"{agent} ({mailbox_name})" if agent else mailbox_name


# In-app notifications: short notices an agent sees in the portal.
InAppKind = Literal["assigned", "mentioned"]


@dataclass(frozen=True)
class InAppNotice:
    """One in-app notification for one user."""

    notice_id: str
    user_id: str
    kind: InAppKind
    text: str


def _who(actor: Actor, automation: Automation | None) -> str:
    if automation is not None and actor.role == "system":
        return f"rule {automation.rule_name}" if automation.rule_name else "a rule"
    return actor.name or actor.email or actor.id or "someone"


def inapp_id(event_id: str, user_id: str) -> str:
    """Return the id of the notice one event gives one user (the same on every redelivery)."""
    return derived_id("inapp", event_id, user_id)


def assignment_notices(event_id: str, event: TicketAssigned) -> list[InAppNotice]:
    """Return the notice for a ticket's new handler, unless they assigned it to themselves."""
    handler = event.handler.new if event.handler is not None else None
    if not isinstance(handler, str) or not handler or handler == event.actor.id:
        return []
    text = f"#{event.ticket.number} assigned to you by {_who(event.actor, event.automation)}"
    return [InAppNotice(inapp_id(event_id, handler), handler, "assigned", text)]


def mention_notices(event_id: str, event: CommentAdded) -> list[InAppNotice]:
    """Return a notice for each user @mentioned in a comment, except its author."""
    author = event.comment.author
    text = f"{_who(author, event.automation)} mentioned you on #{event.ticket.number}"
    users = [u for u in dict.fromkeys(event.mentions) if u and u != author.id]
    return [InAppNotice(inapp_id(event_id, user), user, "mentioned", text) for user in users]
