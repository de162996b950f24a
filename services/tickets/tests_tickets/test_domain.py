from datetime import UTC, datetime
from typing import Any

from contracts.models import Address, LeftOutAttachment
from tickets.config import default_config
from tickets.domain import (
    Candidates,
    Mailbox,
    Threading,
    customer_reply,
    decide_thread,
    new_ticket_from_email,
    snapshot,
    subject_number,
)

from contracts import CommentAdded, EmailReceived, TicketCreated

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONFIG = default_config()
MAILBOX = Mailbox(address="support@localhost", type="other", group="support")


def email(**overrides: Any) -> EmailReceived:
    fields: dict[str, Any] = {
        "mailbox": "support@localhost",
        "message_id": "m1@example.se",
        "subject": "Skrivaren är trasig",
        "sender": Address(email="kund@example.se", name="Kund"),
        "cc": (Address(email="chef@example.se"), Address(email="support@localhost")),
        "received_at": NOW,
        "text": "Hej, skrivaren fungerar inte.",
        "raw_id": "raw-1",
        "size": 100,
    }
    fields.update(overrides)
    return EmailReceived(**fields)


def ticket(**overrides: Any) -> dict[str, Any]:
    doc, _ = new_ticket_from_email(
        email(),
        ticket_id="t-1",
        number=1,
        mailbox=MAILBOX,
        config=CONFIG,
        now=NOW,
        threading=decide_thread(email(), Candidates()),
    )
    doc.update(overrides)
    return doc


def test_a_new_email_makes_a_new_unassigned_ticket_and_a_created_event() -> None:
    doc, events = new_ticket_from_email(
        email(),
        ticket_id="t-1",
        number=7,
        mailbox=MAILBOX,
        config=CONFIG,
        now=NOW,
        threading=decide_thread(email(), Candidates()),
    )
    assert doc["number"] == 7 and doc["status"] == "new" and doc["handler"] is None
    assert doc["group"] == "support" and doc["type"] == "other"
    assert doc["message_ids"] == ["m1@example.se"]
    assert [c["email"] for c in doc["cc"]] == ["chef@example.se"]  # our own address is not a CC
    assert doc["comments"][0]["visibility"] == "public"
    (created,) = events
    assert isinstance(created, TicketCreated)
    assert created.ticket.number == 7 and created.ticket.source_message_id == "m1@example.se"


def test_a_reply_to_our_message_id_goes_to_its_ticket_first() -> None:
    other = ticket(_id="t-2", number=2)
    decision = decide_thread(
        email(), Candidates(by_our_message_id=ticket(), our_message_id="hd.x", by_seen_message_id=other)
    )
    assert decision.ticket is not None and decision.ticket["_id"] == "t-1"
    assert "our message" in decision.reason


def test_a_subject_token_from_a_participant_pairs_the_reply() -> None:
    decision = decide_thread(
        email(subject="Re: [#1] Skrivaren", sender=Address(email="chef@example.se")),
        Candidates(by_subject_number=ticket(), subject_number=1),
    )
    assert decision.ticket is not None
    assert "participant" in decision.reason


def test_a_stranger_using_a_ticket_number_gets_a_new_ticket_with_a_note() -> None:
    decision = decide_thread(
        email(subject="Re: [#1] Skrivaren", sender=Address(email="mallory@evil.example")),
        Candidates(by_subject_number=ticket(), subject_number=1),
    )
    assert decision.ticket is None
    assert decision.note and "not a participant" in decision.note


def test_subject_numbers_are_read_from_the_token_only() -> None:
    assert subject_number("Re: [#1234] x") == 1234
    assert subject_number("Order #1234") is None


def test_a_customer_reply_adds_a_public_comment_and_leaves_the_status_to_the_rules() -> None:
    reply = email(message_id="m2@example.se", text="Fortfarande trasig")
    change = customer_reply(ticket(), reply, now=NOW, threading=decide_thread(reply, Candidates()))
    assert "status" not in change.set_fields and change.set_fields["last_customer_comment_at"] == NOW
    assert change.add_to_set["message_ids"] == ["m2@example.se"]
    (comment_added,) = change.events
    assert isinstance(comment_added, CommentAdded) and comment_added.author_role == "customer"
    assert comment_added.kind == "customer_comment" and comment_added.comment.text == "Fortfarande trasig"
    assert comment_added.ticket.status == "new" and comment_added.ticket.last_customer_comment_at == NOW
    assert [a["action"] for a in change.push["activity"]] == ["comment"]


def test_a_customer_reply_leaves_a_dormant_ticket_dormant() -> None:
    reply = email(message_id="m3@example.se")
    change = customer_reply(
        ticket(status="dormant", status_category="dormant", phase="dormant"),
        reply,
        now=NOW,
        threading=decide_thread(reply, Candidates()),
    )
    assert "status" not in change.set_fields
    assert [type(e) for e in change.events] == [CommentAdded]


def test_a_snapshot_carries_every_field_rules_decide_with() -> None:
    due = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    doc = ticket(
        status="resolved",
        status_category="resolved",
        category="hardware",
        organisation="Acme",
        tags=["printer", "vip"],
        custom={"serial": "SN-1"},
        first_response_at=NOW,
        resolved_at=NOW,
        wake_at=due,
        recurrence={"every": "1w", "status": "new"},
        notify_mode="link",
        sla={"first_response_due": due, "resolution_due": None, "policy": "gold"},
    )
    snap = snapshot(doc)
    assert (snap.status, snap.status_category, snap.category, snap.organisation) == (
        "resolved",
        "resolved",
        "hardware",
        "Acme",
    )
    assert snap.tags == ("printer", "vip") and snap.custom == {"serial": "SN-1"}
    assert snap.first_response_at == snap.resolved_at == NOW and snap.last_customer_comment_at == NOW
    assert snap.wake_at == due and snap.recurrence == {"every": "1w", "status": "new"}
    assert snap.notify_mode == "link"
    assert snap.sla == {"first_response_due": due, "resolution_due": None, "policy": "gold"}


def test_a_ticket_from_email_has_no_notify_mode_of_its_own_and_its_snapshot_says_so() -> None:
    doc, (created,) = new_ticket_from_email(
        email(), ticket_id="t-1", number=7, mailbox=MAILBOX, config=CONFIG, now=NOW, threading=Threading(None, "new")
    )
    assert doc["notify_mode"] is None
    assert isinstance(created, TicketCreated)
    assert created.ticket.notify_mode is None and created.ticket.status_category == "new"
    assert created.ticket.last_customer_comment_at == NOW


LEFT_OUT = (
    LeftOutAttachment(filename="ritning-källare.pdf", size=6_291_456, reason="file_too_large"),
    LeftOutAttachment(filename="bilder.zip", size=3_000_000, reason="message_total_too_large"),
)


def test_attachments_left_out_of_a_new_email_are_named_on_its_comment_and_the_created_event() -> None:
    mail = email(left_out=LEFT_OUT)
    doc, (created,) = new_ticket_from_email(
        mail, ticket_id="t-1", number=7, mailbox=MAILBOX, config=CONFIG, now=NOW, threading=Threading(None, "new")
    )
    assert isinstance(created, TicketCreated)
    assert created.left_out == LEFT_OUT
    assert created.comment_id == doc["comments"][0]["comment_id"]
    assert [a["filename"] for a in doc["comments"][0]["left_out"]] == ["ritning-källare.pdf", "bilder.zip"]


def test_attachments_left_out_of_a_customer_reply_are_named_on_its_comment() -> None:
    reply = email(message_id="m4@example.se", left_out=LEFT_OUT[:1])
    change = customer_reply(ticket(), reply, now=NOW, threading=Threading(None, "reply"))
    comment_added = change.events[0]
    assert isinstance(comment_added, CommentAdded)
    assert comment_added.comment.left_out == LEFT_OUT[:1]
    assert change.push["comments"][0]["left_out"][0]["reason"] == "file_too_large"


def test_a_mail_with_every_attachment_kept_names_none_left_out() -> None:
    doc, (created,) = new_ticket_from_email(
        email(), ticket_id="t-1", number=7, mailbox=MAILBOX, config=CONFIG, now=NOW, threading=Threading(None, "new")
    )
    assert isinstance(created, TicketCreated)
    assert created.left_out == () and doc["comments"][0]["left_out"] == ()
