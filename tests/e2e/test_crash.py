"""A service that crashes between two steps loses nothing and doubles nothing once it is back.

Each test restarts one service with a failpoint (hdkit.failpoints) that exits the process at an exact
step, as kill -9 would, lets it crash there, starts it again normally and checks the outcome.
"""

import smtplib
import time

import pytest
from local import LocalHelpdesk

from .client import api, caught, customer_mail, eventually, send_mail


def crash_next_time(hd: LocalHelpdesk, service: str, failpoint: str) -> None:
    hd.stop_process(service)
    hd.restart_service(service, extra_env={"HELPDESK_FAILPOINTS": failpoint})


def wait_for_crash(hd: LocalHelpdesk, service: str) -> None:
    eventually(lambda: hd.procs[service].poll() == 70, timeout=30, what=f"{service} to crash at its failpoint")
    hd.procs.pop(service)
    hd.restart_service(service)


def tickets_per(hd: LocalHelpdesk, customers: list[str]) -> dict[str, int]:
    items = api(hd, "tickets", "/api/tickets?view=all&limit=200")["items"]
    return {c: sum(t["requester"]["email"] == c for t in items) for c in customers}


def replies_per(hd: LocalHelpdesk, customers: list[str]) -> dict[str, int]:
    to = [str(m["To"]) for m in caught(hd)]
    return {c: sum(c in t for t in to) for c in customers}


def exactly_once(hd: LocalHelpdesk, customers: list[str]) -> None:
    eventually(lambda: all(tickets_per(hd, customers).values()), timeout=60, what="a ticket for every email")
    eventually(lambda: all(replies_per(hd, customers).values()), timeout=60, what="a reply for every email")
    time.sleep(2)  # a doubled ticket or reply would show up by now
    assert set(tickets_per(hd, customers).values()) == {1}
    assert set(replies_per(hd, customers).values()) == {1}


def test_tickets_crashing_after_handling_before_committing_makes_no_double_ticket(helpdesk: LocalHelpdesk) -> None:
    crash_next_time(helpdesk, "tickets", "after_handle:3")
    customers = [f"commit{n}@example.fi" for n in range(6)]
    for n, customer in enumerate(customers):
        send_mail(helpdesk, customer_mail(customer, f"Krasch {n}", "Hej", f"commit-{n}@example.fi"), sender=customer)
    wait_for_crash(helpdesk, "tickets")
    exactly_once(helpdesk, customers)


def test_notify_crashing_after_sending_before_publishing_sends_no_second_mail(helpdesk: LocalHelpdesk) -> None:
    crash_next_time(helpdesk, "notify", "before_publish:1")
    customer = "sent.once@example.fi"
    send_mail(helpdesk, customer_mail(customer, "Skickat en gång", "Hej", "sent-once@example.fi"), sender=customer)
    wait_for_crash(helpdesk, "notify")
    exactly_once(helpdesk, [customer])
    (ticket,) = [t for t in api(helpdesk, "tickets", "/api/tickets?view=all&limit=200")["items"]
                 if t["requester"]["email"] == customer]  # fmt: skip

    def sent_logged() -> int:
        detail = api(helpdesk, "tickets", f"/api/tickets/{ticket['number']}")
        return sum(a["action"] == "email sent" for a in detail["activity"])

    assert eventually(sent_logged, timeout=40, what="the sent mail on the ticket (published after the restart)") == 1


def test_ingest_crashing_before_kafka_has_the_mail_never_says_250_and_the_retry_is_kept_once(
    helpdesk: LocalHelpdesk,
) -> None:
    crash_next_time(helpdesk, "ingest", "before_publish:1")
    customer = "retry.later@example.fi"
    message = customer_mail(customer, "Försök igen", "Hej", "retry-later@example.fi")
    with pytest.raises(smtplib.SMTPException):
        send_mail(helpdesk, message, sender=customer)  # the connection drops: no 250, the MTA keeps the mail
    wait_for_crash(helpdesk, "ingest")
    send_mail(helpdesk, message, sender=customer)  # the MTA's retry
    exactly_once(helpdesk, [customer])
