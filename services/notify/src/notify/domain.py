"""Templates and the mail they become. Pure code: no SMTP, no store, no Kafka.

Templates are data an admin edits, so they are rendered in Jinja's immutable sandbox: tags read
ticket fields, but cannot call methods that change things or reach Python internals. A tag that names
a missing field renders empty instead of failing the mail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LANGUAGE = "en"
DEFAULT_FROM_NAME = "Support"
LOOP_HEADER = "X-Helpdesk-Loop"
"""Header ingest recognises as our own mail coming back (value: our mail domain)."""


class Template(BaseModel):
    """An email template: subject, plain text and HTML, with `{{ tags }}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="Template key, e.g. `auto_reply`.", pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    language: str = Field(
        default=DEFAULT_LANGUAGE, description="Language code.", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"
    )
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
    """Fill a template in; the subject always carries the ticket token."""
    subject = _render("subject", template.subject, False, context)
    text = _render("text", template.text, False, context)
    html = _render("html", template.html, True, context) if template.html is not None else None
    return Rendered(subject=subject_with_token(subject, ticket_number), text=text, html=html)


def _bracketed(message_id: str) -> str:
    return f"<{message_id.strip().strip('<>')}>"


def _address(email: str, name: str = "") -> HeaderAddress:
    try:
        return HeaderAddress(display_name=name.replace("\r", " ").replace("\n", " "), addr_spec=email)
    except (ValueError, IndexError) as exc:
        raise BadAddress(f"cannot use {email!r} as an address: {exc}") from exc


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
) -> EmailMessage:
    """Return the mail: From/Reply-To the mailbox, threading headers, loop guards, text and HTML."""
    msg = EmailMessage()
    msg["From"] = _address(mailbox, mailbox_name or DEFAULT_FROM_NAME)
    msg["Reply-To"] = _address(mailbox)
    msg["To"] = _address(to_email, to_name)
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


# The mailbox's own signature ends every default template when the mailbox has one (none: nothing at all).
# Text: after the usual "-- " line; HTML: escaped by the sandbox, its line breaks kept by CSS, not by tags.
_SIGNATURE_TEXT = "{% if mailbox.signature %}\n-- \n{{ mailbox.signature }}\n{% endif %}"
_SIGNATURE_HTML = (
    '{% if mailbox.signature %}<p class="signature" style="white-space: pre-line">{{ mailbox.signature }}</p>\n'
    "{% endif %}"
)

_AUTO_REPLY_TEXT = (
    """\
Hello{% if ticket.requester.name %} {{ ticket.requester.name }}{% endif %},

Thank you for writing to us. We have received your request and registered it as ticket \
#{{ ticket.number }}: "{{ ticket.title }}".

A member of our team will get back to you as soon as possible. To add information, simply reply \
to this email and keep [#{{ ticket.number }}] in the subject.

You can follow your request here:
{{ link }}

Kind regards,
{{ mailbox.name or "Support" }}
"""
    + _SIGNATURE_TEXT
)

_AUTO_REPLY_HTML = (
    """\
<p>Hello{% if ticket.requester.name %} {{ ticket.requester.name }}{% endif %},</p>
<p>Thank you for writing to us. We have received your request and registered it as ticket
<strong>#{{ ticket.number }}</strong>: &ldquo;{{ ticket.title }}&rdquo;.</p>
<p>A member of our team will get back to you as soon as possible. To add information, simply reply
to this email and keep [#{{ ticket.number }}] in the subject.</p>
<p><a href="{{ link }}">Follow your request</a></p>
<p>Kind regards,<br>{{ mailbox.name or "Support" }}</p>
"""
    + _SIGNATURE_HTML
)


_LEFT_OUT_TEXT = (
    """\
Hello{% if recipient.name %} {{ recipient.name }}{% endif %},

Your message about ticket #{{ ticket.number }}: "{{ ticket.title }}" reached us, but \
{% if files | length == 1 %}this attachment was{% else %}these attachments were{% endif %} too large \
to keep and did not come through:
{% for file in files %}
- {{ file.filename }} ({{ file.human_size }}): \
{% if file.reason == "file_too_large" %}larger than {{ limits.per_file_human }}, the limit per file\
{% else %}the attachments of one message may total at most {{ limits.per_message_human }}{% endif %}
{%- endfor %}

Please send {% if files | length == 1 %}it{% else %}them{% endif %} another way (for example a link to \
a file share), or in smaller parts: several replies to this email, each within the limits. Keep \
[#{{ ticket.number }}] in the subject so they reach the same ticket.

The rest of your message has been added to the ticket:
{{ link }}

Kind regards,
{{ mailbox.name or "Support" }}
"""
    + _SIGNATURE_TEXT
)

_LEFT_OUT_HTML = (
    """\
<p>Hello{% if recipient.name %} {{ recipient.name }}{% endif %},</p>
<p>Your message about ticket <strong>#{{ ticket.number }}</strong>: &ldquo;{{ ticket.title }}&rdquo; reached us,
but {% if files | length == 1 %}this attachment was{% else %}these attachments were{% endif %} too large
to keep and did not come through:</p>
<ul>
{%- for file in files %}
<li><strong>{{ file.filename }}</strong> ({{ file.human_size }}):
{% if file.reason == "file_too_large" %}larger than {{ limits.per_file_human }}, the limit per file
{%- else %}the attachments of one message may total at most {{ limits.per_message_human }}
{%- endif %}</li>
{%- endfor %}
</ul>
<p>Please send {% if files | length == 1 %}it{% else %}them{% endif %} another way (for example a link to
a file share), or in smaller parts: several replies to this email, each within the limits. Keep
[#{{ ticket.number }}] in the subject so they reach the same ticket.</p>
<p>The rest of your message has been added to the ticket: <a href="{{ link }}">follow your request</a></p>
<p>Kind regards,<br>{{ mailbox.name or "Support" }}</p>
"""
    + _SIGNATURE_HTML
)


def default_templates() -> Sequence[Template]:
    """Return the templates a fresh helpdesk starts with (seeded by `notify migrate`)."""
    return (
        Template(
            key="auto_reply",
            language=DEFAULT_LANGUAGE,
            subject="We received your request: {{ ticket.title }}",
            text=_AUTO_REPLY_TEXT,
            html=_AUTO_REPLY_HTML,
        ),
        Template(
            key="attachments_left_out",
            language=DEFAULT_LANGUAGE,
            subject="Attachments left out: {{ ticket.title }}",
            text=_LEFT_OUT_TEXT,
            html=_LEFT_OUT_HTML,
        ),
    )


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
