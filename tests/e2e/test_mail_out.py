"""Mail out on the real stack: a mail server's temporary refusal is retried, a permanent one is recorded."""

from local import LocalHelpdesk
from prometheus_client.parser import text_string_to_metric_families

from .client import api, caught, customer_mail, eventually, get_text, send_mail, ticket_of


def notify_outcomes(hd: LocalHelpdesk) -> dict[tuple[str, str], float]:
    return {
        (s.labels["template"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(get_text(hd, "notify", "/metrics"))
        for s in family.samples
        if s.name == "helpdesk_notifications_total"
    }


def test_a_451_from_the_mail_server_is_retried_and_the_reply_arrives_once(helpdesk: LocalHelpdesk) -> None:
    customer = "lea@defer.test"  # the catcher answers 451 the first time, then accepts
    send_mail(helpdesk, customer_mail(customer, "Later please", "Hej!", "defer-1@defer.test"), sender=customer)

    reply = eventually(
        lambda: next((m for m in caught(helpdesk) if customer in str(m.get("To", ""))), None),
        timeout=60,
        what="the automatic reply after the retry",
    )
    assert reply["Auto-Submitted"] == "auto-replied"
    assert notify_outcomes(helpdesk).get(("auto_reply", "deferred"), 0) >= 1
    number = eventually(lambda: ticket_of(helpdesk, customer), what="the ticket")["number"]
    activity = api(helpdesk, "tickets", f"/api/tickets/{number}")["activity"]
    assert not [a for a in activity if a["action"] == "email failed"]
    assert len([m for m in caught(helpdesk) if customer in str(m.get("To", ""))]) == 1


def test_a_550_from_the_mail_server_is_recorded_on_the_ticket_and_not_retried(helpdesk: LocalHelpdesk) -> None:
    customer = "kim@refuse.test"  # the catcher answers 550 5.1.1
    before = notify_outcomes(helpdesk)
    send_mail(helpdesk, customer_mail(customer, "Nobody home", "Hej!", "refuse-1@refuse.test"), sender=customer)
    number = eventually(lambda: ticket_of(helpdesk, customer), what="the ticket")["number"]

    def failure() -> dict | None:
        activity = api(helpdesk, "tickets", f"/api/tickets/{number}")["activity"]
        return next((a for a in activity if a["action"] == "email failed"), None)

    failed = eventually(failure, timeout=60, what="the failed mail on the ticket")
    assert "550" in failed["detail"] and customer in failed["detail"]
    after = notify_outcomes(helpdesk)
    assert after.get(("auto_reply", "failed"), 0) >= before.get(("auto_reply", "failed"), 0) + 1
    assert after.get(("auto_reply", "deferred"), 0) == before.get(("auto_reply", "deferred"), 0)  # no retry
    assert not [m for m in caught(helpdesk) if customer in str(m.get("To", ""))]
