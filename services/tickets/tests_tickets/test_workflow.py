"""The ticket commands' rules, as pure functions: who may do what, valid values, workflow, concurrency."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from contracts.commands import AddComment, CloseTicket, CreateTicket, FollowTicket, UpdateTicket
from contracts.models import Actor, Address
from tickets.config import Config, CustomField, Settings, Status, TicketType, default_config
from tickets.workflow import (
    Forbidden,
    Invalid,
    VersionConflict,
    Viewer,
    WorkflowRefused,
    add_comment,
    can_see,
    close,
    create,
    follow,
    update,
)

from contracts import CommentAdded, TicketAssigned, TicketClosed, TicketCreated, TicketUpdated

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ADMIN = Viewer(id="ada", role="admin", email="ada@helpdesk.example")
AGENT = Viewer(id="bo", role="agent", email="bo@helpdesk.example", groups=("support",))
LIGHT = Viewer(id="li", role="light_agent", email="li@helpdesk.example", groups=("support",))
CUSTOMER = Viewer(id="kund@example.se", role="customer", email="kund@example.se")


def config(**settings: Any) -> Config:
    base = default_config()
    custom = [
        CustomField(key="serial", name="Serial number", kind="text"),
        CustomField(key="units", name="Units", kind="number"),
        CustomField(key="model", name="Model", kind="pick_list", options=["laser", "inkjet"]),
        CustomField(key="warranty", name="Under warranty", kind="checkbox"),
        CustomField(key="bought", name="Bought on", kind="date"),
    ]
    return base.model_copy(update={"custom_fields": custom, "settings": Settings(**settings)})


def new(
    fields: dict[str, Any] | None = None, v: Viewer = AGENT, cfg: Config | None = None, **kw: Any
) -> dict[str, Any]:
    cmd = CreateTicket(
        command_id="create-0001",
        actor=v.actor(),
        requester=Address(email="kund@example.se", name="Kund"),
        fields={"title": "Skrivaren är trasig", "group": "support", **(fields or {})},
        **kw,
    )
    doc, _ = create(cmd, cfg or config(), v, ticket_id="t-1", number=1, now=NOW, templates={})
    return doc


def change(ticket: dict[str, Any], fields: dict[str, Any], v: Viewer = AGENT, cfg: Config | None = None, **kw: Any):
    cmd = UpdateTicket(command_id="update-0001", actor=v.actor(), number=ticket["number"], fields=fields, **kw)
    return update(ticket, cmd, cfg or config(), v, now=NOW)


def applied(ticket: dict[str, Any], ch: Any) -> dict[str, Any]:
    """The ticket after a change, as the store would leave it."""
    after = {**ticket, "version": ticket["version"] + 1, "custom": dict(ticket.get("custom", {}))}
    after["fv"] = dict(ticket.get("fv", {}))
    for key, value in ch.set_fields.items():
        if key.startswith("fv."):
            after["fv"][key[3:]] = value
        elif key.startswith("custom."):
            after["custom"][key[7:]] = value
        else:
            after[key] = value
    return after


def test_a_created_ticket_has_every_field_of_the_model_and_a_created_event() -> None:
    cmd = CreateTicket(
        command_id="create-0001",
        actor=AGENT.actor(),
        requester=Address(email="Kund@Example.se", name="Kund"),
        fields={"title": "  Skrivaren  ", "priority": "high", "custom.serial": "SN-1", "tags": ["Printer", "printer"]},
    )
    doc, events = create(cmd, config(), AGENT, ticket_id="t-1", number=1, now=NOW, templates={})
    for name in (
        "number title description type status priority category group handler requester organisation cc tags "
        "custom parent children recurrence attachments created_at updated_at last_updated_by "
        "last_customer_comment_at first_response_at resolved_at closed_at sla link_token version followers"
    ).split():
        assert name in doc, name
    assert doc["title"] == "Skrivaren" and doc["priority"] == "high" and doc["status"] == "new"
    assert doc["phase"] == "active" and doc["status_category"] == "new"
    assert doc["requester"]["email"] == "kund@example.se"
    assert doc["custom"] == {"serial": "SN-1"} and doc["tags"] == ["printer"]
    assert doc["applied"] == ["create-0001"]
    assert [type(e) for e in events] == [TicketCreated]


def test_the_title_is_always_required_and_required_fields_are_named() -> None:
    cfg = Config.model_validate({**config().model_dump(), "fields": {"category": {"used": True, "required": True}}})
    with pytest.raises(Invalid) as refused:
        new({"title": "   "})
    assert "title" in refused.value.fields
    cfg = Config.model_validate({**cfg.model_dump(), "categories": [{"key": "hardware", "name": "Hardware"}]})
    with pytest.raises(Invalid) as refused:
        new(cfg=cfg)
    assert refused.value.fields == ("category",)
    assert new({"category": "hardware"}, cfg=cfg)["category"] == "hardware"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"colour": "red"}, "colour"),
        ({"priority": "urgent"}, "priority"),
        ({"title": {"$gt": ""}}, "title"),
        ({"handler": {"$ne": None}}, "handler"),
        ({"custom.units": "many"}, "custom.units"),
        ({"custom.model": "dot-matrix"}, "custom.model"),
        ({"custom.warranty": "yes"}, "custom.warranty"),
        ({"custom.bought": "last week"}, "custom.bought"),
        ({"custom.nope": 1}, "custom.nope"),
        ({"custom": {"$where": "1"}}, "custom.$where"),
        ({"title": "x" * 1001}, "title"),
        ({"tags": ["ok", "not ok!"]}, "tags"),
        ({"cc": ["not-an-address"]}, "cc"),
        ({"dormant_until": "tomorrow"}, "dormant_until"),
        ({"recurrence": {"every": "sometimes"}}, "recurrence.every"),
        ({"parent": 3}, "parent"),
    ],
)
def test_bad_values_are_refused_naming_the_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(Invalid) as refused:
        new(fields)
    assert refused.value.fields == (named,)


def test_a_field_that_is_not_used_cannot_be_set() -> None:
    cfg = Config.model_validate({**config().model_dump(), "fields": {"category": {"used": False}}})
    with pytest.raises(Invalid, match="not used"):
        new({"category": None}, cfg=cfg)


def test_custom_fields_of_every_kind_are_stored_in_their_own_type() -> None:
    doc = new({"custom.units": 3, "custom.model": "laser", "custom.warranty": True, "custom.bought": "2026-01-31"})
    assert doc["custom"] == {"units": 3, "model": "laser", "warranty": True, "bought": "2026-01-31"}


def test_a_customer_creates_for_themselves_and_cannot_set_agent_fields() -> None:
    cmd = CreateTicket(command_id="create-0002", actor=CUSTOMER.actor(), fields={"title": "Hjälp"})
    doc, _ = create(cmd, config(), CUSTOMER, ticket_id="t-2", number=2, now=NOW, templates={})
    assert doc["requester"]["email"] == "kund@example.se"
    for field in ("status", "handler", "priority", "group", "tags"):
        cmd = CreateTicket(command_id="create-0003", actor=CUSTOMER.actor(), fields={"title": "x", field: None})
        with pytest.raises(Forbidden):
            create(cmd, config(), CUSTOMER, ticket_id="t-3", number=3, now=NOW, templates={})


def test_a_ticket_template_gives_starting_values_the_command_can_override() -> None:
    templates = {"printer": {"fields": {"title": "Printer fault", "priority": "high", "type": "fault"}}}
    cmd = CreateTicket(
        command_id="create-0004",
        actor=AGENT.actor(),
        requester=Address(email="kund@example.se"),
        template="printer",
        fields={"priority": "low"},
    )
    doc, _ = create(cmd, config(), AGENT, ticket_id="t-4", number=4, now=NOW, templates=templates)
    assert (doc["title"], doc["priority"], doc["type"]) == ("Printer fault", "low", "fault")
    with pytest.raises(Invalid, match="unknown ticket template"):
        create(
            cmd.model_copy(update={"template": "nope"}), config(), AGENT, ticket_id="t", number=5, now=NOW, templates={}
        )


def test_a_ticket_needs_a_handler_before_it_can_leave_new() -> None:
    ticket = new()
    with pytest.raises(WorkflowRefused, match="needs a handler"):
        change(ticket, {"status": "open"})
    ch = change(ticket, {"status": "open", "handler": "bo"})
    assert ch.set_fields["status"] == "open" and ch.set_fields["handler"] == "bo"
    assert {type(e) for e in ch.events} == {TicketUpdated, TicketAssigned}


def test_a_transition_outside_the_types_workflow_is_refused_with_the_allowed_ones() -> None:
    cfg = config()
    fault = cfg.type("fault")
    assert fault is not None
    strict = fault.model_copy(update={"transitions": {"open": ["waiting_for_customer", "closed"]}})
    cfg = cfg.model_copy(update={"types": [strict, *cfg.types[1:]]})
    ticket = applied(
        new({"type": "fault"}, cfg=cfg),
        change(new({"type": "fault"}, cfg=cfg), {"status": "open", "handler": "bo"}, cfg=cfg),
    )
    with pytest.raises(WorkflowRefused) as refused:
        change(ticket, {"status": "dormant"}, cfg=cfg)
    assert "open → dormant" in refused.value.message and "waiting_for_customer, closed" in refused.value.message
    assert change(ticket, {"status": "closed"}, cfg=cfg).set_fields["phase"] == "closed"


def test_customers_and_light_agents_never_change_fields() -> None:
    ticket = new()
    with pytest.raises(Forbidden):
        change(ticket, {"status": "open"}, v=CUSTOMER)
    with pytest.raises(Forbidden):
        change(ticket, {"priority": "high"}, v=LIGHT)


def test_dormant_for_a_period_and_until_a_date_store_the_wake_up_time() -> None:
    ticket = applied(new(), change(new(), {"handler": "bo", "status": "open"}))
    ch = change(ticket, {"status": "dormant", "dormant_for": "3d"})
    assert ch.set_fields["phase"] == "dormant" and ch.set_fields["wake_at"] == NOW + timedelta(days=3)
    until = datetime(2027, 1, 7, 8, 0, tzinfo=UTC)
    ch = change(ticket, {"status": "dormant", "dormant_until": until.isoformat()})
    assert ch.set_fields["wake_at"] == until and ch.set_fields["dormant_until"] == until
    woken = change(applied(ticket, ch), {"status": "open"})
    assert woken.set_fields["wake_at"] is None and woken.set_fields["dormant_until"] is None


def test_recurrence_stores_its_next_time() -> None:
    ch = change(new(), {"recurrence": {"every": "1w", "status": "open"}})
    assert ch.set_fields["recurrence"] == {"every": "1w", "status": "open", "next_at": NOW + timedelta(weeks=1)}


def test_a_stale_change_names_the_fields_changed_meanwhile_when_they_overlap() -> None:
    ticket = new()
    v2 = applied(ticket, change(ticket, {"priority": "high"}, expected_version=1))
    with pytest.raises(VersionConflict) as refused:
        change(v2, {"priority": "low"}, expected_version=1)
    assert refused.value.fields == ("priority",) and "priority changed since version 1" in refused.value.message
    merged = change(v2, {"title": "Ny titel"}, expected_version=1)
    assert merged.set_fields["title"] == "Ny titel"


def test_with_the_strict_setting_any_stale_change_is_refused() -> None:
    cfg = config(concurrent_edits="refuse")
    ticket = new(cfg=cfg)
    v2 = applied(ticket, change(ticket, {"priority": "high"}, cfg=cfg))
    with pytest.raises(VersionConflict) as refused:
        change(v2, {"title": "Ny titel"}, cfg=cfg, expected_version=1)
    assert refused.value.fields == ("priority",)


def test_a_move_to_another_type_keeps_a_matching_status_or_maps_it_by_category() -> None:
    cfg = config()
    statuses = [
        Status(key="received", name="Received", category="new"),
        Status(key="in_progress", name="In progress", category="open"),
        Status(key="done", name="Done", category="closed"),
    ]
    cfg = cfg.model_copy(update={"types": [*cfg.types, TicketType(key="install", name="Install", statuses=statuses)]})
    ticket = applied(new(cfg=cfg), change(new(cfg=cfg), {"handler": "bo", "status": "open"}, cfg=cfg))
    ch = change(ticket, {"type": "install", "group": "field"}, cfg=cfg)
    assert ch.set_fields["type"] == "install" and ch.set_fields["status"] == "in_progress"
    assert any(isinstance(e, TicketAssigned) for e in ch.events)


def test_a_customer_reply_follows_the_global_setting_and_never_reopens_a_dormant_ticket() -> None:
    ticket = applied(new(), change(new(), {"handler": "bo", "status": "waiting_for_customer"}))
    reply = AddComment(
        command_id="comment-0001", actor=CUSTOMER.actor(), number=1, kind="customer_comment", text="Svar"
    )
    ch = add_comment(ticket, reply, config(), CUSTOMER, now=NOW, html=None)
    assert ch.set_fields["status"] == "waiting_for_agent" and ch.set_fields["last_customer_comment_at"] == NOW
    assert [type(e) for e in ch.events] == [CommentAdded, TicketUpdated]
    ch = add_comment(ticket, reply, config(status_after_customer_reply="open"), CUSTOMER, now=NOW, html=None)
    assert ch.set_fields["status"] == "open"
    dormant = {**ticket, "status": "dormant", "status_category": "dormant", "phase": "dormant"}
    assert "status" not in add_comment(dormant, reply, config(), CUSTOMER, now=NOW, html=None).set_fields


def test_who_may_write_which_kind_of_comment() -> None:
    ticket = new()

    def comment(kind: str, v: Viewer) -> Any:
        cmd = AddComment(command_id="comment-0002", actor=v.actor(), number=1, kind=kind, text="x")  # type: ignore[arg-type]
        return add_comment(ticket, cmd, config(), v, now=NOW, html=None)

    assert comment("public_reply", AGENT).set_fields["first_response_at"] == NOW
    assert comment("internal_comment", LIGHT).push["comments"][0]["visibility"] == "internal"
    assert comment("solution_note", AGENT).push["comments"][0]["kind"] == "solution_note"
    for kind, v in (("public_reply", LIGHT), ("public_reply", CUSTOMER), ("internal_comment", CUSTOMER)):
        with pytest.raises(Forbidden):
            comment(kind, v)


def test_closing_uses_the_types_closed_status_and_announces_it() -> None:
    ticket = applied(new(), change(new(), {"handler": "bo", "status": "open"}))
    ch = close(ticket, CloseTicket(command_id="close-0001", actor=AGENT.actor(), number=1), config(), AGENT, now=NOW)
    assert ch.set_fields["status"] == "closed" and ch.set_fields["closed_at"] == NOW
    assert TicketClosed in {type(e) for e in ch.events}


def test_following_adds_and_removes_the_agent() -> None:
    ticket = new()
    on = follow(
        ticket, FollowTicket(command_id="follow-0001", actor=AGENT.actor(), number=1, follow=True), AGENT, now=NOW
    )
    off = follow(
        ticket, FollowTicket(command_id="follow-0002", actor=AGENT.actor(), number=1, follow=False), AGENT, now=NOW
    )
    assert on.add_to_set == {"followers": ["bo"]} and off.pull == {"followers": "bo"}
    with pytest.raises(Forbidden):
        follow(
            ticket,
            FollowTicket(command_id="follow-0003", actor=CUSTOMER.actor(), number=1, follow=True),
            CUSTOMER,
            now=NOW,
        )


def test_visibility_agents_see_their_groups_customers_their_own() -> None:
    ticket = new()
    assert can_see(ADMIN, ticket) and can_see(AGENT, ticket) and can_see(CUSTOMER, ticket)
    assert not can_see(Viewer(id="x", role="agent", groups=("billing",)), ticket)
    assert not can_see(Viewer(id="y", role="customer", email="other@example.se"), ticket)
    org = {**ticket, "organisation": "Acme"}
    colleague = Viewer(id="z", role="customer", email="z@acme.example", organisation="Acme")
    assert not can_see(colleague, org) and can_see(colleague, org, organisation_visible=True)


def test_the_configuration_refuses_inconsistent_workflows() -> None:
    with pytest.raises(ValueError, match="category `closed`"):
        TicketType(
            key="x",
            name="X",
            statuses=[Status(key="a", name="A", category="new"), Status(key="b", name="B", category="open")],
        )
    with pytest.raises(ValueError, match="unknown statuses"):
        TicketType(
            key="x",
            name="X",
            statuses=[Status(key="a", name="A", category="new"), Status(key="c", name="C", category="closed")],
            transitions={"a": ["zzz"]},
        )
    with pytest.raises(ValueError, match="title is always"):
        Config.model_validate({**default_config().model_dump(), "fields": {"title": {"used": True, "required": False}}})
    with pytest.raises(ValueError):
        Config.model_validate({**default_config().model_dump(), "types": default_config().model_dump()["types"] * 4})


def test_linking_sets_the_parent_and_asks_the_parent_to_record_its_child() -> None:
    from contracts.commands import LinkTicket, RecordChild
    from tickets.workflow import link, record_child

    from contracts import TicketLinked

    child, parent = new(), {**new(), "number": 7, "_id": "t-7"}
    ch = link(
        child, LinkTicket(command_id="link-0001", actor=AGENT.actor(), number=1, parent=7), parent, AGENT, now=NOW
    )
    assert ch.set_fields["parent"] == 7 and [type(e) for e in ch.events] == [TicketLinked]
    (record,) = ch.commands
    assert isinstance(record, RecordChild) and (record.number, record.child, record.linked) == (7, 1, True)
    system = Viewer(id="tickets", role="system")
    assert record_child(parent, record, system, now=NOW).add_to_set == {"children": [1]}
    with pytest.raises(Forbidden):
        record_child(parent, record, AGENT, now=NOW)
    grandchild = {**parent, "parent": 3}
    with pytest.raises(WorkflowRefused, match="itself a child of #3"):
        link(
            child,
            LinkTicket(command_id="link-0002", actor=AGENT.actor(), number=1, parent=7),
            grandchild,
            AGENT,
            now=NOW,
        )
    moved = {**child, "parent": 7}
    unlink = link(
        moved, LinkTicket(command_id="link-0003", actor=AGENT.actor(), number=1, parent=None), None, AGENT, now=NOW
    )
    assert [(c.number, c.linked) for c in unlink.commands] == [(7, False)]


def test_closing_a_parent_sends_a_close_for_each_child_unless_told_not_to() -> None:
    ticket = {**applied(new(), change(new(), {"handler": "bo", "status": "open"})), "children": [4, 5]}
    cmd = CloseTicket(command_id="close-0002", actor=AGENT.actor(), number=1)
    assert [c.number for c in close(ticket, cmd, config(), AGENT, now=NOW).commands] == [4, 5]
    keep = cmd.model_copy(update={"close_children": False})
    assert close(ticket, keep, config(), AGENT, now=NOW).commands == []
    assert close(ticket, cmd, config(close_children_with_parent=False), AGENT, now=NOW).commands == []
    child = {**new(), "number": 4, "parent": 1}
    system = Viewer(id="tickets", role="system")
    closed = close(
        child, CloseTicket(command_id="close-0003", actor=Actor(role="system"), number=4), config(), system, now=NOW
    )
    assert closed.set_fields["status"] == "closed"  # a child in New needs no handler to be closed with its parent
    assert next(e for e in closed.events if isinstance(e, TicketClosed)).parent == 1
