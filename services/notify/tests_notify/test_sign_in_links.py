"""`POST /sign-in-links`: a customer's sign-in link, mailed at once, in their language, with an honest answer."""

from datetime import UTC, datetime

import pytest
from notify.seeds import default_templates
from notify.smtp import DeliveryDeferred, DeliveryRefused

from tests_notify.builders import DOMAIN
from tests_notify.conftest import AUTH

LINK = "https://help.example.com/login/link/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture(autouse=True)
async def seeded(store):
    await store.seed_templates(default_templates())


async def test_the_link_is_mailed_to_the_customer_and_the_answer_comes_after_the_server_took_it(client, smtp):
    response = await client.post(
        "/sign-in-links", json={"to": "alice@example.com", "link": LINK, "language": "en"}, headers=AUTH
    )

    assert response.status_code == 202
    [(message, sender, recipients)] = smtp.outbox
    assert recipients == ["alice@example.com"]
    assert sender == f"no-reply@{DOMAIN}"
    assert message["Subject"] == "Your sign-in link"
    assert "[#" not in message["Subject"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert LINK in message.get_body(("plain",)).get_content()
    assert f'href="{LINK}"' in message.get_body(("html",)).get_content()


async def test_a_swedish_customer_gets_the_mail_in_swedish(client, smtp):
    await client.post("/sign-in-links", json={"to": "bo@example.se", "link": LINK, "language": "sv"}, headers=AUTH)

    message = smtp.outbox[0][0]
    assert message["Subject"] == "Din inloggningslänk"
    assert "Länken fungerar en gång, i 15 minuter." in message.get_body(("plain",)).get_content()


async def test_a_mail_server_that_is_away_gives_503_so_the_portal_says_try_again(client, smtp):
    smtp.answers.append(DeliveryDeferred("421 try later"))

    response = await client.post("/sign-in-links", json={"to": "alice@example.com", "link": LINK}, headers=AUTH)

    assert response.status_code == 503
    assert smtp.outbox == []


async def test_a_refused_or_bounced_address_is_not_worth_retrying(client, smtp, store):
    smtp.answers.append(DeliveryRefused("550 no such user"))
    refused = await client.post("/sign-in-links", json={"to": "gone@example.com", "link": LINK}, headers=AUTH)
    await store.suppress("bounced@example.com", datetime(2025, 1, 1, tzinfo=UTC), {"status": "5.1.1"})
    bounced = await client.post("/sign-in-links", json={"to": "bounced@example.com", "link": LINK}, headers=AUTH)

    assert (refused.status_code, bounced.status_code) == (422, 422)
    assert smtp.outbox == []


@pytest.mark.parametrize(
    "body",
    [
        {"to": "alice@example.com", "link": "javascript:alert(1)"},
        {"to": "not an address", "link": LINK},
        {"to": "alice@example.com", "link": LINK, "language": "../etc"},
    ],
)
async def test_a_link_that_is_not_a_web_address_or_a_bad_recipient_is_refused(client, smtp, body):
    assert (await client.post("/sign-in-links", json=body, headers=AUTH)).status_code == 422
    assert smtp.outbox == []


async def test_sending_a_sign_in_link_needs_the_service_token(client, smtp):
    response = await client.post("/sign-in-links", json={"to": "alice@example.com", "link": LINK})

    assert response.status_code == 401
    assert smtp.outbox == []
