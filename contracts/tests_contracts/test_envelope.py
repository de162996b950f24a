from datetime import UTC, datetime

import pytest
from contracts.envelope import Message, Registry
from contracts.events import Comment
from contracts.message_ids import make_message_id, ticket_id_from_message_id
from contracts.models import Actor, Address, Bounce, LeftOutAttachment, TicketSnapshot
from pydantic import ValidationError

from contracts import (
    REGISTRY,
    CommentAdded,
    EmailReceived,
    Envelope,
    TicketCreated,
    UnknownMessageType,
    decode_envelope,
    derived_id,
)


def _email(**overrides: object) -> EmailReceived:
    fields: dict[str, object] = {
        "mailbox": "support@localhost",
        "message_id": "m1@example.com",
        "subject": "Hjälp",
        "sender": Address(email="kund@example.se", name="Åsa"),
        "received_at": datetime(2026, 1, 1, tzinfo=UTC),
        "text": "blåbærgrød",
        "raw_id": "r1",
        "size": 10,
    }
    fields.update(overrides)
    return EmailReceived(**fields)  # type: ignore[arg-type]


def test_an_event_survives_the_round_trip_through_its_envelope_bytes() -> None:
    envelope = Envelope.wrap(_email(), key="k")
    back = REGISTRY.parse(decode_envelope(envelope.to_bytes()))
    assert back == _email()
    assert envelope.type == "EmailReceived" and envelope.schema_version == 1
    assert envelope.correlation_id == envelope.event_id


def test_a_caused_envelope_keeps_the_correlation_and_names_its_cause() -> None:
    first = Envelope.wrap(_email())
    second = Envelope.wrap(_email(message_id="m2"), causation=first)
    assert second.correlation_id == first.correlation_id
    assert second.causation_id == first.event_id


def test_unknown_fields_in_a_payload_are_refused() -> None:
    envelope = Envelope.wrap(_email())
    bad = envelope.model_copy(update={"payload": {**envelope.payload, "$where": "1"}})
    with pytest.raises(ValidationError):
        REGISTRY.parse(bad)


def test_an_unknown_type_or_a_newer_version_is_refused_with_the_reason() -> None:
    envelope = Envelope.wrap(_email())
    with pytest.raises(UnknownMessageType, match="unknown message type"):
        REGISTRY.parse(envelope.model_copy(update={"type": "Nope"}))
    with pytest.raises(UnknownMessageType, match="newer"):
        REGISTRY.parse(envelope.model_copy(update={"schema_version": 99}))


def test_an_old_version_is_upcast_to_the_current_one() -> None:
    class Renamed(Message):
        TYPE = "Renamed"
        VERSION = 2
        full_name: str

    registry = Registry()
    registry.register(Renamed)

    @registry.upcaster("Renamed", 1)
    def v1_to_v2(payload: dict[str, object]) -> dict[str, object]:
        return {"full_name": payload["name"]}

    old = Envelope(
        event_id="e",
        type="Renamed",
        schema_version=1,
        occurred_at=datetime.now(UTC),
        correlation_id="e",
        payload={"name": "Åsa"},
    )
    assert registry.parse(old) == Renamed(full_name="Åsa")


def test_every_registered_message_documents_every_field() -> None:
    for name, model in REGISTRY.models().items():
        assert model.__doc__, name
        schema = model.model_json_schema()
        for field_name, prop in schema["properties"].items():
            assert "description" in prop, f"{name}.{field_name} has no description"


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("a", "b") == derived_id("a", "b")
    assert derived_id("a", "b") != derived_id("ab")


def test_our_message_ids_name_their_ticket_and_cannot_be_forged() -> None:
    mid = make_message_id(ticket_id="t-1", token="n-1", secret="s" * 20, domain="helpdesk.localhost")
    assert ticket_id_from_message_id(f"<{mid}>", "s" * 20) == "t-1"
    assert ticket_id_from_message_id(mid, "other-secret-xxxxxxxx") is None
    forged = mid.replace("t-1", "t-2")
    assert ticket_id_from_message_id(forged, "s" * 20) is None
    assert ticket_id_from_message_id("random@example.com", "s" * 20) is None


def test_an_email_event_written_before_bounces_and_folded_quotes_still_parses() -> None:
    envelope = Envelope.wrap(_email())
    old_payload = {k: v for k, v in envelope.payload.items() if k not in {"text_new", "bounce"}}
    back = REGISTRY.parse(envelope.model_copy(update={"payload": old_payload}))
    assert isinstance(back, EmailReceived)
    assert back.text_new is None and back.bounce is None


def test_a_bounce_and_the_new_part_of_a_reply_survive_the_round_trip() -> None:
    bounce = Bounce(
        recipients=("gone@example.se",),
        action="failed",
        status="5.1.1",
        permanent=True,
        diagnostic="550 5.1.1 User unknown",
        original_message_id="hd.t1.n1.sig@helpdesk.localhost",
    )
    event = _email(text="Tack!\n\n> gammalt", text_new="Tack!", bounce=bounce)
    back = REGISTRY.parse(decode_envelope(Envelope.wrap(event).to_bytes()))
    assert back == event


def test_an_address_marked_and_lifted_survives_the_round_trip_keyed_by_the_address() -> None:
    from contracts import AddressDeliverable, AddressUndeliverable

    since = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    marked = AddressUndeliverable(
        address="gone@example.se", since=since, status="5.1.1", diagnostic="550 user unknown", cause="dsn-1"
    )
    lifted = AddressDeliverable(address="gone@example.se", actor=Actor(role="agent", id="bo"), at=since)
    for event in (marked, lifted):
        envelope = Envelope.wrap(event, key=event.address)
        assert REGISTRY.parse(decode_envelope(envelope.to_bytes())) == event
        assert envelope.key == "gone@example.se"


def _left_out() -> tuple[LeftOutAttachment, ...]:
    return (
        LeftOutAttachment(filename="ritning-över-källaren.pdf", size=6_291_456, reason="file_too_large"),
        LeftOutAttachment(filename="bilder.zip", size=4_000_000, reason="message_total_too_large"),
    )


def test_events_written_before_left_out_attachments_still_parse() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ticket = TicketSnapshot(
        ticket_id="t-1",
        number=1,
        title="Hjälp",
        status="new",
        priority="medium",
        type="fault",
        channel="email",
        requester=Address(email="kund@example.se"),
        created_at=now,
        updated_at=now,
        version=1,
        link_token="token",
    )
    comment = Comment(
        comment_id="c-1",
        visibility="public",
        author=Actor(role="customer"),
        channel="email",
        text="blåbærgrød",
        created_at=now,
    )
    events = (
        _email(left_out=_left_out()),
        TicketCreated(ticket=ticket, actor=Actor(role="customer"), comment_id="c-1", left_out=_left_out()),
        CommentAdded(
            ticket=ticket, comment=comment.model_copy(update={"left_out": _left_out()}), author_role="customer"
        ),
    )
    for event in events:
        envelope = Envelope.wrap(event)
        assert REGISTRY.parse(decode_envelope(envelope.to_bytes())) == event
        old_payload = {k: v for k, v in envelope.payload.items() if k not in {"left_out", "comment_id"}}
        if "comment" in old_payload:
            old_payload["comment"] = {k: v for k, v in old_payload["comment"].items() if k != "left_out"}
        back = REGISTRY.parse(envelope.model_copy(update={"payload": old_payload}))
        assert isinstance(back, type(event))
        assert getattr(back, "left_out", ()) == ()
        assert getattr(back, "comment", comment).left_out == ()


def test_a_left_out_attachment_must_name_a_known_reason() -> None:
    with pytest.raises(ValidationError):
        LeftOutAttachment(filename="a.pdf", size=1, reason="too_ugly")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        LeftOutAttachment(filename="a.pdf", size=-1, reason="file_too_large")
