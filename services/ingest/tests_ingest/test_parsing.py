import pytest
from hdkit.sanitise import sanitise_html
from ingest.domain import UnreadableEmail, dedupe_key, parse_email

LOOP = "helpdesk.localhost"


def raw(headers: str, body: str = "Hello\r\n", charset_body: bytes | None = None) -> bytes:
    head = headers.strip().replace("\n", "\r\n") + "\r\n\r\n"
    return head.encode() + (charset_body if charset_body is not None else body.encode())


def test_scandinavian_letters_survive_a_latin1_body_and_encoded_word_headers() -> None:
    message = raw(
        """From: =?iso-8859-1?q?J=F6rgen_=C5berg?= <Jorgen@Example.se>
To: support@localhost
Subject: =?utf-8?b?SGrDpGxwIG1lZCBmYWt0dXJh?=
Message-ID: <abc@x>
Content-Type: text/plain; charset=iso-8859-1""",
        charset_body="Blåbærgrød, åäö ÆØÅ".encode("latin-1"),
    )
    parsed = parse_email(message, loop_domain=LOOP)
    assert parsed.sender.email == "jorgen@example.se"
    assert parsed.sender.name == "Jörgen Åberg"
    assert parsed.subject == "Hjälp med faktura"
    assert parsed.text == "Blåbærgrød, åäö ÆØÅ"


def test_reply_headers_become_threading_hints_in_order() -> None:
    parsed = parse_email(
        raw(
            """From: a@example.com
Subject: Re: [#12] Printer
Message-ID: <r2@example.com>
In-Reply-To: <hd.t.n.sig@helpdesk.localhost>
References: <orig@example.com> <hd.t.n.sig@helpdesk.localhost>"""
        ),
        loop_domain=LOOP,
    )
    assert parsed.in_reply_to == ("hd.t.n.sig@helpdesk.localhost",)
    assert parsed.references == ("orig@example.com", "hd.t.n.sig@helpdesk.localhost")
    assert parsed.thread_key() == "orig@example.com"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted"),
        ("Precedence: bulk", "Precedence"),
        ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
        ("X-Helpdesk-Loop: helpdesk.localhost", "loop header"),
        ("List-Id: <list.example.com>", "mailing-list"),
        ("Return-Path: <>", "Return-Path"),
    ],
)
def test_automatic_mail_is_recognised_so_it_is_never_auto_answered(header: str, reason: str) -> None:
    parsed = parse_email(raw(f"From: a@example.com\nSubject: x\n{header}"), loop_domain=LOOP)
    assert parsed.auto_submitted
    assert parsed.auto_reason and reason in parsed.auto_reason


def test_mail_from_a_mailer_daemon_counts_as_automatic_and_a_person_does_not() -> None:
    assert parse_email(raw("From: MAILER-DAEMON@example.com\nSubject: x"), loop_domain=LOOP).auto_submitted
    assert not parse_email(
        raw("From: anna@example.com\nSubject: x\nAuto-Submitted: no"), loop_domain=LOOP
    ).auto_submitted


def test_html_only_mail_gets_readable_text_and_sanitised_html() -> None:
    parsed = parse_email(
        raw(
            "From: a@example.com\nSubject: x\nContent-Type: text/html; charset=utf-8",
            "<p>Hej <b>där</b></p><script>alert(1)</script><img src='https://track.example/x.gif' onerror='x()'>",
        ),
        loop_domain=LOOP,
    )
    assert parsed.text == "Hej där"
    assert parsed.html is not None
    assert "<script" not in parsed.html and "onerror" not in parsed.html and "track.example" not in parsed.html
    assert "<b>där</b>" in parsed.html


def test_sanitising_keeps_inline_images_and_safe_links() -> None:
    html = sanitise_html('<a href="javascript:alert(1)">x</a><a href="https://ok.example">y</a><img src="cid:logo">')
    assert "javascript" not in html
    assert 'href="https://ok.example"' in html
    assert 'src="cid:logo"' in html


def test_a_message_without_any_sender_is_unreadable_with_the_reason() -> None:
    with pytest.raises(UnreadableEmail, match="sender"):
        parse_email(raw("Subject: nobody\nTo: support@localhost"), loop_domain=LOOP)


def test_empty_bytes_are_unreadable() -> None:
    with pytest.raises(UnreadableEmail, match="empty"):
        parse_email(b"  \r\n", loop_domain=LOOP)


def test_an_unknown_charset_falls_back_instead_of_failing() -> None:
    parsed = parse_email(
        raw(
            "From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=x-nonsense",
            charset_body="ø".encode(),
        ),
        loop_domain=LOOP,
    )
    assert parsed.text == "ø"


def test_the_same_message_id_on_the_same_mailbox_is_the_same_delivery() -> None:
    assert dedupe_key("Support@localhost", b"a", "m@x") == dedupe_key("support@localhost", b"b", "m@x")
    assert dedupe_key("support@localhost", b"a", "m@x") != dedupe_key("sales@localhost", b"a", "m@x")
    assert dedupe_key("s@l", b"a", None) != dedupe_key("s@l", b"b", None)
