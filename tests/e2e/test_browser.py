"""The portal in a real browser (Debian's Chromium through Playwright) on the whole running helpdesk."""

import re
from typing import Any

from local import LocalHelpdesk

from .client import api, customer_mail, eventually, send_mail


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
        lambda: next(
            (
                t
                for t in api(helpdesk, "tickets", "/api/tickets?view=all&limit=200")["items"]
                if t["requester"]["email"] == customer
            ),
            None,
        ),
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
