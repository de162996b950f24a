"""The default rules end to end by email: auto-reply, assignment, agent reply, customer reply, statuses."""

import time
from email.message import EmailMessage

from local import LocalHelpdesk

from .client import api, api_send, caught, create_api_ticket, customer_mail, eventually, send_mail, ticket_of


def mail_to(hd: LocalHelpdesk, address: str, subject_part: str) -> EmailMessage | None:
    return next(
        (m for m in caught(hd) if address in str(m.get("To", "")) and subject_part in str(m.get("Subject", ""))),
        None,
    )


def status_of(hd: LocalHelpdesk, number: int) -> str:
    return str(api(hd, "tickets", f"/api/tickets/{number}")["status"])


def test_the_default_flow_works_by_email_from_first_mail_to_the_customers_answer(helpdesk: LocalHelpdesk) -> None:
    customer = "olle.berg@example.se"
    staff = api(helpdesk, "portal", "/internal/staff")
    admin = next(m for m in staff if m["role"] == "admin")

    # 1. a customer writes; the ticket is New and unassigned, and the customer gets the automatic reply
    send_mail(
        helpdesk,
        customer_mail(f"Olle Berg <{customer}>", "Fakturan stämmer inte", "Beloppet är fel.", "flow-1@example.se"),
        sender=customer,
    )
    ticket = eventually(
        lambda: ticket_of(helpdesk, customer),
        what="the ticket",
    )
    number = ticket["number"]
    auto = eventually(lambda: mail_to(helpdesk, customer, f"[#{number}]"), what="the automatic reply")
    assert auto["Auto-Submitted"] == "auto-replied"

    # 2. a dispatcher assigns it to the admin: the handler hears of it (a dispatcher is not the handler)
    api_send(
        helpdesk,
        "tickets",
        "PATCH",
        f"/api/tickets/{number}",
        {"command_id": f"assign-{number}-0001", "fields": {"handler": admin["id"], "group": "support"}},
        actor="dispatcher-1",
    )
    assigned = eventually(lambda: mail_to(helpdesk, admin["email"], f"[#{number}]"), what="the assignment mail")
    assert assigned["Auto-Submitted"] == "auto-generated"

    # 3. the handler answers publicly: the customer gets the answer as a reply in the thread, from the agent,
    #    and the ticket waits for the customer
    api_send(
        helpdesk,
        "tickets",
        "POST",
        f"/api/tickets/{number}/comments",
        {"command_id": f"reply-{number}-0001", "kind": "public_reply", "text": "Vi har rättat fakturan."},
        actor=admin["id"],
        email_=admin["email"],
    )

    def agent_reply() -> EmailMessage | None:
        found = [m for m in caught(helpdesk) if customer in str(m.get("To", "")) and "rättat" in _body(m)]
        return found[0] if found else None

    answer = eventually(agent_reply, what="the agent's reply by email")
    assert f"[#{number}]" in answer["Subject"]
    assert "<flow-1@example.se>" in str(answer["In-Reply-To"]) + str(answer["References"])
    assert answer["Auto-Submitted"] in (None, "no")
    assert eventually(lambda: status_of(helpdesk, number) == "waiting_for_customer", what="Waiting for customer")

    # 4. the customer answers that mail: the ticket waits for the agent again, and the handler is told
    before = len([m for m in caught(helpdesk) if admin["email"] in str(m.get("To", ""))])
    send_mail(
        helpdesk,
        customer_mail(
            customer,
            f"Re: {answer['Subject']}",
            "Tack, nu stämmer det.\n\n> Vi har rättat fakturan.",
            "flow-2@example.se",
            In_Reply_To=answer["Message-ID"],
            References=f"<flow-1@example.se> {answer['Message-ID']}",
        ),
        sender=customer,
    )
    assert eventually(lambda: status_of(helpdesk, number) == "waiting_for_agent", what="Waiting for agent")
    told = eventually(
        lambda: len([m for m in caught(helpdesk) if admin["email"] in str(m.get("To", ""))]) > before,
        what="the handler's notice of the customer's reply",
    )
    assert told
    detail = api(helpdesk, "tickets", f"/api/tickets/{number}")
    assert [c["author"]["role"] for c in detail["comments"]] == ["customer", "admin", "customer"]
    assert any("rule" in a["detail"] for a in detail["activity"])  # the status moves say which rule moved them

    # the firing log says which rules fired on this ticket, and why
    firings = api(helpdesk, "triggers", f"/firings?ticket_id={ticket['ticket_id']}")
    fired = {f["rule_id"] for record in firings for f in record["firings"]}
    assert {
        "auto-reply-new-ticket",
        "notify-handler-on-assignment",
        "email-agent-reply",
        "agent-reply-waiting-for-customer",
        "customer-reply-waiting-for-agent",
        "customer-reply-notify-handler",
    } <= fired


def priority_changes(hd: LocalHelpdesk, number: int) -> list[dict]:
    return [a for a in api(hd, "tickets", f"/api/tickets/{number}")["activity"] if "priority" in a["detail"]]


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    return part.get_content() if part is not None else ""


def test_two_rules_that_answer_each_other_are_cut_off_at_the_depth_limit(helpdesk: LocalHelpdesk) -> None:
    """A rule that raises the priority and one that lowers it would loop for ever; the chain stops at depth 5."""
    rules = {
        "loop-lower": ("high", "low"),
        "loop-raise": ("low", "high"),
    }
    for rule_id, (when, then) in rules.items():
        api_send(
            helpdesk,
            "triggers",
            "PUT",
            f"/rules/{rule_id}",
            {
                "name": f"Loop test: {when} → {then}",
                "event": "ticket.updated",
                "field": "priority",
                "applies_to": {"channels": ["api"]},
                "conditions": [{"field": "ticket.priority", "op": "is", "value": when}],
                "actions": [{"type": "set_fields", "fields": {"priority": then}}],
            },
        )
    try:
        created = create_api_ticket(
            helpdesk, "loop-ticket-0001", "loop.tester@example.org", title="Loop test", priority="medium"
        )
        number = created["number"]
        # the rules are cached for up to HELPDESK_RULES_CACHE_SECONDS (5); the change must come after they are seen
        time.sleep(6)
        api_send(
            helpdesk,
            "tickets",
            "PATCH",
            f"/api/tickets/{number}",
            {"command_id": "loop-raise-0001", "fields": {"priority": "high"}},
        )

        def cut_off() -> list[dict] | None:
            records = api(helpdesk, "triggers", f"/firings?ticket_id={created['ticket_id']}")
            cuts = [c for r in records for c in r.get("cut_offs", []) if "too deep" in c["reason"]]
            return cuts or None

        (cut,) = eventually(cut_off, what="the cut-off in the firing log")
        assert "limit 5" in cut["reason"]
        changes = [
            a for a in api(helpdesk, "tickets", f"/api/tickets/{number}")["activity"] if "priority" in a["detail"]
        ]
        time.sleep(2)
        again = [a for a in api(helpdesk, "tickets", f"/api/tickets/{number}")["activity"] if "priority" in a["detail"]]
        assert len(again) == len(changes) == 6  # the person's change and five by rules, then it stopped
    finally:
        for rule_id in rules:
            api_send(helpdesk, "triggers", "POST", f"/rules/{rule_id}/active", {"active": False})


def test_a_dormant_ticket_wakes_up_by_itself_when_its_date_comes(helpdesk: LocalHelpdesk) -> None:
    """The time rule 'Dormant ticket wakes up' runs on the durable scheduler through Kafka and tickets."""
    from datetime import UTC, datetime, timedelta

    created = create_api_ticket(helpdesk, "dormant-ticket-0001", "sleepy@example.org", title="Call back in a moment")
    number = created["number"]
    wake = datetime.now(UTC) + timedelta(seconds=4)
    api_send(
        helpdesk,
        "tickets",
        "PATCH",
        f"/api/tickets/{number}",
        {
            "command_id": "dormant-ticket-0002",
            "fields": {"handler": "admin-1", "status": "dormant", "dormant_until": wake.isoformat()},
        },
    )
    assert status_of(helpdesk, number) == "dormant"

    assert eventually(lambda: status_of(helpdesk, number) == "open", timeout=40, what="the ticket to wake up")
    woke = next(a for a in api(helpdesk, "tickets", f"/api/tickets/{number}")["activity"] if "open" in a["detail"])
    assert "Dormant ticket wakes up" in woke["detail"] or "wake-dormant-ticket" in str(woke)
    assert datetime.fromisoformat(woke["at"].replace("Z", "+00:00")) >= wake


def test_an_sla_breach_becomes_an_event_a_rule_acts_on(helpdesk: LocalHelpdesk) -> None:
    """SLA due times land on the ticket; at the breach, SlaWarned goes through Kafka and a rule adds a note."""
    api_send(
        helpdesk,
        "triggers",
        "PUT",
        "/sla-policies/e2e-urgent",
        {
            "name": "Urgent: answer within a minute",
            "priorities": ["high"],
            "first_response_minutes": 1,
            "near_breach_minutes": 0,
        },
    )
    api_send(
        helpdesk,
        "triggers",
        "PUT",
        "/rules/e2e-sla-note",
        {
            "name": "Note a breached SLA",
            "event": "sla.breached",
            "actions": [{"type": "add_note", "text": "SLA breached: {{ metric }} was due {{ due_at }}"}],
        },
    )
    try:
        time.sleep(6)  # the rules and policies caches (5 s)
        created = create_api_ticket(
            helpdesk, "sla-ticket-0001", "impatient@example.org", title="Down again", priority="high"
        )
        number = created["number"]
        due = eventually(
            lambda: api(helpdesk, "tickets", f"/api/tickets/{number}").get("sla", {}).get("first_response_due"),
            what="the SLA due time on the ticket",
        )
        assert due

        def note() -> dict | None:
            comments = api(helpdesk, "tickets", f"/api/tickets/{number}")["comments"]
            return next((c for c in comments if c["text"].startswith("SLA breached: first_response")), None)

        found = eventually(note, timeout=120, what="the rule's note after the breach")
        assert found["visibility"] == "internal" and found["author"]["role"] == "system"
    finally:
        api_send(helpdesk, "triggers", "POST", "/rules/e2e-sla-note/active", {"active": False})
        api_send(helpdesk, "triggers", "DELETE", "/sla-policies/e2e-urgent", {})
