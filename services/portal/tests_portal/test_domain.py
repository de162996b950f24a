import pytest
from portal.domain import STATUS_LABELS, can_use_agent_workspace, label, safe_next


@pytest.mark.parametrize("target", ["/tickets", "/tickets/1?view=mine", "/tickets?a=b#frag"])
def test_a_path_on_this_site_is_a_safe_next_page(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "",
        None,
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "/x\\y",
        "/\r\nLocation: x",
        "tickets",
    ],
)
def test_anything_else_falls_back_to_the_ticket_list(target: str | None) -> None:
    assert safe_next(target) == "/tickets"


def test_statuses_have_human_labels() -> None:
    assert label("waiting_for_customer", STATUS_LABELS) == "Waiting for customer"
    assert label("on_hold", STATUS_LABELS) == "On hold"
    assert label(None, STATUS_LABELS) == "—"


def test_only_staff_roles_may_use_the_agent_workspace() -> None:
    assert [r for r in ("admin", "agent", "light_agent", "customer") if can_use_agent_workspace(r)] == [
        "admin",
        "agent",
        "light_agent",
    ]
