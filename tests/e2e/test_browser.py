"""The portal in a real browser (Debian's Chromium through Playwright) on the whole running helpdesk."""

import re
from typing import Any

from local import LocalHelpdesk

from .client import api, caught, customer_mail, eventually, send_mail, ticket_of


def admin_login(hd: LocalHelpdesk) -> tuple[str, str]:
    found = re.search(r"admin login: (\S+) / (\S+)", hd.admin_line)
    assert found, hd.admin_line
    return found.group(1), found.group(2)


def sign_in(page: Any, hd: LocalHelpdesk) -> None:
    email, password = admin_login(hd)
    page.goto(f"http://127.0.0.1:{hd.ports.portal}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/tickets.*"))


def test_an_agent_signs_in_finds_the_new_ticket_in_the_queue_and_reads_it(
    helpdesk: LocalHelpdesk, chromium: Any, screenshots: Any
) -> None:
    customer = "browser.kund@example.se"
    send_mail(
        helpdesk,
        customer_mail(customer, "Skärmen flimrar", "Hej! Skärmen flimrar sedan i morse.", "browser-1@example.se"),
        sender=customer,
    )
    ticket = eventually(
        lambda: ticket_of(helpdesk, customer),
        what="the ticket",
    )
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        sign_in(page, helpdesk)
        assert page.get_by_text("Skärmen flimrar").first.is_visible()
        screenshots(page, "agent-queue")

        page.get_by_text("Skärmen flimrar").first.click()
        page.wait_for_url(re.compile(rf".*/tickets/{ticket['number']}$"))
        assert page.get_by_text("Skärmen flimrar sedan i morse.").first.is_visible()
        screenshots(page, "agent-ticket")
        assert errors == []  # no script error on the pages
    finally:
        context.close()


def test_agent_replies_from_the_queue_and_the_customer_answers_through_the_link(
    helpdesk: LocalHelpdesk, chromium: Any, screenshots: Any
) -> None:
    """Issue 6's main journey: Unassigned queue → assign → reply; the customer's page shows it; they answer."""
    customer = "journey.kund@example.se"
    send_mail(
        helpdesk,
        customer_mail(customer, "Fakturan saknas", "Hej! Jag har inte fått fakturan.", "browser-2@example.se"),
        sender=customer,
    )
    auto = eventually(
        lambda: next((m for m in caught(helpdesk) if customer in str(m.get("To", ""))), None),
        what="the automatic reply with the ticket link",
    )
    link = re.search(r"https?://\S+/t/[A-Za-z0-9_-]+", auto.get_body(("plain",)).get_content()).group(0)

    agent = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = agent.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    customer_ctx = chromium.new_context(viewport={"width": 390, "height": 844})  # a phone-size screen
    mine = customer_ctx.new_page()
    mine.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        sign_in(page, helpdesk)
        page.click("#view-unassigned")
        page.get_by_text("Fakturan saknas").first.click()
        page.click("#assign-me")
        page.fill("#reply-text", "Vi skickar fakturan igen i dag.")
        page.select_option("#reply-kind", "public_reply")
        page.get_by_role("button", name="Send").click()
        page.get_by_text("Vi skickar fakturan igen i dag.").first.wait_for()
        screenshots(page, "agent-replied")

        mine.goto(link)
        eventually(
            lambda: mine.reload() or mine.get_by_text("Vi skickar fakturan igen i dag.").count() > 0,
            what="the agent's reply on the customer's page",
        )
        mine.fill("#customer-reply-text", "Tack! Den har kommit nu.")
        mine.get_by_role("button", name="Send").click()
        mine.get_by_text("Tack! Den har kommit nu.").first.wait_for()
        screenshots(mine, "customer-link-phone")

        number = re.search(r"/tickets/(\d+)", page.url).group(1)
        assert eventually(
            lambda: api(helpdesk, "tickets", f"/api/tickets/{number}")["status"] == "waiting_for_agent",
            what="Waiting for agent after the customer's answer",
        )
        page.reload()
        assert page.get_by_text("Waiting for agent").first.is_visible()
        screenshots(page, "agent-ticket-after-answer")

        # An internal comment mentioning a teammate: typing @ offers the staff, Enter completes the handle.
        page.select_option("#reply-kind", "internal_comment")
        page.click("#reply-text")
        page.keyboard.type("Kolla fakturan, @adm")
        page.locator("#mention-0").wait_for()
        page.keyboard.press("Enter")
        assert page.input_value("#reply-text") == "Kolla fakturan, @admin "
        page.keyboard.type("tack.")
        page.click("#reply-send")
        page.get_by_text("Kolla fakturan, @admin tack.").first.wait_for()
        page.click("#nav-stats")
        page.locator("#stats-created-resolved").wait_for()
        screenshots(page, "agent-statistics")
        page.click("#nav-admin")
        page.locator("#admin-link-automations").wait_for()
        screenshots(page, "admin-home")
        assert errors == []
    finally:
        agent.close()
        customer_ctx.close()
