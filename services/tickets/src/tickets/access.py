"""Who may see which tickets, as store filters, so every read is limited on the server.

A view for a viewer is a list of filters whose union is the answer: one per group the agent belongs to
(plus tickets without a group), each answered through its own index (see store.INDEXES).
"""

from typing import Annotated, Any, Literal, get_args

from fastapi import Header, HTTPException, status

from tickets.domain import EPOCH
from tickets.workflow import Viewer

View = Literal[
    "unassigned",
    "mine",
    "waiting_for_agent",
    "waiting_for_customer",
    "all_open",
    "dormant",
    "recently_updated_by_customers",
    "all",
]
VIEWS: tuple[View, ...] = get_args(View)
AGENT_ONLY_VIEWS = {"unassigned", "mine", "recently_updated_by_customers"}
ROLES = {"admin", "agent", "light_agent", "customer", "system"}


async def viewer(
    x_actor_id: Annotated[str, Header(max_length=200)] = "",
    x_actor_role: Annotated[str, Header(max_length=20)] = "",
    x_actor_email: Annotated[str, Header(max_length=320)] = "",
    x_actor_groups: Annotated[str, Header(max_length=4000)] = "",
    x_actor_organisation: Annotated[str, Header(max_length=200)] = "",
    x_actor_name: Annotated[str, Header(max_length=200)] = "",
) -> Viewer:
    """Read the acting user from the headers the calling service sets; refuse requests that do not say who."""
    if not x_actor_id or x_actor_role not in ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "X-Actor-Id and a valid X-Actor-Role are required")
    # "*" (every group) is for commands from trusted Kafka producers only, never from a header
    groups = tuple(sorted({g.strip() for g in x_actor_groups.split(",") if g.strip() and g.strip() != "*"}))
    return Viewer(
        id=x_actor_id,
        role=x_actor_role,
        email=x_actor_email.lower() or None,
        groups=groups,
        organisation=x_actor_organisation or None,
        name=x_actor_name,
    )


def scopes(v: Viewer, *, organisation_visible: bool = False) -> list[dict[str, Any]]:
    """Return the disjoint filters whose union is every ticket the viewer may see."""
    if v.role in ("admin", "system"):
        return [{}]
    if v.role == "customer":
        if not v.email:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a customer must be identified by email")
        if not (organisation_visible and v.organisation):
            return [{"requester.email": v.email}]
        # the organisation's tickets, and the customer's own filed under no or another organisation
        # (disjoint, so counts add up; each one covered by an index)
        org = v.organisation
        return [
            {"organisation": org},
            {"requester.email": v.email, "organisation": None},
            {"requester.email": v.email, "organisation": {"$lt": org}},
            {"requester.email": v.email, "organisation": {"$gt": org}},
        ]
    return [{"group": g} for g in (*v.groups, None)]


def view_filters(view: View, v: Viewer, *, organisation_visible: bool = False) -> tuple[list[dict[str, Any]], str]:
    """Return the filters of a queue view for a viewer and the field it is sorted by (newest first)."""
    if v.role == "customer" and view in AGENT_ONLY_VIEWS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {view} view is for agents")
    conditions: dict[str, dict[str, Any]] = {
        "unassigned": {"phase": "active", "handler": None},
        "mine": {"phase": "active", "handler": v.id},
        "waiting_for_agent": {"phase": "active", "status_category": "waiting_for_agent"},
        "waiting_for_customer": {"phase": "active", "status_category": "waiting_for_customer"},
        "all_open": {"phase": "active"},
        "dormant": {"phase": "dormant"},
        "recently_updated_by_customers": {"phase": "active", "last_customer_comment_at": {"$gt": EPOCH}},
        "all": {},
    }
    sort = "last_customer_comment_at" if view == "recently_updated_by_customers" else "updated_at"
    condition = conditions[view]
    return [{**scope, **condition} for scope in scopes(v, organisation_visible=organisation_visible)], sort
