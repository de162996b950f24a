import email.message
import re

import pytest
from hdkit.sanitise import sanitise_html
from ingest import domain
from ingest.domain import UnreadableEmail, dedupe_key, html_to_text, parse_email, safe_filename, split_reply

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
    assert "<script" not in parsed.html and "onerror" not in parsed.html
    assert not re.search(r"\ssrc=[\"']https://track.example", parsed.html)  # kept as data-remote-src only
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


@pytest.mark.parametrize(
    ("attribution", "history"),
    [
        ("On Mon, 2 Mar 2026 at 10:14, Support <support@helpdesk.localhost> wrote:", "> Try again."),
        ("Den mån 2 mars 2026 kl 10:14 skrev Support <support@helpdesk.localhost>:", "> Prova igen."),
        ("tir. 3. mar. 2026 kl. 10:14 skrev Support <support@helpdesk.localhost>:", "> Prøv igjen."),
        ("Den 3. mar. 2026 kl. 10.14 skrev Support <support@helpdesk.localhost>:", "> Prøv igen."),
        ("-----Original Message-----", "From: Support\nSent: Monday\n\nTry again."),
        ("Från: Support <support@helpdesk.localhost>", "Skickat: den 2 mars 2026 10:14\nÄmne: x\n\nProva."),
        ("Fra: Support <support@helpdesk.localhost>", "Sendt: 2. marts 2026 10:14\nEmne: x\n\nPrøv igen."),
    ],
)
def test_quoted_history_of_a_reply_is_folded_away_in_any_of_our_languages(attribution: str, history: str) -> None:
    new, quoted = split_reply(f"Tack, det fungerar nu.\n\n{attribution}\n{history}\n")
    assert new == "Tack, det fungerar nu."
    assert quoted.startswith(attribution)


def test_a_signature_after_dash_dash_space_is_folded_with_the_history() -> None:
    new, quoted = split_reply("Klart.\n\n-- \nÅsa Lind\nEkonomi\n\n> gammalt\n")
    assert new == "Klart."
    assert "Åsa Lind" in quoted and "gammalt" in quoted


def test_a_message_that_is_only_a_quote_is_kept_whole_as_new_text() -> None:
    text = "On Mon, 2 Mar 2026, Anna <a@example.com> wrote:\n> only history\n"
    assert split_reply(text) == (text, "")


def test_a_forwarded_message_is_not_quoted_history() -> None:
    text = "FYI\n\n---------- Forwarded message ---------\nFrom: Shop <s@example.com>\nSent: today\n\nOrder 5\n"
    assert split_reply(text) == (text, "")


def test_answers_written_between_quoted_lines_are_not_folded_away() -> None:
    text = "> Which printer?\nThe one on floor 3.\n> Since when?\nMonday."
    assert split_reply(text) == (text, "")


def test_html_only_mail_keeps_paragraphs_list_items_and_link_text_but_no_css_or_script() -> None:
    text = html_to_text(
        "<style>p{color:red}</style><p>Hej</p><p>rad 1<br>rad 2</p><ol><li>ett</li><li>två</li></ol>"
        '<script>x()</script><a href="https://e.example">länken</a>'
    )
    assert text == "Hej\n\nrad 1\nrad 2\n\n- ett\n- två\n\nlänken"


@pytest.mark.parametrize(
    ("given", "content_type", "expected"),
    [
        ("../../etc/passwd", "text/plain", "passwd"),
        ("C:\\Users\\x\\faktura.pdf", "application/pdf", "faktura.pdf"),
        ("rapport\x00\x1f.pdf", "application/pdf", "rapport.pdf"),
        (None, "application/ms-tnef", "winmail.dat"),
        (None, "text/calendar", "invite.ics"),
        (None, "message/rfc822", "forwarded-message.eml"),
        ("a" * 300 + ".pdf", "application/pdf", "a" * 196 + ".pdf"),
    ],
)
def test_attachment_filenames_are_made_safe_and_given_when_missing(
    given: str | None, content_type: str, expected: str
) -> None:
    assert safe_filename(given, content_type) == expected


def test_a_header_the_mail_library_cannot_read_gets_a_best_effort_value(monkeypatch: pytest.MonkeyPatch) -> None:
    original_get = email.message.Message.get

    def get(self: email.message.Message, name: str, failobj: object = None) -> object:
        if name.lower() in {"from", "subject", "message-id"}:
            raise IndexError("header parser bug")  # as older Pythons did on some malformed encoded words
        return original_get(self, name, failobj)

    monkeypatch.setattr(email.message.Message, "get", get)
    parsed = parse_email(
        raw("From: =?utf-8?Q?=C3=85sa?= <asa@example.se>\nSubject: =?utf-8?Q?Hj=C3=A4lp?=\nMessage-ID: <m@x>"),
        loop_domain=LOOP,
    )
    assert (parsed.sender.email, parsed.sender.name, parsed.subject) == ("asa@example.se", "Åsa", "Hjälp")
    assert parsed.message_id == "m@x"


def test_an_unexpected_failure_while_reading_the_body_becomes_a_quarantine_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(msg: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(domain, "_bodies", explode)
    with pytest.raises(UnreadableEmail, match="cannot decode message: RuntimeError"):
        parse_email(raw("From: a@example.com\nSubject: x"), loop_domain=LOOP)


def test_a_reply_exposes_its_new_text_and_keeps_the_full_text() -> None:
    parsed = parse_email(
        raw("From: a@example.com\nSubject: Re: x", "Thanks!\r\n\r\nOn Mon, Support <s@x> wrote:\r\n> old\r\n"),
        loop_domain=LOOP,
    )
    assert parsed.text_new == "Thanks!"
    assert "> old" in parsed.text


def test_a_bounce_names_the_failed_recipient_and_the_notification_it_was_for() -> None:
    report = raw(
        "From: MAILER-DAEMON@mx.example\nSubject: Undelivered Mail\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        "--b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; Gone@Example.se\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <hd.1@helpdesk.localhost>\r\n\r\n--b--\r\n",
    )
    bounce = parse_email(report, loop_domain=LOOP).bounce
    assert bounce is not None
    assert (bounce.recipients, bounce.action, bounce.status, bounce.permanent) == (
        ("gone@example.se",),
        "failed",
        "5.1.1",
        True,
    )
    assert bounce.diagnostic == "550 5.1.1 User unknown"
    assert bounce.original_message_id == "hd.1@helpdesk.localhost"


def test_a_person_s_mail_has_no_bounce() -> None:
    assert parse_email(raw("From: a@example.com\nSubject: x"), loop_domain=LOOP).bounce is None


def test_names_in_to_and_cc_are_decoded_from_encoded_words_and_raw_8bit_bytes() -> None:
    raw = (
        "From: =?utf-8?B?w4VzYSDDlnN0bHVuZA==?= <asa@example.se>\r\n"
        "To: =?iso-8859-1?Q?J=F6rgen_H=E5kansson?= <jorgen@example.se>, support@localhost\r\n"
        'Cc: "Bj\xc3\xb8rn" <bjorn@example.no>\r\n'
        'Cc: "S\xf8ren" <soren@example.dk>\r\n'
        "Subject: =?utf-8?Q?Skrivaren_=C3=A4r?= =?utf-8?Q?_trasig?= igen\r\n"
        "Message-ID: <names@example.se>\r\n\r\nHej\r\n"
    ).encode("latin-1")
    parsed = parse_email(raw, loop_domain="helpdesk.localhost")
    assert parsed.sender.name == "Åsa Östlund"
    to = [(a.email, a.name) for a in parsed.to]
    assert to == [("jorgen@example.se", "Jörgen Håkansson"), ("support@localhost", "")]
    assert [a.name for a in parsed.cc] == ["Bjørn", "Søren"]  # raw UTF-8; raw windows-1252
    assert parsed.subject == "Skrivaren är trasig igen"


def test_a_remote_image_is_not_loaded_but_its_address_is_kept_for_an_agent_who_asks() -> None:
    html = sanitise_html(
        '<p>Hi<img src="https://track.example/open.gif?u=1" alt="logo" onerror="x()">'
        '<img data-remote-src="javascript:alert(1)"><img src="cid:inline"></p>'
    )
    assert 'data-remote-src="https://track.example/open.gif?u=1"' in html
    assert not re.search(r"\ssrc=\"https?:", html) and "javascript" not in html and "onerror" not in html
    assert 'src="cid:inline"' in html
