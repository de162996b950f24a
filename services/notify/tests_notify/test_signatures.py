"""Signatures in layers (general, mailbox, personal, personal per mailbox), the closing greeting before them,
and mail an agent speaks in."""

import pytest
from notify.domain import MailSettings, Signature, pick_signature, scope_problem, with_configured_mailbox_signature
from notify.handlers import MailIdentity

from tests_notify.builders import DOMAIN, SECRET, agent_reply, send_notification
from tests_notify.conftest import handle, make_handlers

GENERAL = Signature(scope="general", text="Acme AB")
SUPPORT = Signature(scope="mailbox", mailbox="support@localhost", text="Acme Support\nTel 08-123 45 67")
BO = Signature(scope="personal", user_id="u-bo", text="Bo Berg\nSupport engineer")
BO_IN_SUPPORT = Signature(scope="personal_mailbox", mailbox="support@localhost", user_id="u-bo", text="Bo, Support")
EVERY_LAYER = [GENERAL, SUPPORT, BO, BO_IN_SUPPORT]


def pick(signatures, mailbox="support@localhost", user_id=None, language="en"):
    return pick_signature(signatures, mailbox=mailbox, user_id=user_id, language=language)


def test_the_agents_signature_for_the_mailbox_wins_over_every_other_layer():
    assert pick(EVERY_LAYER, user_id="u-bo") == BO_IN_SUPPORT


def test_the_agents_own_signature_serves_in_mailboxes_without_one_of_theirs():
    assert pick(EVERY_LAYER, mailbox="sales@localhost", user_id="u-bo") == BO


def test_an_agent_without_a_signature_of_their_own_gets_the_mailboxes_then_the_general_one():
    assert pick(EVERY_LAYER, user_id="u-cia") == SUPPORT
    assert pick(EVERY_LAYER, mailbox="sales@localhost", user_id="u-cia") == GENERAL


def test_mail_that_speaks_for_nobody_never_gets_a_personal_signature():
    assert pick(EVERY_LAYER) == SUPPORT
    assert pick([GENERAL, BO, BO_IN_SUPPORT]) == GENERAL


def test_no_signature_at_all_is_none():
    assert pick([BO]) is None


def test_a_signature_in_the_mails_language_wins_over_one_for_any_language_and_that_over_english():
    swedish = Signature(scope="mailbox", mailbox="support@localhost", language="sv", text="Acme Support (sv)")
    english = Signature(scope="mailbox", mailbox="support@localhost", language="en", text="Acme Support (en)")
    any_language = SUPPORT

    assert pick([english, any_language, swedish], language="sv-SE") == swedish
    assert pick([english, any_language], language="sv") == any_language
    assert pick([english], language="sv") == english
    assert pick([english, any_language], language="en") == english


def test_a_mailbox_address_matches_whatever_its_case():
    assert pick([SUPPORT], mailbox="Support@LOCALHOST") == SUPPORT
    assert Signature(scope="mailbox", mailbox="Support@Localhost", text="x").mailbox == "support@localhost"


def test_the_configured_mailbox_signature_is_the_mailbox_layer_until_one_is_stored():
    configured = with_configured_mailbox_signature([GENERAL], "support@localhost", "From the environment")
    assert pick(configured).text == "From the environment"

    stored = with_configured_mailbox_signature([GENERAL, SUPPORT], "support@localhost", "From the environment")
    assert pick(stored) == SUPPORT


@pytest.mark.parametrize(
    ("scope", "mailbox", "user_id", "field"),
    [
        ("mailbox", None, None, "mailbox"),
        ("personal", None, None, "user_id"),
        ("personal_mailbox", "support@localhost", None, "user_id"),
        ("general", "support@localhost", None, "mailbox"),
        ("mailbox", "support@localhost", "u-bo", "user_id"),
    ],
)
def test_a_signature_whose_mailbox_or_user_does_not_fit_its_scope_names_the_field(scope, mailbox, user_id, field):
    assert scope_problem(scope, mailbox, user_id)[0] == field
    with pytest.raises(ValueError, match=field):
        Signature(scope=scope, mailbox=mailbox, user_id=user_id, text="x")


def test_the_closing_greeting_follows_the_language_then_its_base_then_english():
    settings = MailSettings()
    assert settings.closing("sv-SE") == "Vänliga hälsningar,"
    assert settings.closing("de") == "Best regards,"
    assert MailSettings(closing_greeting={}).closing("en") == ""


# Through the handler: what the customer's mail says.


def bodies(smtp):
    message = smtp.outbox[-1][0]
    return message, message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


async def test_an_agents_reply_ends_with_the_closing_their_name_and_their_personal_signature(handlers, store, smtp):
    for signature in EVERY_LAYER:
        await store.put_signature(signature)

    await handle(handlers, agent_reply())

    _, text, html = bodies(smtp)
    assert text.rstrip().endswith("Best regards,\nBo Berg\n\n-- \nBo, Support")
    assert '<div class="signature">Bo, Support</div>' in html


async def test_an_automatic_mail_from_the_same_mailbox_gets_the_mailbox_signature(handlers, store, smtp):
    for signature in EVERY_LAYER:
        await store.put_signature(signature)

    await handle(handlers, send_notification())

    _, text, _ = bodies(smtp)
    assert text.rstrip().endswith("Best regards,\nSupport\n\n-- \nAcme Support\nTel 08-123 45 67")


async def test_an_html_signature_goes_into_the_html_body_and_its_text_into_the_text_body(handlers, store, smtp):
    await store.put_signature(
        Signature(scope="personal", user_id="u-bo", text="Bo Berg, Acme", html="<p><strong>Bo Berg</strong>, Acme</p>")
    )

    await handle(handlers, agent_reply())

    _, text, html = bodies(smtp)
    assert text.rstrip().endswith("-- \nBo Berg, Acme")
    assert '<div class="signature"><p><strong>Bo Berg</strong>, Acme</p></div>' in html


async def test_a_swedish_mail_closes_in_swedish_with_the_swedish_signature(handlers, store, smtp):
    await store.put_signature(Signature(scope="general", language="sv", text="Acme AB, Stockholm"))
    await store.put_signature(Signature(scope="general", language="en", text="Acme Ltd, Stockholm"))

    await handle(handlers, send_notification(language="sv-SE"))

    _, text, _ = bodies(smtp)
    assert text.rstrip().endswith("Vänliga hälsningar,\nSupport\n\n-- \nAcme AB, Stockholm")


async def test_a_language_without_templates_closes_in_the_language_of_the_template_used(handlers, store, smtp):
    await store.put_signature(Signature(scope="general", language="de", text="Acme GmbH"))

    await handle(handlers, send_notification(language="de"))

    _, text, _ = bodies(smtp)
    assert "Thank you for writing to us" in text
    assert text.rstrip().endswith("Best regards,\nSupport")


async def test_the_admins_closing_greeting_comes_before_the_signature(handlers, store, smtp):
    store.settings = MailSettings(closing_greeting={"en": "Cheers,"})
    await store.put_signature(GENERAL)

    await handle(handlers, send_notification())

    _, text, html = bodies(smtp)
    assert text.rstrip().endswith("Cheers,\nSupport\n\n-- \nAcme AB")
    assert "<p>Cheers,<br>Support</p>" in html


async def test_the_configured_mailbox_signature_still_signs_when_nothing_is_stored(
    store, publisher, smtp, metrics, naps
):
    identity = MailIdentity(SECRET, DOMAIN, {}, mailbox_signatures={"support@localhost": "Configured\nSignature"})
    handlers = make_handlers(store, publisher, smtp, metrics, naps, identity=identity)

    await handle(handlers, send_notification())
    await store.put_signature(SUPPORT)
    await handle(handlers, send_notification(notification_id="second"))

    first = smtp.outbox[0][0].get_body(("plain",)).get_content()
    second = smtp.outbox[1][0].get_body(("plain",)).get_content()
    assert first.rstrip().endswith("-- \nConfigured\nSignature")
    assert second.rstrip().endswith("-- \nAcme Support\nTel 08-123 45 67")


async def test_mail_an_agent_speaks_in_comes_from_them_in_the_mailboxs_name(store, publisher, smtp, metrics, naps):
    identity = MailIdentity(SECRET, DOMAIN, {"support@localhost": "Acme Support"})
    handlers = make_handlers(store, publisher, smtp, metrics, naps, identity=identity)

    await handle(handlers, agent_reply())

    message, _, _ = bodies(smtp)
    sender = message["From"].addresses[0]
    assert sender.display_name == "Bo Berg (Acme Support)"
    assert sender.addr_spec == "support@localhost"
    assert message["Reply-To"].addresses[0].addr_spec == "support@localhost"


async def test_mail_an_agent_speaks_in_is_not_automatic_and_never_capped(store, publisher, smtp, metrics, naps):
    from notify.handlers import AutoMailCaps

    handlers = make_handlers(store, publisher, smtp, metrics, naps, caps=AutoMailCaps(per_ticket_per_hour=1))

    for n in range(3):
        await handle(handlers, agent_reply(notification_id=f"reply-{n}", auto_submitted="auto-generated"))

    assert len(smtp.outbox) == 3
    assert all(message["Auto-Submitted"] is None for message, _, _ in smtp.outbox)
    assert store.counts == {}
