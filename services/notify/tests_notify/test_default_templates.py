"""The templates a fresh helpdesk starts with, in English and Swedish, filled in as triggers' commands fill them."""

import re

import pytest
from notify.domain import Signature, render, without_content
from notify.seeds import default_templates

from tests_notify.builders import ticket
from tests_notify.fakes import FakeStore

KEYS = (
    "auto_reply",
    "attachments_left_out",
    "agent_reply",
    "customer_replied",
    "ticket_assigned",
    "waiting_reminder",
    "sla_warning",
)
TEMPLATES = {(t.key, t.language): t for t in default_templates()}
LINK = "https://help.example.com/t/abc"
AGENT_LINK = "https://help.example.com/agent/tickets/1001"
SIGNATURE = Signature(scope="general", text="Acme & Co <support>\nStockholm")

# What notify adds to every context, and what triggers puts in for each template (docs/notify.md).
NOTIFY_ADDS = {
    "recipient": {"email": "alice@example.com", "name": "Alice Andersson"},
    "mailbox": {"address": "support@localhost", "name": "Acme Support", "signature": ""},
    "sender": {"name": "Acme Support", "email": "support@localhost"},
    "closing": "Best regards,",
    "signature": SIGNATURE.value(),
    "notify_mode": "email",
}
COMMENT = {
    "comment_id": "c-1",
    "author": {"role": "customer", "email": "alice@example.com", "name": "Alice Andersson"},
    "text": "It is still smoking.\n\n> quoted history",
    "text_new": "It is still smoking.",
    "html": "<p>It is still <b>smoking</b>.</p>",
}
FROM_TRIGGERS = {
    "auto_reply": {"ticket": ticket(), "link": LINK},
    "attachments_left_out": {
        "ticket": ticket(),
        "link": LINK,
        "files": [{"filename": "a.pdf", "human_size": "6 MB", "reason": "file_too_large"}],
        "limits": {"per_file_human": "5 MB", "per_message_human": "20 MB"},
    },
    "agent_reply": {"ticket": ticket(), "link": LINK, "comment": COMMENT},
    "customer_replied": {"ticket": ticket(), "agent_link": AGENT_LINK, "comment": COMMENT},
    "ticket_assigned": {"ticket": ticket(), "agent_link": AGENT_LINK, "actor": {"role": "agent", "name": "Cia"}},
    "waiting_reminder": {"ticket": ticket(), "link": LINK},
    "sla_warning": {
        "ticket": ticket(),
        "agent_link": AGENT_LINK,
        "sla": {"metric": "first_response", "stage": "near_breach", "due_at": "2026-11-23T12:00:00Z"},
    },
}
TO_CUSTOMERS = ("auto_reply", "attachments_left_out", "agent_reply", "waiting_reminder")


def filled(key, language, **extra):
    return render(TEMPLATES[key, language], {**NOTIFY_ADDS, **FROM_TRIGGERS[key], **extra}, ticket_number=1001)


def test_every_default_template_exists_in_english_and_swedish():
    assert set(TEMPLATES) == {(key, language) for key in (*KEYS, "sign_in_link") for language in ("en", "sv")}


@pytest.mark.parametrize("language", ["en", "sv"])
@pytest.mark.parametrize("key", KEYS)
def test_every_default_template_fills_in_with_no_tag_left_and_nothing_missing(key, language):
    rendered = filled(key, language)

    for part in (rendered.subject, rendered.text, rendered.html):
        assert part is not None
        assert not re.search(r"\{[{%]|[}%]\}|None|Undefined", part), part
    assert rendered.subject.startswith("[#1001] ")
    assert "#1001" in rendered.text


@pytest.mark.parametrize("language", ["en", "sv"])
@pytest.mark.parametrize("key", TO_CUSTOMERS)
def test_mail_to_customers_ends_with_the_closing_the_name_and_the_signature_escaped_in_html(key, language):
    rendered = filled(key, language, closing="Hälsningar,")

    assert rendered.text.endswith("Hälsningar,\nAcme Support\n\n-- \nAcme & Co <support>\nStockholm\n"), key
    assert rendered.html is not None
    assert rendered.html.rstrip().endswith(
        '<p>Hälsningar,<br>Acme Support</p>\n<div class="signature">Acme &amp; Co &lt;support&gt;<br>\nStockholm</div>'
    ), key


@pytest.mark.parametrize("key", ["customer_replied", "ticket_assigned", "sla_warning"])
def test_notices_to_staff_are_not_signed(key):
    rendered = filled(key, "en")

    assert "Stockholm" not in rendered.text and "Best regards" not in rendered.text


def test_an_agents_reply_carries_the_reply_and_the_link():
    rendered = filled("agent_reply", "en")

    assert rendered.subject == "[#1001] Printer on fire"
    assert rendered.text.startswith("It is still smoking.\n\n> quoted history\n\nYou can follow your request #1001")
    assert LINK in rendered.text
    assert rendered.html is not None and "<p>It is still <b>smoking</b>.</p>" in rendered.html


def test_an_agents_reply_without_html_shows_its_text_escaped():
    comment = {**COMMENT, "html": None, "text": "1 < 2 & so on"}

    rendered = filled("agent_reply", "sv", comment=comment)

    assert rendered.html is not None and "1 &lt; 2 &amp; so on" in rendered.html
    assert "Du kan följa ditt ärende #1001 här" in rendered.text


@pytest.mark.parametrize("language", ["en", "sv"])
def test_an_agents_reply_in_link_mode_says_only_that_there_is_a_reply(language):
    context = without_content({**NOTIFY_ADDS, **FROM_TRIGGERS["agent_reply"], "notify_mode": "link"})

    rendered = render(TEMPLATES["agent_reply", language], context, ticket_number=1001)

    assert rendered.html is not None
    for body in (rendered.text, rendered.html):
        assert "smoking" not in body and LINK in body
    assert ("new reply" if language == "en" else "nytt svar") in rendered.text


def test_the_handler_hears_that_the_customer_replied_with_the_new_text_and_the_agent_link():
    rendered = filled("customer_replied", "en")

    assert rendered.subject == "[#1001] Customer replied: Printer on fire"
    assert rendered.text.startswith('Alice Andersson replied on ticket #1001: "Printer on fire".')
    assert "It is still smoking." in rendered.text and "quoted history" not in rendered.text
    assert AGENT_LINK in rendered.text and LINK not in rendered.text


def test_the_handler_hears_a_ticket_was_assigned_to_them_and_by_whom():
    assert filled("ticket_assigned", "sv").text.startswith("Ärende #1001: ”Printer on fire” har tilldelats dig av Cia.")
    assert "Prioritet: hög" in filled("ticket_assigned", "sv").text
    assert "Requester: Alice Andersson" in filled("ticket_assigned", "en").text


def test_the_customer_is_reminded_that_we_wait_for_their_answer():
    assert "We are still waiting for your answer" in filled("waiting_reminder", "en").text
    assert "Vi väntar fortfarande på ditt svar" in filled("waiting_reminder", "sv").text


def test_an_sla_warning_names_the_target_and_when_it_falls_due():
    near = filled("sla_warning", "en")
    breached = filled("sla_warning", "sv", sla={"metric": "resolution", "stage": "breached", "due_at": "12:00"})

    assert near.subject == "[#1001] SLA due soon: Printer on fire"
    assert "The first response target of ticket #1001" in near.text and "2026-11-23T12:00:00Z" in near.text
    assert breached.subject == "[#1001] SLA-målet har passerats: Printer on fire"
    assert "Målet för lösning i ärende #1001" in breached.text and "12:00 och har passerats" in breached.text


async def test_seeding_adds_what_is_missing_and_never_overwrites_an_edit():
    store = FakeStore(templates=[TEMPLATES["auto_reply", "en"].model_copy(update={"subject": "Edited"})])

    added = await store.seed_templates(default_templates())

    assert added == len(TEMPLATES) - 1
    assert (await store.find_template("auto_reply", ["en"])).subject == "Edited"
