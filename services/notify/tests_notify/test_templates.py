"""Rendering templates safely, and the mail they become."""

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from contracts.message_ids import ticket_id_from_message_id
from notify.domain import (
    Rendered,
    RenderError,
    Template,
    build_message,
    languages_to_try,
    render,
    subject_with_token,
)
from notify.seeds import default_templates

AUTO_REPLY = default_templates()[0]
LEFT_OUT = next(t for t in default_templates() if t.key == "attachments_left_out")
CONTEXT = {
    "ticket": {"number": 1001, "title": "Printer on fire", "requester": {"name": "Alice"}},
    "link": "https://help.example.com/t/abc",
}


def test_the_auto_reply_subject_carries_the_ticket_number():
    rendered = render(AUTO_REPLY, CONTEXT, ticket_number=1001)

    assert rendered.subject == "[#1001] We received your request: Printer on fire"


def test_the_auto_reply_quotes_the_ticket_number_and_the_link_in_both_bodies():
    rendered = render(AUTO_REPLY, CONTEXT, ticket_number=1001)

    for body in (rendered.text, rendered.html):
        assert "#1001" in body
        assert "https://help.example.com/t/abc" in body


def test_a_subject_that_already_has_the_token_gets_no_second_one():
    assert subject_with_token("Re: [#1001] Printer", 1001) == "Re: [#1001] Printer"


def test_a_token_of_another_ticket_in_the_subject_is_defused():
    assert subject_with_token("About [#999]", 1001) == "[#1001] About #999"


def test_a_subject_is_always_one_line():
    assert subject_with_token("Hello\r\nBcc: victim@example.com", 7) == "[#7] Hello Bcc: victim@example.com"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ticket.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ticket.update({'number': 1}) }}",
    ],
)
def test_the_sandbox_refuses_templates_that_reach_for_python_internals(source):
    hostile = Template(key="hostile", subject="hi", text=source)

    with pytest.raises(RenderError, match="unsafe"):
        render(hostile, CONTEXT, ticket_number=1001)


def test_tags_are_escaped_in_html_but_not_in_text():
    template = Template(
        key="t", subject="{{ ticket.title }}", text="{{ ticket.title }}", html="<p>{{ ticket.title }}</p>"
    )
    context = {"ticket": {"title": "<script>alert(1)</script> & co"}}

    rendered = render(template, context, ticket_number=5)

    assert rendered.html == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>"
    assert rendered.text == "<script>alert(1)</script> & co"
    assert rendered.subject == "[#5] <script>alert(1)</script> & co"


def test_a_tag_for_a_missing_field_renders_empty():
    template = Template(key="t", subject="Hi {{ contact.name }}", text="[{{ ticket.sla.due.at }}]")

    rendered = render(template, {"ticket": {}}, ticket_number=5)

    assert rendered.subject == "[#5] Hi"
    assert rendered.text == "[]"


def test_a_template_with_broken_syntax_is_reported_not_sent():
    with pytest.raises(RenderError, match="text"):
        render(Template(key="t", subject="s", text="{% if %}"), {}, ticket_number=5)


def test_a_template_is_looked_up_in_the_regional_language_then_the_language_then_english():
    assert languages_to_try("sv-SE") == ["sv-SE", "sv", "en"]
    assert languages_to_try("en") == ["en"]


def build(**changes):
    fields = {
        "to_email": "alice@example.com",
        "to_name": "Alice Andersson",
        "mailbox": "support@localhost",
        "mailbox_name": "Acme Support",
        "message_id": "hd.t1001.abc.0123456789abcdef0123@helpdesk.test",
        "ticket_number": 1001,
        "mail_domain": "helpdesk.test",
        "date": datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
        "in_reply_to": "CAF1234@mail.example.com",
        "references": ["CAF0001@mail.example.com"],
        "auto_submitted": "auto-replied",
    }
    fields.update(changes)
    return build_message(Rendered(subject="[#1001] Hi", text="Hello", html="<p>Hello</p>"), **fields)


def reparsed(msg):
    return message_from_bytes(msg.as_bytes(), policy=policy.default)


def test_the_mail_comes_from_the_mailbox_and_replies_go_back_to_it():
    msg = reparsed(build())

    assert msg["From"].addresses[0].addr_spec == "support@localhost"
    assert msg["From"].addresses[0].display_name == "Acme Support"
    assert msg["Reply-To"].addresses[0].addr_spec == "support@localhost"
    assert msg["To"].addresses[0].addr_spec == "alice@example.com"


def test_a_mailbox_without_a_display_name_signs_as_support():
    assert reparsed(build(mailbox_name=None))["From"].addresses[0].display_name == "Support"


def test_the_mail_threads_under_the_customers_message():
    msg = reparsed(build())

    assert msg["In-Reply-To"] == "<CAF1234@mail.example.com>"
    assert msg["References"] == "<CAF0001@mail.example.com> <CAF1234@mail.example.com>"
    assert msg["Message-ID"] == "<hd.t1001.abc.0123456789abcdef0123@helpdesk.test>"


def test_an_auto_reply_says_so_and_asks_for_no_auto_reply_back():
    msg = reparsed(build())

    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Helpdesk-Loop"] == "helpdesk.test"
    assert msg["X-Helpdesk-Ticket"] == "1001"


def test_a_mail_a_person_sent_has_no_auto_submitted_header():
    assert reparsed(build(auto_submitted=None))["Auto-Submitted"] is None


def test_the_mail_has_a_text_and_an_html_alternative():
    msg = reparsed(build())

    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "Hello"
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hello</p>"


def test_a_display_name_cannot_smuggle_in_a_header():
    msg = reparsed(build(to_name="Eve\r\nBcc: victim@example.com"))

    assert msg["Bcc"] is None
    assert msg["To"].addresses[0].addr_spec == "alice@example.com"


def test_our_message_id_names_the_ticket_only_for_who_holds_the_secret():
    from contracts.message_ids import make_message_id

    notification_id = "7d8c0c2e-2f1b"
    mid = make_message_id(ticket_id="t1001", token=notification_id, secret="s" * 20, domain="helpdesk.test")
    msg = reparsed(build(message_id=mid))

    assert ticket_id_from_message_id(msg["Message-ID"], "s" * 20) == "t1001"
    assert ticket_id_from_message_id(msg["Message-ID"], "another-secret-xyz") is None


LEFT_OUT_CONTEXT = {
    "ticket": {"number": 1001, "title": "Ritning över källaren"},
    "recipient": {"email": "asa@example.se", "name": "Åsa Öberg"},
    "link": "https://help.example.com/t/abc",
    "files": [
        {"filename": "ritning-källare.pdf", "human_size": "6.3 MB", "reason": "file_too_large"},
        {"filename": "bilder<1>.zip", "human_size": "2.9 MB", "reason": "message_total_too_large"},
    ],
    "limits": {"per_file_human": "5 MB", "per_message_human": "20 MB"},
    "mailbox": {"name": "Kundtjänst Åre", "signature": ""},
}


def test_the_notice_of_attachments_left_out_names_each_file_its_size_and_the_limit_it_broke():
    rendered = render(LEFT_OUT, LEFT_OUT_CONTEXT, ticket_number=1001)

    assert rendered.subject == "[#1001] Attachments left out: Ritning över källaren"
    assert "Hello Åsa Öberg," in rendered.text
    assert "- ritning-källare.pdf (6.3 MB): larger than 5 MB, the limit per file" in rendered.text
    assert "- bilder<1>.zip (2.9 MB): the attachments of one message may total at most 20 MB" in rendered.text
    assert "another way" in rendered.text and "smaller parts" in rendered.text
    assert rendered.text.rstrip().endswith("Kundtjänst Åre")
    assert rendered.html is not None
    assert "<li><strong>ritning-källare.pdf</strong> (6.3 MB):" in rendered.html
    assert "bilder&lt;1&gt;.zip" in rendered.html and "bilder<1>" not in rendered.html
    assert "https://help.example.com/t/abc" in rendered.html


def test_the_notice_of_one_file_speaks_of_it_in_the_singular():
    context = {**LEFT_OUT_CONTEXT, "files": LEFT_OUT_CONTEXT["files"][:1]}

    rendered = render(LEFT_OUT, context, ticket_number=1001)

    assert "this attachment was too large" in rendered.text and "Please send it another way" in rendered.text


def test_a_template_written_for_the_mailbox_signature_still_ends_with_it_escaped_in_html():
    old = Template(
        key="old",
        subject="s",
        text="Hi\n{% if mailbox.signature %}\n-- \n{{ mailbox.signature }}\n{% endif %}",
        html="<p>Hi</p>{% if mailbox.signature %}<p>{{ mailbox.signature }}</p>{% endif %}",
    )
    context = {"mailbox": {"name": "Acme", "signature": "Acme & Co <support>\nStockholm"}}

    rendered = render(old, context, ticket_number=1001)

    assert rendered.text.endswith("\n-- \nAcme & Co <support>\nStockholm\n")
    assert rendered.html is not None
    assert rendered.html.endswith("<p>Acme &amp; Co &lt;support&gt;\nStockholm</p>")
