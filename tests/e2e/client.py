"""What a person or an integration does to the running helpdesk: send mail, read caught mail, ask the APIs."""

import email
import email.policy
import json
import smtplib
import time
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from local import LocalHelpdesk

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Return the first truthy result of `probe`, polling until `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:  # noqa: BLE001 - keep polling through a service still starting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def send_mail(hd: LocalHelpdesk, message: EmailMessage | bytes, *, sender: str, to: str = "support@localhost") -> None:
    """Deliver a message to ingest by SMTP; raises if it is not accepted with 250."""
    raw = message if isinstance(message, bytes) else message.as_bytes()
    with smtplib.SMTP("127.0.0.1", hd.ports.smtp, timeout=30) as smtp:
        refused = smtp.sendmail(sender, [to], raw)
    assert not refused


def customer_mail(sender: str, subject: str, body: str, message_id: str, **headers: str) -> EmailMessage:
    """Return a customer's email."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@localhost"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def caught(hd: LocalHelpdesk) -> list[EmailMessage]:
    """Return every mail the catcher has received, oldest first."""
    files = sorted(Path(hd.mail_dir).glob("*.eml"))
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]  # type: ignore[misc]


def _request(
    hd: LocalHelpdesk, service: str, path: str, *, role: str, actor: str, email_: str, **options: Any
) -> urllib.request.Request:
    """Return a request to a service's API, signed with the service token, acting for an actor."""
    headers = {
        "Authorization": f"Bearer {hd.secrets['HELPDESK_SERVICE_TOKEN']}",
        "X-Actor-Id": actor,
        "X-Actor-Role": role,
        "X-Actor-Email": email_,
        **options.pop("headers", {}),
    }
    url = f"http://127.0.0.1:{hd.ports.http(service)}{path}"
    return urllib.request.Request(url, headers=headers, **options)  # noqa: S310 - loopback


def api(
    hd: LocalHelpdesk,
    service: str,
    path: str,
    *,
    role: str = "admin",
    actor: str = "admin-1",
    email_: str = "",
) -> Any:
    """GET a JSON API of a service as an actor."""
    request = _request(hd, service, path, role=role, actor=actor, email_=email_)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def api_send(
    hd: LocalHelpdesk,
    service: str,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    role: str = "admin",
    actor: str = "admin-1",
    email_: str = "",
) -> Any:
    """Send a JSON body to an API of a service as an actor (POST, PUT, PATCH); return the JSON answer."""
    request = _request(
        hd,
        service,
        path,
        role=role,
        actor=actor,
        email_=email_,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        raw = response.read()
        return json.loads(raw) if raw else None


def ticket_of(hd: LocalHelpdesk, requester: str) -> dict[str, Any] | None:
    """Return the (newest listed) ticket of a requester, or None."""
    items = api(hd, "tickets", "/api/tickets?view=all&limit=200")["items"]
    return next((t for t in items if t["requester"]["email"] == requester), None)


def create_api_ticket(hd: LocalHelpdesk, command_id: str, requester: str, **fields: Any) -> dict[str, Any]:
    """Create a ticket through the tickets API (channel `api`) as the admin; return it."""
    body = {"command_id": command_id, "channel": "api", "requester": {"email": requester}, "fields": fields}
    created: dict[str, Any] = api_send(hd, "tickets", "POST", "/api/tickets", body)
    return created


def get_text(hd: LocalHelpdesk, service: str, path: str) -> str:
    """GET a text page of a service."""
    with urllib.request.urlopen(f"http://127.0.0.1:{hd.ports.http(service)}{path}", timeout=10) as r:  # noqa: S310
        return str(r.read().decode())
