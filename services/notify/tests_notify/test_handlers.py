"""Handling SendNotification: each mail is sent once, and its outcome is reported."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from contracts.message_ids import ticket_id_from_message_id
from hdkit.kafka import Rejected
from hdkit.mongo import OutboxRelay
from notify.handlers import AutoMailCaps, Handlers, MailIdentity, MailServerUnavailable
from notify.smtp import DeliveryDeferred, DeliveryRefused

from contracts import REGISTRY, NotificationFailed, NotificationSent, topics
from tests_notify.builders import DOMAIN, SECRET, send_notification
from tests_notify.conftest import handle, make_handlers
from tests_notify.fakes import StoreDown


def events(publisher):
    return [(topic, REGISTRY.parse(env)) for topic, env in publisher.sent]


def count(metrics, outcome, template="auto_reply"):
    value = metrics.get_sample_value("helpdesk_notifications_total", {"template": template, "outcome": outcome})
    return value or 0


async def test_a_notification_goes_out_by_smtp_and_is_reported_sent(handlers, store, publisher, smtp, metrics):
    command = send_notification()

    await handle(handlers, command)

    ((message, sender, recipients),) = smtp.outbox
    assert sender == "support@localhost"
    assert recipients == ["alice@example.com"]
    assert message["Subject"] == "[#1001] We received your request: Printer on fire"
    ((topic, event),) = events(publisher)
    assert topic == topics.NOTIFY_EVENTS
    assert isinstance(event, NotificationSent)
    assert f"<{event.message_id}>" == message["Message-ID"]
    assert ticket_id_from_message_id(event.message_id, SECRET) == "t1001"
    assert publisher.sent[0][1].causation_id == command.notification_id
    assert publisher.sent[0][1].key == "t1001"
    assert store.docs[command.notification_id]["state"] == "sent"
    assert store.docs[command.notification_id]["outbox"] == {}
    assert count(metrics, "sent") == 1


async def test_the_mail_survives_the_trip_through_smtp_bytes(handlers, smtp):
    await handle(handlers, send_notification())

    parsed = message_from_bytes(smtp.outbox[0][0].as_bytes(), policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<CAF1234@mail.example.com>"
    assert "Hello Alice Andersson" in parsed.get_body(("plain",)).get_content()


async def test_the_same_command_handled_twice_sends_one_mail(handlers, publisher, smtp, metrics):
    command = send_notification()

    await handle(handlers, command)
    await handle(handlers, command)

    assert len(smtp.outbox) == 1
    assert len(publisher.sent) == 1
    assert count(metrics, "duplicate") == 1


async def test_a_redelivery_after_a_crash_between_smtp_and_recording_does_not_send_again(
    handlers, store, publisher, smtp, metrics
):
    command = send_notification()
    # What a crashed process leaves behind: claimed, maybe sent, never recorded.
    await store.claim(command.notification_id, {"ticket_id": "t1001", "template": "auto_reply"})

    await handle(handlers, command)

    assert smtp.outbox == []
    assert publisher.sent == []
    assert store.docs[command.notification_id]["state"] == "uncertain"
    assert count(metrics, "uncertain") == 1


async def test_a_mail_sent_whose_recording_failed_is_recorded_on_redelivery_without_resending(
    handlers, store, publisher, smtp
):
    command = send_notification()
    store.fail_finish = 1
    with pytest.raises(StoreDown):
        await handle(handlers, command)
    assert len(smtp.outbox) == 1

    await handle(handlers, command)

    assert len(smtp.outbox) == 1
    assert store.docs[command.notification_id]["state"] == "sent"
    ((_, event),) = events(publisher)
    assert isinstance(event, NotificationSent)


async def test_a_sent_event_that_never_reached_kafka_goes_out_on_redelivery(handlers, store, publisher, smtp):
    command = send_notification()
    await handle(handlers, command)
    store.docs[command.notification_id]["outbox"] = {
        publisher.sent[0][1].event_id: {
            "topic": publisher.sent[0][0],
            "envelope": publisher.sent[0][1].model_dump(mode="json"),
        }
    }
    publisher.sent.clear()

    await handle(handlers, command)

    assert len(smtp.outbox) == 1
    ((_, event),) = events(publisher)
    assert isinstance(event, NotificationSent)


async def test_a_permanent_refusal_is_recorded_and_reported_without_retrying(handlers, store, publisher, smtp, metrics):
    command = send_notification()
    smtp.answers.append(DeliveryRefused("550 5.1.1 no such user"))

    await handle(handlers, command)

    ((_, event),) = events(publisher)
    assert isinstance(event, NotificationFailed)
    assert event.permanent is True
    assert "550 5.1.1 no such user" in event.reason
    assert store.docs[command.notification_id]["state"] == "failed"
    assert count(metrics, "failed") == 1

    await handle(handlers, command)
    assert smtp.outbox == []


async def test_a_temporary_failure_is_retried_after_a_pause_and_then_sent(handlers, store, publisher, smtp, naps):
    command = send_notification()
    smtp.answers.append(DeliveryDeferred("ConnectionRefusedError: connection refused"))

    with pytest.raises(MailServerUnavailable):
        await handle(handlers, command)
    assert store.docs[command.notification_id]["state"] == "deferred"
    assert publisher.sent == []

    await handle(handlers, command)

    assert len(smtp.outbox) == 1
    assert store.docs[command.notification_id]["state"] == "sent"
    assert store.docs[command.notification_id]["attempts"] == 2
    assert naps.taken == [0.5]


async def test_the_pause_between_retries_grows_up_to_a_limit(store, publisher, smtp, metrics, naps):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, max_retry_delay=3.0)
    command = send_notification()
    for _ in range(5):
        smtp.answers.append(DeliveryDeferred("server away"))
        with pytest.raises(MailServerUnavailable):
            await handle(handlers, command)

    assert naps.taken == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_a_mail_the_server_keeps_deferring_counts_as_failed_after_the_last_attempt(
    store, publisher, smtp, metrics, naps
):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, max_attempts=2)
    command = send_notification()
    smtp.answers += [DeliveryDeferred("452 mailbox full", about_this_mail=True)] * 2

    with pytest.raises(MailServerUnavailable):
        await handle(handlers, command)
    await handle(handlers, command)

    ((_, event),) = events(publisher)
    assert isinstance(event, NotificationFailed)
    assert event.permanent is False
    assert store.docs[command.notification_id]["state"] == "failed"


async def test_an_unknown_template_is_recorded_as_failed_and_reported_not_dead_lettered(
    handlers, store, publisher, smtp, metrics
):
    command = send_notification(template="no_such_template")

    try:
        await handle(handlers, command)
    except Rejected:  # pragma: no cover - the assertion below says what went wrong
        pytest.fail("an unknown template must not dead-letter the command")

    assert smtp.outbox == []
    ((_, event),) = events(publisher)
    assert isinstance(event, NotificationFailed)
    assert "unknown template 'no_such_template'" in event.reason
    assert store.docs[command.notification_id]["state"] == "failed"
    assert count(metrics, "failed", template="no_such_template") == 1


async def test_a_hostile_template_fails_the_notification_instead_of_running(handlers, store, publisher, smtp):
    from notify.domain import Template

    await store.put_template(Template(key="evil", subject="x", text="{{ ''.__class__.__mro__ }}"))

    await handle(handlers, send_notification(template="evil"))

    assert smtp.outbox == []
    ((_, event),) = events(publisher)
    assert "unsafe" in event.reason


async def test_the_from_name_comes_from_the_mailbox_settings(store, publisher, smtp, metrics, naps):
    handlers = Handlers(
        store,
        OutboxRelay(store.collection, publisher),
        smtp,
        identity=MailIdentity(SECRET, DOMAIN, {"support@localhost": "Acme Support"}),
        metrics=metrics,
        sleep=naps,
    )

    await handle(handlers, send_notification())

    message = smtp.outbox[0][0]
    assert message["From"].addresses[0].display_name == "Acme Support"
    assert "Acme Support" in message.get_body(("plain",)).get_content()


async def test_automatic_mail_for_one_ticket_stops_at_the_hourly_cap_and_the_ticket_learns_why(
    store, publisher, smtp, metrics, naps
):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, caps=AutoMailCaps(per_ticket_per_hour=3))
    for n in range(5):
        await handle(handlers, send_notification(notification_id=f"auto-{n}", to={"email": f"c{n}@example.com"}))
    assert len(smtp.outbox) == 3
    failed = [e for _, e in events(publisher) if isinstance(e, NotificationFailed)]
    assert [e.notification_id for e in failed] == ["auto-3", "auto-4"]
    assert "cap of 3 automatic mails for this ticket an hour" in failed[0].reason
    assert failed[0].permanent is False
    assert store.docs["auto-4"]["state"] == "failed" and count(metrics, "suppressed") == 2


async def test_automatic_mail_to_one_address_is_capped_across_tickets(store, publisher, smtp, metrics, naps):
    caps = AutoMailCaps(per_ticket_per_hour=0, per_recipient_per_hour=2, per_recipient_per_day=0)
    handlers = make_handlers(store, publisher, smtp, metrics, naps, caps=caps)
    for n in range(3):
        await handle(handlers, send_notification(notification_id=f"n-{n}", ticket_id=f"t{n}", ticket_number=n + 1))
    await handle(handlers, send_notification(notification_id="other", to={"email": "bob@example.com"}))
    assert [to for _, _, (to,) in smtp.outbox] == ["alice@example.com", "alice@example.com", "bob@example.com"]


async def test_mail_a_person_wrote_is_never_capped(store, publisher, smtp, metrics, naps):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, caps=AutoMailCaps(per_ticket_per_hour=1))
    for n in range(3):
        await handle(handlers, send_notification(notification_id=f"agent-{n}", auto_submitted=None))
    assert len(smtp.outbox) == 3


async def test_the_caps_count_per_window_so_the_next_hour_sends_again(store, publisher, smtp, metrics, naps):
    now = [datetime(2026, 11, 23, 10, 30, tzinfo=UTC)]
    caps = AutoMailCaps(per_ticket_per_hour=1)
    handlers = make_handlers(store, publisher, smtp, metrics, naps, caps=caps, clock=lambda: now[0])
    await handle(handlers, send_notification(notification_id="a"))
    await handle(handlers, send_notification(notification_id="b"))
    now[0] += timedelta(hours=1)
    await handle(handlers, send_notification(notification_id="c"))
    assert len(smtp.outbox) == 2


async def test_a_redelivered_command_is_not_counted_twice(store, publisher, smtp, metrics, naps):
    handlers = make_handlers(store, publisher, smtp, metrics, naps, caps=AutoMailCaps(per_ticket_per_hour=1))
    command = send_notification(notification_id="once")
    await handle(handlers, command)
    await handle(handlers, command)
    assert sum(store.counts.values()) == 3  # one mail, counted once in each of its three windows


def signed_handlers(store, publisher, smtp, metrics, naps):
    signatures = {"support@localhost": "Acme AB <support>\nTelefon 08-123 45 67"}
    identity = MailIdentity(SECRET, DOMAIN, {"support@localhost": "Acme Support"}, mailbox_signatures=signatures)
    return Handlers(
        store, OutboxRelay(store.collection, publisher), smtp, identity=identity, metrics=metrics, sleep=naps
    )


async def test_a_mail_from_a_mailbox_with_a_signature_ends_with_it(store, publisher, smtp, metrics, naps):
    await handle(signed_handlers(store, publisher, smtp, metrics, naps), send_notification())

    message = smtp.outbox[0][0]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert text.rstrip().endswith("Acme Support\n\n-- \nAcme AB <support>\nTelefon 08-123 45 67")
    assert html.rstrip().endswith('<div class="signature">Acme AB &lt;support&gt;<br>\nTelefon 08-123 45 67</div>')


async def test_a_mail_from_a_mailbox_without_a_signature_has_no_stray_separator(store, publisher, smtp, metrics, naps):
    await handle(signed_handlers(store, publisher, smtp, metrics, naps), send_notification(mailbox="sales@localhost"))

    message = smtp.outbox[0][0]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert text.rstrip().endswith("Best regards,\nSupport")
    assert "-- " not in text
    assert "signature" not in html and html.rstrip().endswith("Support</p>")


async def test_the_notice_of_attachments_left_out_lists_the_files_to_the_sender(handlers, smtp):
    command = send_notification(
        template="attachments_left_out",
        to={"email": "bo@example.se", "name": "Bo Ström"},
        context={
            "ticket": {"number": 1001, "title": "Ritning över källaren"},
            "link": "http://127.0.0.1:8000/t/secret-link-token",
            "files": [{"filename": "ritning-källare.pdf", "human_size": "6.3 MB", "reason": "file_too_large"}],
            "limits": {"per_file_human": "5 MB", "per_message_human": "20 MB"},
        },
        rule="Notice of attachments left out (built-in)",
    )

    await handle(handlers, command)

    ((message, _, recipients),) = smtp.outbox
    assert recipients == ["bo@example.se"]
    assert message["Subject"] == "[#1001] Attachments left out: Ritning över källaren"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<CAF1234@mail.example.com>"
    text = message.get_body(("plain",)).get_content()
    assert "- ritning-källare.pdf (6.3 MB): larger than 5 MB, the limit per file" in text
    assert "Hello Bo Ström," in text
    assert "<strong>ritning-källare.pdf</strong> (6.3 MB)" in message.get_body(("html",)).get_content()


def test_notices_to_staff_are_counted_apart_from_the_customers_allowance() -> None:
    from notify.handlers import AutoMailCaps

    from tests_notify.builders import send_notification

    caps = AutoMailCaps(per_staff_per_hour=60)
    staff = send_notification(audience="staff")
    customer = send_notification()

    assert [key for key, *_ in caps.windows(staff)] == [f"staff:{staff.to.email}"]
    assert all(not key.startswith("staff:") for key, *_ in caps.windows(customer))
