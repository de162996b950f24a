"""An admin sets up a rule and a ticket type in a real browser, and the running helpdesk follows them."""

import re
import uuid
from typing import Any

from local import LocalHelpdesk

from .client import api, create_api_ticket, eventually


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


def test_an_admin_adds_a_rule_and_a_ticket_type_in_the_browser_and_the_helpdesk_uses_them(
    helpdesk: LocalHelpdesk, chromium: Any, screenshots: Any
) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
    try:
        sign_in(page, helpdesk)

        # Administration → Automations → a new rule, made in the form.
        page.click("#nav-admin")
        page.wait_for_url(re.compile(r".*/admin$"))
        page.click("a[href='/admin/automations']")
        page.wait_for_url(re.compile(r".*/admin/automations$"))
        page.click("#new-rule")
        page.fill("#rule-name", "VIP first")
        page.select_option("#rule-event", "ticket.created")
        assert not page.is_visible("#rule-field")  # only for "Ticket updated"
        page.fill("#cond-field-0", "ticket.title")
        page.select_option("#cond-op-0", "contains")
        page.fill("#cond-value-0", "VIP")
        page.select_option("#act-type-0", "set_fields")
        assert page.is_visible("#act-field-0")
        assert not page.is_visible("#act-template-0")  # the parts of other action types are hidden
        page.fill("#act-field-0", "priority")
        page.fill("#act-value-0", "high")
        screenshots(page, "admin-rule-editor")
        page.click("#rule-save")
        page.wait_for_url(re.compile(r".*/admin/automations\?notice=saved$"))
        row = page.locator("#rule-vip-first")
        assert row.get_by_text("VIP first").is_visible()
        assert row.locator("button.toggle.on").is_visible()  # listed as active
        screenshots(page, "admin-automations")

        # Ticket types → a new type with its own workflow.
        page.click("a[href='/admin/types']")
        page.click("#new-type")
        page.fill("#type-name", "Return")
        assert page.input_value("#status-name-0") == "New"
        page.fill("#status-name-1", "With warehouse")
        page.fill("#status-key-1", "with_warehouse")
        page.select_option("#status-category-1", "open")
        assert page.input_value("#status-name-2") == "Closed"
        page.click("#type-save")
        page.wait_for_url(re.compile(r".*/admin/types\?notice=saved$"))
        assert page.locator("#type-return").get_by_text("With warehouse").is_visible()
        screenshots(page, "admin-types")
        assert errors == []  # no script error on any page
        assert missing == []  # every page, style sheet and script loaded

        # The rule works on a new ticket, and the type is in the tickets service's configuration.
        created = create_api_ticket(
            helpdesk, f"admin-vip-{uuid.uuid4().hex}", "vip.kund@example.se", title="VIP: skrivaren är trasig"
        )
        eventually(
            lambda: api(helpdesk, "tickets", f"/api/tickets/{created['number']}")["priority"] == "high",
            what="priority high set by the rule 'VIP first'",
        )
        types = api(helpdesk, "tickets", "/api/config")["config"]["types"]
        returns = next(t for t in types if t["key"] == "return")
        assert [(s["name"], s["category"]) for s in returns["statuses"]] == [
            ("New", "new"),
            ("With warehouse", "open"),
            ("Closed", "closed"),
        ]
    finally:
        context.close()
