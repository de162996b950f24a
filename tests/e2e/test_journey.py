"""A customer's email crosses all five services and its reply comes back to the same ticket."""

import json
import re
from email.message import EmailMessage
from pathlib import Path

import httpx
from contracts.message_ids import ticket_id_from_message_id
from local import LocalHelpdesk

from .client import api, caught, customer_mail, eventually, get_text, send_mail, ticket_of


def auto_reply_to(hd: LocalHelpdesk, message_id: str) -> EmailMessage | None:
    return next((m for m in caught(hd) if f"<{message_id}>" in str(m.get("In-Reply-To", ""))), None)


def test_an_email_becomes_a_ticket_gets_an_auto_reply_and_the_reply_threads_back(
    helpdesk: LocalHelpdesk,
) -> None:
    customer = "karin.lund@example.se"
    send_mail(
        helpdesk,
        customer_mail(
            f"Karin Lund <{customer}>",
            "Skrivaren på plan 3 är trasig",
            "Hej! Den skriver ut blankt.",
            "journey-1@example.se",
        ),
        sender=customer,
    )

    ticket = eventually(lambda: ticket_of(helpdesk, customer), what="the ticket")
    assert ticket["status"] == "new"
    assert ticket["handler"] is None
    assert ticket["title"] == "Skrivaren på plan 3 är trasig"
    number = ticket["number"]

    reply = eventually(lambda: auto_reply_to(helpdesk, "journey-1@example.se"), what="the automatic reply")
    assert f"[#{number}]" in reply["Subject"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert "support@localhost" in reply["From"] and "support@localhost" in reply["Reply-To"]
    assert reply["To"].addresses[0].addr_spec == customer
    our_id = reply["Message-ID"].strip("<>")
    secret = helpdesk.secrets["HELPDESK_MESSAGE_ID_SECRET"]
    assert ticket_id_from_message_id(our_id, secret) == ticket["ticket_id"]

    answer = customer_mail(
        customer,
        f"Re: {reply['Subject']}",
        "Den skriver fortfarande ut blankt.\n\n> tidigare text",
        "journey-2@example.se",
        In_Reply_To=f"<{our_id}>",
        References=f"<journey-1@example.se> <{our_id}>",
    )
    send_mail(helpdesk, answer, sender=customer)

    def replied() -> dict | None:
        detail = api(helpdesk, "tickets", f"/api/tickets/{number}")
        return detail if len(detail["comments"]) == 2 else None

    detail = eventually(replied, what="the customer's reply on the ticket")
    # the default rule "Customer's reply → Waiting for agent" moves it (a moment after the comment)
    eventually(
        lambda: api(helpdesk, "tickets", f"/api/tickets/{number}")["status"] == "waiting_for_agent",
        what="Waiting for agent",
    )
    first, second = detail["comments"]
    assert second["author"]["role"] == "customer" and second["visibility"] == "public"
    assert "fortfarande" in second["text"]
    assert any("reply to our message" in a["detail"] for a in detail["activity"])
    assert [t["number"] for t in api(helpdesk, "tickets", "/api/tickets?view=all&limit=200")["items"]].count(
        number
    ) == 1
    assert ticket_of(helpdesk, customer)["ticket_id"] == ticket["ticket_id"]

    # the link in the automatic reply shows the customer the public conversation, without an account
    link = re.search(r"https?://\S+/t/[A-Za-z0-9_-]+", reply.get_body(("plain",)).get_content()).group(0)
    followed = httpx.get(link, timeout=10)
    assert followed.status_code == 200
    assert "Den skriver fortfarande ut blankt." in followed.text and "Sign out" not in followed.text

    # the customer's reply gets no second automatic reply
    assert len([m for m in caught(helpdesk) if m["To"] and customer in str(m["To"])]) == 1

    # the admin signs in to the portal and sees the ticket and its conversation
    base = f"http://127.0.0.1:{helpdesk.ports.portal}"
    email_, password = re.search(r"admin login: (\S+) / (\S+)", helpdesk.admin_line).groups()
    with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as browser:
        form = browser.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        listing = browser.post("/login", data={"email": email_, "password": password, "csrf_token": csrf})
        assert listing.status_code == 200
        assert "Skrivaren på plan 3 är trasig" in listing.text
        page = browser.get(f"/tickets/{number}")
        assert page.status_code == 200
        assert "Den skriver ut blankt." in page.text and "Den skriver fortfarande ut blankt." in page.text


def test_one_email_is_one_trace_across_ingest_tickets_triggers_and_notify(helpdesk: LocalHelpdesk) -> None:
    customer = "trace.me@example.no"
    send_mail(helpdesk, customer_mail(customer, "Sporing", "Hei", "trace-1@example.no"), sender=customer)
    eventually(lambda: auto_reply_to(helpdesk, "trace-1@example.no"), what="the automatic reply")
    trace_dir = Path(helpdesk.trace_dir)

    def spans() -> list[dict]:
        return [json.loads(line) for f in trace_dir.glob("*.jsonl") for line in f.read_text().splitlines() if line]

    def traced() -> set[str] | None:
        all_spans = spans()
        roots = [s for s in all_spans if s["service"] == "ingest" and s["name"] == "ingest email"]
        for root in roots:
            services = {s["service"] for s in all_spans if s["trace_id"] == root["trace_id"]}
            if {"ingest", "tickets", "triggers", "notify"} <= services:
                return services
        return None

    services = eventually(traced, timeout=20, what="one trace through every service")
    assert {"ingest", "tickets", "triggers", "notify"} <= services


def test_every_service_exposes_health_and_prometheus_metrics(helpdesk: LocalHelpdesk) -> None:
    for service in ("ingest", "tickets", "triggers", "notify", "portal"):
        assert json.loads(get_text(helpdesk, service, "/health"))["status"] == "ok"
        assert json.loads(get_text(helpdesk, service, "/ready"))["checks"] == {"store": True, "kafka": True}
        metrics = get_text(helpdesk, service, "/metrics")
        assert "# TYPE" in metrics, service
    assert "helpdesk_ingest_messages_total" in get_text(helpdesk, "ingest", "/metrics")
