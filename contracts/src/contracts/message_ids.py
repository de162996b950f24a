"""Our own signed Message-IDs: notify makes them, tickets reads the ticket back out of replies to them."""

import hashlib
import hmac

PREFIX = "hd"


def _signature(secret: str, ticket_id: str, token: str) -> str:
    mac = hmac.new(secret.encode(), f"{ticket_id}.{token}".encode(), hashlib.sha256)
    return mac.hexdigest()[:20]


def make_message_id(*, ticket_id: str, token: str, secret: str, domain: str) -> str:
    """Return a Message-ID (without brackets) that names the ticket and cannot be forged without the secret."""
    token = "".join(c for c in token if c.isalnum())[:24]
    return f"{PREFIX}.{ticket_id}.{token}.{_signature(secret, ticket_id, token)}@{domain}"


def ticket_id_from_message_id(message_id: str, secret: str) -> str | None:
    """Return the ticket id named by one of our Message-IDs, or None if it is not ours or not genuine."""
    local = message_id.strip().strip("<>").partition("@")[0]
    parts = local.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    _, ticket_id, token, sig = parts
    if not hmac.compare_digest(sig, _signature(secret, ticket_id, token)):
        return None
    return ticket_id
