"""Handling TicketCreated: the auto-reply command, sent once, through the outbox."""

import pytest

from contracts import REGISTRY, SendNotification, derived_id, topics
from tests_triggers.builders import envelope_of, ticket_created
from tests_triggers.conftest import make_handlers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def handlers(store, publisher, clock):
    return make_handlers(store, publisher, clock=clock)


def commands(publisher):
    return [(topic, env, REGISTRY.parse(env)) for topic, env in publisher.sent]


async def test_a_new_email_ticket_asks_notify_for_the_auto_reply(handlers, publisher):
    event = ticket_created()
    incoming = envelope_of(event)

    await handlers.ticket_created(incoming, event)

    ((topic, envelope, command),) = commands(publisher)
    assert topic == topics.NOTIFY_COMMANDS
    assert isinstance(command, SendNotification)
    assert command.notification_id == derived_id("notify", "auto-reply-new-ticket", "evt-1", "customer")
    assert envelope.event_id == command.notification_id
    assert envelope.causation_id == incoming.event_id
    assert envelope.correlation_id == incoming.correlation_id
    assert envelope.key == "t-1001"
    assert command.template == "auto_reply"
    assert command.to.email == "alice@example.com"
    assert command.mailbox == "support@localhost"
    assert command.in_reply_to == "CAF1234@mail.example.com"
    assert command.references == ("CAF1234@mail.example.com",)
    assert command.auto_submitted == "auto-replied"
    assert command.context["link"] == "https://help.example.com/t/secret-link-token"
    assert command.context["ticket"]["number"] == 1001
    assert command.rule == "Auto-reply on new ticket"


async def test_the_same_event_delivered_twice_asks_for_one_auto_reply(handlers, store, publisher):
    event = ticket_created()

    await handlers.ticket_created(envelope_of(event), event)
    await handlers.ticket_created(envelope_of(event), event)

    assert len(publisher.sent) == 1
    assert len(store.collection.docs) == 1


async def test_a_command_left_in_the_outbox_by_a_crash_goes_out_on_redelivery(handlers, store, publisher):
    event = ticket_created()
    publisher.fail_next = 1
    with pytest.raises(ConnectionError):
        await handlers.ticket_created(envelope_of(event), event)
    assert publisher.sent == []
    assert store.collection.docs["evt-1"]["outbox"]

    # Rules changed in between must not change what the event already decided.
    await store.set_active("auto-reply-new-ticket", False)
    handlers.rules.invalidate()
    await handlers.ticket_created(envelope_of(event), event)

    ((_, _, command),) = commands(publisher)
    assert command.notification_id == derived_id("notify", "auto-reply-new-ticket", "evt-1", "customer")
    assert store.collection.docs["evt-1"]["outbox"] == {}


async def test_the_firing_log_says_which_rule_fired_and_why(handlers, store):
    event = ticket_created()

    await handlers.ticket_created(envelope_of(event), event)

    (record,) = await store.firings_for_ticket("t-1001")
    (firing,) = record["firings"]
    assert firing["rule_name"] == "Auto-reply on new ticket"
    assert firing["conditions_met"] == ["ticket.channel is 'email'", "ticket.source_auto_submitted is False"]
    assert len(firing["notification_ids"]) == 1


async def test_an_automatic_mail_is_recorded_but_gets_no_auto_reply(handlers, store, publisher):
    event = ticket_created(source_auto_submitted=True)

    await handlers.ticket_created(envelope_of(event), event)

    assert publisher.sent == []
    (record,) = await store.firings_for_ticket("t-1001")
    assert record["firings"] == []


async def test_a_no_reply_requester_gets_no_auto_reply_and_the_log_says_why(handlers, store, publisher):
    event = ticket_created(requester={"email": "noreply@shop.example"})

    await handlers.ticket_created(envelope_of(event), event)

    assert publisher.sent == []
    (record,) = await store.firings_for_ticket("t-1001")
    assert "looks automatic" in record["firings"][0]["suppressed"][0]["reason"]


async def test_rules_are_read_from_the_store_at_most_every_few_seconds(handlers, store, clock):
    for n in range(3):
        event = ticket_created()
        await handlers.ticket_created(envelope_of(event, f"evt-{n}"), event)
    assert store.rule_loads == 1

    clock.now += 5
    event = ticket_created()
    await handlers.ticket_created(envelope_of(event, "evt-later"), event)
    assert store.rule_loads == 2
