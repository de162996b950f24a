"""Who may see which tickets: turned into a store query, so it is enforced on the server for every read."""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Header, HTTPException, status

from tickets.domain import OPEN_STATUSES

View = Literal["unassigned", "mine", "waiting_for_agent", "waiting_for_customer", "all_open", "dormant", "all"]
VIEWS: tuple[View, ...] = (
    "unassigned",
    "mine",
    "waiting_for_agent",
    "waiting_for_customer",
    "all_open",
    "dormant",
    "all",
)
ROLES = {"admin", "agent", "light_agent", "customer", "system"}


@dataclass(frozen=True)
class Viewer:
    """The person (or service) a request acts for, as the calling service vouches."""

    id: str
    role: str
    email: str | None
    groups: tuple[str, ...]


async def viewer(
    x_actor_id: Annotated[str, Header()] = "",
    x_actor_role: Annotated[str, Header()] = "",
    x_actor_email: Annotated[str, Header()] = "",
    x_actor_groups: Annotated[str, Header()] = "",
) -> Viewer:
    """Read the acting user from the headers; refuse requests that do not say who acts."""
    if not x_actor_id or x_actor_role not in ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "X-Actor-Id and a valid X-Actor-Role are required")
    groups = tuple(g.strip() for g in x_actor_groups.split(",") if g.strip())
    return Viewer(id=x_actor_id, role=x_actor_role, email=x_actor_email.lower() or None, groups=groups)


def visible(v: Viewer) -> dict[str, Any]:
    """Return the query that limits tickets to those the viewer may see."""
    if v.role in ("admin", "system"):
        return {}
    if v.role == "customer":
        if not v.email:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a customer must be identified by email")
        return {"requester.email": v.email}
    return {"$or": [{"group": {"$in": list(v.groups)}}, {"group": None}]}


def view_query(view: View, v: Viewer) -> dict[str, Any]:
    """Return the query of a queue view for this viewer."""
    open_ = {"status": {"$in": list(OPEN_STATUSES)}}
    queries: dict[str, dict[str, Any]] = {
        "unassigned": {**open_, "handler": None},
        "mine": {**open_, "handler": v.id},
        "waiting_for_agent": {"status": "waiting_for_agent"},
        "waiting_for_customer": {"status": "waiting_for_customer"},
        "all_open": open_,
        "dormant": {"status": "dormant"},
        "all": {},
    }
    scope = visible(v)
    query = queries[view]
    if not scope:
        return query
    if not query:
        return scope
    return {"$and": [scope, query]}
