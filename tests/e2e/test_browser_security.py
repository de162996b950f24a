"""Who may see what, and hostile content, checked in a real browser on the whole running helpdesk."""

import re
import uuid
from email.message import EmailMessage
from typing import Any

from local import LocalHelpdesk

from .client import create_api_ticket, eventually, send_mail, ticket_of

HOSTILE_HTML = """<p>Hej!</p>
<script>window.__pwned = 'script'; alert('script')</script>
<img src="x" onerror="window.__pwned = 'onerror'; alert('onerror')">
<a href="javascript:window.__pwned = 'link'">klicka</a>
<svg onload="window.__pwned = 'svg'"></svg>
<iframe src="javascript:alert('frame')"></iframe>
<p>Mvh</p>"""


def add_user(hd: LocalHelpdesk, role: str, *groups: str) -> tuple[str, str]:
    """Add a portal user through the portal's command line; return (email, password)."""
    email = f"{role}.{uuid.uuid4().hex[:8]}@example.se"
    args = ["add-user", "--email", email, "--role", role]
    for group in groups:
        args += ["--group", group]
    found = re.search(r"user added: (\S+) / (\S+)", hd.run_cli("portal", *args))
    assert found, "portal add-user printed no password"
    return found.group(1), found.group(2)


def signed_in_page(chromium: Any, hd: LocalHelpdesk, email: str, password: str, **context: Any) -> tuple[Any, Any]:
    ctx = chromium.new_context(**{"viewport": {"width": 1280, "height": 800}, **context})
    page = ctx.new_page()
    page.goto(f"http://127.0.0.1:{hd.ports.portal}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return ctx, page


def test_scripts_in_a_mail_never_run_on_the_agents_page(helpdesk: LocalHelpdesk, chromium: Any) -> None:
    customer = "hostile.kund@example.se"
    message = EmailMessage()
    message["From"] = customer
    message["To"] = "support@localhost"
    message["Subject"] = "<script>alert('subject')</script> Skrivaren"
    message["Message-ID"] = "<hostile-1@example.se>"
    message.set_content("Hej! (plain)")
    message.add_alternative(HOSTILE_HTML, subtype="html")
    send_mail(helpdesk, message, sender=customer)
    ticket = eventually(lambda: ticket_of(helpdesk, customer), what="the hostile ticket")
    found = re.search(r"admin login: (\S+) / (\S+)", helpdesk.admin_line)
    assert found
    ctx, page = signed_in_page(chromium, helpdesk, found.group(1), found.group(2))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        for path in ("/tickets?view=all", f"/tickets/{ticket['number']}"):
            page.goto(f"http://127.0.0.1:{helpdesk.ports.portal}{path}")
            page.wait_for_load_state("networkidle")
            # The title is shown as text, its markup visible, never run.
            assert page.get_by_text("<script>alert('subject')</script> Skrivaren").first.is_visible()
            assert page.evaluate("window.__pwned") is None
        for link in page.locator("a", has_text="klicka").all():
            link.click()
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None
        assert dialogs == []
    finally:
        ctx.close()


def test_an_agent_sees_only_their_groups_tickets(helpdesk: LocalHelpdesk, chromium: Any) -> None:
    billing = create_api_ticket(
        helpdesk,
        f"sec-billing-{uuid.uuid4().hex}",
        "billing.kund@example.se",
        title="Faktura för billing",
        group="billing",
    )
    it = create_api_ticket(
        helpdesk, f"sec-it-{uuid.uuid4().hex}", "it.kund@example.se", title="Nätverket för it", group="it"
    )
    email, password = add_user(helpdesk, "agent", "it")
    ctx, page = signed_in_page(chromium, helpdesk, email, password)
    base = f"http://127.0.0.1:{helpdesk.ports.portal}"
    try:
        page.goto(f"{base}/tickets?view=all")
        assert page.locator(f"#ticket-row-{it['number']}").count() == 1
        assert page.locator(f"#ticket-row-{billing['number']}").count() == 0
        assert "Faktura för billing" not in page.content()

        response = page.goto(f"{base}/tickets/{billing['number']}")
        assert response is not None and response.status == 404
        assert "Faktura för billing" not in page.content()
        response = page.goto(f"{base}/tickets/{it['number']}")
        assert response is not None and response.status == 200
    finally:
        ctx.close()


def test_a_light_agent_cannot_reach_admin_pages(helpdesk: LocalHelpdesk, chromium: Any) -> None:
    email, password = add_user(helpdesk, "light_agent", "it")
    ctx, page = signed_in_page(chromium, helpdesk, email, password)
    base = f"http://127.0.0.1:{helpdesk.ports.portal}"
    try:
        assert page.locator("#nav-admin").count() == 0
        for path in (
            "/admin",
            "/admin/users",
            "/admin/automations",
            "/admin/types",
            "/admin/settings",
            "/admin/quarantine",
        ):
            response = page.goto(base + path)
            assert response is not None and response.status == 403, path
    finally:
        ctx.close()


def test_a_customer_cannot_open_another_customers_ticket(
    helpdesk: LocalHelpdesk, chromium: Any, screenshots: Any
) -> None:
    email, password = add_user(helpdesk, "customer")
    own = create_api_ticket(helpdesk, f"sec-own-{uuid.uuid4().hex}", email, title="Min egen fråga")
    other = create_api_ticket(helpdesk, f"sec-other-{uuid.uuid4().hex}", "annan.kund@example.se", title="Någon annans")
    ctx, page = signed_in_page(chromium, helpdesk, email, password, viewport={"width": 390, "height": 844})
    base = f"http://127.0.0.1:{helpdesk.ports.portal}"
    try:
        page.goto(f"{base}/my/tickets")
        assert page.get_by_text("Min egen fråga").first.is_visible()
        screenshots(page, "customer-requests-phone")
        assert "Någon annans" not in page.content()
        for path in (f"/my/tickets/{other['number']}", f"/tickets/{other['number']}"):
            page.goto(base + path)
            assert "Någon annans" not in page.content(), path
        response = page.goto(f"{base}/my/tickets/{other['number']}")
        assert response is not None and response.status == 404
        response = page.goto(f"{base}/my/tickets/{own['number']}")
        assert response is not None and response.status == 200
        screenshots(page, "customer-request-phone")
    finally:
        ctx.close()
