"""The templates a fresh helpdesk starts with, in English and Swedish (seeded by `notify migrate`, never over edits).

Mail to customers ends with the closing greeting, the name it is signed with and the signature; notices to
staff (`customer_replied`, `ticket_assigned`, `sla_warning`) are short and unsigned. Every tag a template
uses is listed in docs/notify.md.
"""

from collections.abc import Sequence

from notify.domain import Template

# The closing greeting, the name the mail is signed with, then the signature after the usual "-- " line.
# HTML: the signature's own HTML, or its text with the line breaks kept.
FOOTER_TEXT = (
    "{% if closing %}{{ closing }}\n{% endif %}{{ sender.name or mailbox.name or 'Support' }}\n"
    "{% if signature %}\n-- \n{{ signature }}\n{% endif %}"
)
FOOTER_HTML = (
    "<p>{% if closing %}{{ closing }}<br>{% endif %}{{ sender.name or mailbox.name or 'Support' }}</p>\n"
    '{% if signature %}<div class="signature">{{ signature }}</div>\n{% endif %}'
)

_HELLO = {"en": "Hello", "sv": "Hej"}


def _hello(language: str, who: str = "recipient") -> str:
    return f"{_HELLO[language]}{{% if {who}.name %}} {{{{ {who}.name }}}}{{% endif %}},"


_AUTO_REPLY = {
    "en": (
        "We received your request: {{ ticket.title }}",
        _hello("en", "ticket.requester")
        + """

Thank you for writing to us. We have received your request and registered it as ticket \
#{{ ticket.number }}: "{{ ticket.title }}".

A member of our team will get back to you as soon as possible. To add information, simply reply \
to this email and keep [#{{ ticket.number }}] in the subject.

You can follow your request here:
{{ link }}

""",
        "<p>"
        + _hello("en", "ticket.requester")
        + """</p>
<p>Thank you for writing to us. We have received your request and registered it as ticket
<strong>#{{ ticket.number }}</strong>: &ldquo;{{ ticket.title }}&rdquo;.</p>
<p>A member of our team will get back to you as soon as possible. To add information, simply reply
to this email and keep [#{{ ticket.number }}] in the subject.</p>
<p><a href="{{ link }}">Follow your request</a></p>
""",
    ),
    "sv": (
        "Vi har tagit emot ditt ärende: {{ ticket.title }}",
        _hello("sv", "ticket.requester")
        + """

Tack för att du kontaktade oss. Vi har tagit emot ditt ärende och registrerat det som ärende \
#{{ ticket.number }}: ”{{ ticket.title }}”.

Någon i vårt team återkommer till dig så snart som möjligt. Vill du lägga till något svarar du bara \
på det här mejlet och behåller [#{{ ticket.number }}] i ämnesraden.

Du kan följa ditt ärende här:
{{ link }}

""",
        "<p>"
        + _hello("sv", "ticket.requester")
        + """</p>
<p>Tack för att du kontaktade oss. Vi har tagit emot ditt ärende och registrerat det som ärende
<strong>#{{ ticket.number }}</strong>: &rdquo;{{ ticket.title }}&rdquo;.</p>
<p>Någon i vårt team återkommer till dig så snart som möjligt. Vill du lägga till något svarar du bara
på det här mejlet och behåller [#{{ ticket.number }}] i ämnesraden.</p>
<p><a href="{{ link }}">Följ ditt ärende</a></p>
""",
    ),
}

_LEFT_OUT = {
    "en": (
        "Attachments left out: {{ ticket.title }}",
        _hello("en")
        + """

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

""",
        "<p>"
        + _hello("en")
        + """</p>
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
""",
    ),
    "sv": (
        "Bilagor som inte kom med: {{ ticket.title }}",
        _hello("sv")
        + """

Ditt meddelande om ärende #{{ ticket.number }}: ”{{ ticket.title }}” har kommit fram, men \
{% if files | length == 1 %}den här bilagan var för stor{% else %}de här bilagorna var för stora{% endif %} \
för att sparas och kom inte med:
{% for file in files %}
- {{ file.filename }} ({{ file.human_size }}): \
{% if file.reason == "file_too_large" %}större än {{ limits.per_file_human }}, gränsen per fil\
{% else %}bilagorna i ett meddelande får tillsammans vara högst {{ limits.per_message_human }}{% endif %}
{%- endfor %}

Skicka {% if files | length == 1 %}den{% else %}dem{% endif %} på annat sätt (till exempel en länk till \
en fildelning), eller i mindre delar: flera svar på det här mejlet, vart och ett inom gränserna. Behåll \
[#{{ ticket.number }}] i ämnesraden så att de hamnar i samma ärende.

Resten av ditt meddelande har lagts till i ärendet:
{{ link }}

""",
        "<p>"
        + _hello("sv")
        + """</p>
<p>Ditt meddelande om ärende <strong>#{{ ticket.number }}</strong>: &rdquo;{{ ticket.title }}&rdquo; har kommit
fram, men {% if files | length == 1 %}den här bilagan var för stor{% else %}de här bilagorna var för stora{% endif %}
för att sparas och kom inte med:</p>
<ul>
{%- for file in files %}
<li><strong>{{ file.filename }}</strong> ({{ file.human_size }}):
{% if file.reason == "file_too_large" %}större än {{ limits.per_file_human }}, gränsen per fil
{%- else %}bilagorna i ett meddelande får tillsammans vara högst {{ limits.per_message_human }}
{%- endif %}</li>
{%- endfor %}
</ul>
<p>Skicka {% if files | length == 1 %}den{% else %}dem{% endif %} på annat sätt (till exempel en länk till
en fildelning), eller i mindre delar: flera svar på det här mejlet, vart och ett inom gränserna. Behåll
[#{{ ticket.number }}] i ämnesraden så att de hamnar i samma ärende.</p>
<p>Resten av ditt meddelande har lagts till i ärendet: <a href="{{ link }}">följ ditt ärende</a></p>
""",
    ),
}

# An agent's public reply. In link mode notify has taken the comment out of the context; the template
# says so too, so an edited copy that forgets the mode still shows nothing of it.
_AGENT_REPLY = {
    "en": (
        "{{ ticket.title }}",
        '{% if notify_mode == "link" %}'
        + _hello("en")
        + """

There is a new reply to your request #{{ ticket.number }}: "{{ ticket.title }}".

You can read it and answer here:
{{ link }}
{% else %}{{ comment.text }}

You can follow your request #{{ ticket.number }} here:
{{ link }}
{% endif %}
""",
        '{% if notify_mode == "link" %}<p>'
        + _hello("en")
        + """</p>
<p>There is a new reply to your request <strong>#{{ ticket.number }}</strong>: &ldquo;{{ ticket.title }}&rdquo;.</p>
<p><a href="{{ link }}">Read it and answer here</a></p>
{% else %}{% if comment.html %}<div class="reply">{{ comment.html | safe }}</div>
{% else %}<p style="white-space: pre-line">{{ comment.text }}</p>
{% endif %}<p><a href="{{ link }}">Follow your request</a></p>
{% endif %}""",
    ),
    "sv": (
        "{{ ticket.title }}",
        '{% if notify_mode == "link" %}'
        + _hello("sv")
        + """

Det finns ett nytt svar på ditt ärende #{{ ticket.number }}: ”{{ ticket.title }}”.

Du kan läsa det och svara här:
{{ link }}
{% else %}{{ comment.text }}

Du kan följa ditt ärende #{{ ticket.number }} här:
{{ link }}
{% endif %}
""",
        '{% if notify_mode == "link" %}<p>'
        + _hello("sv")
        + """</p>
<p>Det finns ett nytt svar på ditt ärende <strong>#{{ ticket.number }}</strong>: &rdquo;{{ ticket.title }}&rdquo;.</p>
<p><a href="{{ link }}">Läs det och svara här</a></p>
{% else %}{% if comment.html %}<div class="reply">{{ comment.html | safe }}</div>
{% else %}<p style="white-space: pre-line">{{ comment.text }}</p>
{% endif %}<p><a href="{{ link }}">Följ ditt ärende</a></p>
{% endif %}""",
    ),
}

_WHO_REPLIED = (
    "{{ comment.author.name or comment.author.email or ticket.requester.name or ticket.requester.email "
    "or 'The customer' }}"
)

_CUSTOMER_REPLIED = {
    "en": (
        "Customer replied: {{ ticket.title }}",
        _WHO_REPLIED
        + """ replied on ticket #{{ ticket.number }}: "{{ ticket.title }}".

{{ comment.text_new or comment.text }}

Open the ticket:
{{ agent_link }}
""",
        "<p><strong>"
        + _WHO_REPLIED
        + """</strong> replied on ticket <strong>#{{ ticket.number }}</strong>: &ldquo;{{ ticket.title }}&rdquo;.</p>
<blockquote style="white-space: pre-line">{{ comment.text_new or comment.text }}</blockquote>
<p><a href="{{ agent_link }}">Open the ticket</a></p>
""",
    ),
    "sv": (
        "Kunden har svarat: {{ ticket.title }}",
        _WHO_REPLIED.replace("The customer", "Kunden")
        + """ har svarat i ärende #{{ ticket.number }}: ”{{ ticket.title }}”.

{{ comment.text_new or comment.text }}

Öppna ärendet:
{{ agent_link }}
""",
        "<p><strong>"
        + _WHO_REPLIED.replace("The customer", "Kunden")
        + """</strong> har svarat i ärende <strong>#{{ ticket.number }}</strong>: &rdquo;{{ ticket.title }}&rdquo;.</p>
<blockquote style="white-space: pre-line">{{ comment.text_new or comment.text }}</blockquote>
<p><a href="{{ agent_link }}">Öppna ärendet</a></p>
""",
    ),
}

_REQUESTER = "{{ ticket.requester.name or ticket.requester.email }}"
_PRIORITY_SV = (
    '{% if ticket.priority == "high" %}hög{% elif ticket.priority == "medium" %}normal'
    '{% elif ticket.priority == "low" %}låg{% else %}{{ ticket.priority }}{% endif %}'
)

_TICKET_ASSIGNED = {
    "en": (
        "Assigned to you: {{ ticket.title }}",
        """Ticket #{{ ticket.number }}: "{{ ticket.title }}" has been assigned to you\
{% if actor.name %} by {{ actor.name }}{% endif %}.

Requester: """
        + _REQUESTER
        + """
Priority: {{ ticket.priority }}

Open the ticket:
{{ agent_link }}
""",
        """<p>Ticket <strong>#{{ ticket.number }}</strong>: &ldquo;{{ ticket.title }}&rdquo; has been assigned to you\
{% if actor.name %} by {{ actor.name }}{% endif %}.</p>
<p>Requester: """
        + _REQUESTER
        + """<br>Priority: {{ ticket.priority }}</p>
<p><a href="{{ agent_link }}">Open the ticket</a></p>
""",
    ),
    "sv": (
        "Tilldelat dig: {{ ticket.title }}",
        """Ärende #{{ ticket.number }}: ”{{ ticket.title }}” har tilldelats dig\
{% if actor.name %} av {{ actor.name }}{% endif %}.

Kund: """
        + _REQUESTER
        + """
Prioritet: """
        + _PRIORITY_SV
        + """

Öppna ärendet:
{{ agent_link }}
""",
        """<p>Ärende <strong>#{{ ticket.number }}</strong>: &rdquo;{{ ticket.title }}&rdquo; har tilldelats dig\
{% if actor.name %} av {{ actor.name }}{% endif %}.</p>
<p>Kund: """
        + _REQUESTER
        + "<br>Prioritet: "
        + _PRIORITY_SV
        + """</p>
<p><a href="{{ agent_link }}">Öppna ärendet</a></p>
""",
    ),
}

_WAITING_REMINDER = {
    "en": (
        "We are waiting for your answer: {{ ticket.title }}",
        _hello("en")
        + """

We are still waiting for your answer about your request #{{ ticket.number }}: "{{ ticket.title }}". \
We need it to go on helping you.

Simply reply to this email (keep [#{{ ticket.number }}] in the subject), or answer here:
{{ link }}

""",
        "<p>"
        + _hello("en")
        + """</p>
<p>We are still waiting for your answer about your request <strong>#{{ ticket.number }}</strong>:
&ldquo;{{ ticket.title }}&rdquo;. We need it to go on helping you.</p>
<p>Simply reply to this email (keep [#{{ ticket.number }}] in the subject), or
<a href="{{ link }}">answer here</a>.</p>
""",
    ),
    "sv": (
        "Vi väntar på ditt svar: {{ ticket.title }}",
        _hello("sv")
        + """

Vi väntar fortfarande på ditt svar om ditt ärende #{{ ticket.number }}: ”{{ ticket.title }}”. \
Vi behöver det för att kunna hjälpa dig vidare.

Svara bara på det här mejlet (behåll [#{{ ticket.number }}] i ämnesraden) eller svara här:
{{ link }}

""",
        "<p>"
        + _hello("sv")
        + """</p>
<p>Vi väntar fortfarande på ditt svar om ditt ärende <strong>#{{ ticket.number }}</strong>:
&rdquo;{{ ticket.title }}&rdquo;. Vi behöver det för att kunna hjälpa dig vidare.</p>
<p>Svara bara på det här mejlet (behåll [#{{ ticket.number }}] i ämnesraden) eller
<a href="{{ link }}">svara här</a>.</p>
""",
    ),
}

_METRIC = {
    "en": '{% if sla.metric == "first_response" %}first response{% elif sla.metric == "resolution" %}resolution'
    "{% else %}{{ sla.metric }}{% endif %}",
    "sv": '{% if sla.metric == "first_response" %}första svar{% elif sla.metric == "resolution" %}lösning'
    "{% else %}{{ sla.metric }}{% endif %}",
}

_SLA_WARNING = {
    "en": (
        '{% if sla.stage == "breached" %}SLA breached{% else %}SLA due soon{% endif %}: {{ ticket.title }}',
        "The "
        + _METRIC["en"]
        + """ target of ticket #{{ ticket.number }}: "{{ ticket.title }}" \
{% if sla.stage == "breached" %}was due at {{ sla.due_at }} and is breached{% else %}falls due at \
{{ sla.due_at }}{% endif %}.

Open the ticket:
{{ agent_link }}
""",
        "<p>The "
        + _METRIC["en"]
        + """ target of ticket <strong>#{{ ticket.number }}</strong>: &ldquo;{{ ticket.title }}&rdquo;
{% if sla.stage == "breached" %}was due at <strong>{{ sla.due_at }}</strong> and is breached\
{% else %}falls due at <strong>{{ sla.due_at }}</strong>{% endif %}.</p>
<p><a href="{{ agent_link }}">Open the ticket</a></p>
""",
    ),
    "sv": (
        '{% if sla.stage == "breached" %}SLA-målet har passerats{% else %}SLA-målet närmar sig{% endif %}: '
        "{{ ticket.title }}",
        "Målet för "
        + _METRIC["sv"]
        + """ i ärende #{{ ticket.number }}: ”{{ ticket.title }}” \
{% if sla.stage == "breached" %}skulle vara uppfyllt {{ sla.due_at }} och har passerats\
{% else %}ska vara uppfyllt senast {{ sla.due_at }}{% endif %}.

Öppna ärendet:
{{ agent_link }}
""",
        "<p>Målet för "
        + _METRIC["sv"]
        + """ i ärende <strong>#{{ ticket.number }}</strong>: &rdquo;{{ ticket.title }}&rdquo;
{% if sla.stage == "breached" %}skulle vara uppfyllt <strong>{{ sla.due_at }}</strong> och har passerats\
{% else %}ska vara uppfyllt senast <strong>{{ sla.due_at }}</strong>{% endif %}.</p>
<p><a href="{{ agent_link }}">Öppna ärendet</a></p>
""",
    ),
}

# A customer's sign-in link (`POST /sign-in-links`): no ticket, so no ticket token and no signature.
_SIGN_IN_LINK = {
    "en": (
        "Your sign-in link",
        """Hello,

Someone, hopefully you, asked to sign in to our help centre with this address. Open this link to sign in:

{{ link }}

The link works once, for 15 minutes. If you did not ask for it, ignore this email: nobody can sign in \
without the link.

{{ sender.name }}
""",
        """<p>Hello,</p>
<p>Someone, hopefully you, asked to sign in to our help centre with this address.</p>
<p><a href="{{ link }}">Sign in</a></p>
<p>The link works once, for 15 minutes. If you did not ask for it, ignore this email: nobody can sign in
without the link.</p>
<p>{{ sender.name }}</p>
""",
    ),
    "sv": (
        "Din inloggningslänk",
        """Hej,

Någon, förhoppningsvis du, har bett om att få logga in i vårt kundcenter med den här adressen. Öppna länken \
för att logga in:

{{ link }}

Länken fungerar en gång, i 15 minuter. Om du inte har bett om den kan du strunta i det här mejlet: ingen \
kan logga in utan länken.

{{ sender.name }}
""",
        """<p>Hej,</p>
<p>Någon, förhoppningsvis du, har bett om att få logga in i vårt kundcenter med den här adressen.</p>
<p><a href="{{ link }}">Logga in</a></p>
<p>Länken fungerar en gång, i 15 minuter. Om du inte har bett om den kan du strunta i det här mejlet: ingen
kan logga in utan länken.</p>
<p>{{ sender.name }}</p>
""",
    ),
}

# Key -> language -> (subject, text, html), and whether the mail is signed (mail to customers is).
_DEFAULTS: dict[str, tuple[dict[str, tuple[str, str, str]], bool]] = {
    "auto_reply": (_AUTO_REPLY, True),
    "attachments_left_out": (_LEFT_OUT, True),
    "agent_reply": (_AGENT_REPLY, True),
    "waiting_reminder": (_WAITING_REMINDER, True),
    "customer_replied": (_CUSTOMER_REPLIED, False),
    "ticket_assigned": (_TICKET_ASSIGNED, False),
    "sla_warning": (_SLA_WARNING, False),
    "sign_in_link": (_SIGN_IN_LINK, False),
}


def default_templates() -> Sequence[Template]:
    """Return the templates a fresh helpdesk starts with (seeded by `notify migrate`)."""
    return tuple(
        Template(
            key=key,
            language=language,
            subject=subject,
            text=text + FOOTER_TEXT if signed else text,
            html=html + FOOTER_HTML if signed else html,
        )
        for key, (languages, signed) in _DEFAULTS.items()
        for language, (subject, text, html) in languages.items()
    )
