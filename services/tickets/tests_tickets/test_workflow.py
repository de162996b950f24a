"""The ticket commands' rules, as pure functions: who may do what, valid values, workflow, concurrency."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from contracts.commands import AddComment, CloseTicket, CreateTicket, FollowTicket, UpdateTicket
from contracts.models import Actor, Address, Automation
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
    mention_handles,
    update,
)

from contracts import CommentAdded, TicketAssigned, TicketClosed, TicketCreated, TicketUpdated

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ADMIN = Viewer(id="ada", role="admin", email="ada@helpdesk.example")
AGENT = Viewer(id="bo", role="agent", email="bo@helpdesk.example", groups=("support",))
LIGHT = Viewer(id="li", role="light_agent", email="li@helpdesk.example", groups=("support",))
CUSTOMER = Viewer(id="kund@example.se", role="customer", email="kund@example.se")
SYSTEM = Viewer(id="triggers", role="system", name="triggers")
RULE = Automation(rule_id="r-7", rule_name="Agent reply → Waiting for customer", depth=1, cause="event-1")


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
        ({"notify_mode": "sms"}, "notify_mode"),
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


def test_a_customers_comment_moves_no_status_and_says_the_customer_wrote_it() -> None:
    ticket = applied(new(), change(new(), {"handler": "bo", "status": "waiting_for_customer"}))
    reply = AddComment(
        command_id="comment-0001", actor=CUSTOMER.actor(), number=1, kind="customer_comment", text="Svar"
    )
    ch = add_comment(ticket, reply, config(), CUSTOMER, now=NOW, html=None)
    assert "status" not in ch.set_fields and ch.set_fields["last_customer_comment_at"] == NOW
    (added,) = ch.events
    assert isinstance(added, CommentAdded) and added.author_role == "customer" and added.kind == "customer_comment"
    assert added.ticket.status == "waiting_for_customer" and added.ticket.last_customer_comment_at == NOW


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


def strict_fault(cfg: Config, transitions: dict[str, list[str]]) -> Config:
    """The configuration with the Fault type's transitions limited."""
    fault = cfg.type("fault")
    assert fault is not None
    return cfg.model_copy(update={"types": [fault.model_copy(update={"transitions": transitions}), *cfg.types[1:]]})


def in_status(status: str, cfg: Config | None = None, **fields: Any) -> dict[str, Any]:
    """A Fault ticket with handler bo, moved by an admin to `status` (with any other fields)."""
    ticket = new({"type": "fault", **fields}, cfg=cfg)
    return applied(ticket, change(ticket, {"handler": "bo", "status": status}, cfg=cfg))


def comment(ticket: dict[str, Any], kind: str, v: Viewer, *, mentions: tuple[str, ...] = (), **kw: Any) -> Any:
    cmd = AddComment(command_id="comment-0009", actor=v.actor(), number=1, kind=kind, text="x", **kw)  # type: ignore[arg-type]
    return add_comment(ticket, cmd, config(), v, now=NOW, html=None, mentions=mentions)


# --------------------------------------------------------------------------- the snapshot and notify mode


def test_a_new_ticket_has_no_notify_mode_of_its_own() -> None:
    assert "notify_mode" in new() and new()["notify_mode"] is None


def test_an_agent_sets_the_notify_mode_when_creating_and_changing_a_ticket() -> None:
    ticket = new({"notify_mode": "link"})
    assert ticket["notify_mode"] == "link"
    ch = change(ticket, {"notify_mode": "never"})
    assert ch.set_fields["notify_mode"] == "never"
    (updated,) = ch.events
    assert isinstance(updated, TicketUpdated) and updated.ticket.notify_mode == "never"
    assert change(applied(ticket, ch), {"notify_mode": None}, v=SYSTEM).set_fields["notify_mode"] is None


def test_a_customer_cannot_choose_the_notify_mode() -> None:
    cmd = CreateTicket(
        command_id="create-0005", actor=CUSTOMER.actor(), fields={"title": "Hjälp", "notify_mode": "email"}
    )
    with pytest.raises(Forbidden) as refused:
        create(cmd, config(), CUSTOMER, ticket_id="t-5", number=5, now=NOW, templates={})
    assert refused.value.fields == ("notify_mode",)


def test_the_snapshot_on_events_carries_the_fields_rules_look_at() -> None:
    ticket = new({"tags": ["vip"], "custom.serial": "SN-9", "organisation": "Acme", "notify_mode": "email"})
    ch = change(ticket, {"recurrence": {"every": "1w", "status": "open"}})
    (updated,) = ch.events
    snap = updated.ticket
    assert snap.status_category == "new" and snap.tags == ("vip",) and snap.custom == {"serial": "SN-9"}
    assert snap.organisation == "Acme" and snap.notify_mode == "email"
    assert snap.recurrence is not None and snap.recurrence["every"] == "1w"
    assert snap.sla == {"first_response_due": None, "resolution_due": None}


# --------------------------------------------------------------------------- rules: automation and the system


def test_a_rules_update_carries_its_firing_onto_every_event_and_names_the_rule_in_the_log() -> None:
    cmd = UpdateTicket(
        command_id="update-0009",
        actor=SYSTEM.actor(),
        number=1,
        fields={"handler": "bo", "status": "closed"},
        automation=RULE,
    )
    ch = update(new(), cmd, config(), SYSTEM, now=NOW)
    assert [type(e) for e in ch.events] == [TicketUpdated, TicketAssigned, TicketClosed]
    assert all(e.automation == RULE for e in ch.events)
    assert ch.events[0].reason == "rule 'Agent reply → Waiting for customer'"
    details = [a["detail"] for a in ch.push["activity"]]
    assert details and all(d.endswith("by rule 'Agent reply → Waiting for customer'") for d in details)


def test_a_persons_change_carries_no_automation_and_no_rule_in_the_log() -> None:
    ch = change(new(), {"priority": "high", "handler": "bo"})
    assert all(e.automation is None for e in ch.events)
    assert not any("rule" in a["detail"] for a in ch.push["activity"])


def test_a_rules_comment_carries_its_firing_and_names_the_rule_in_the_log() -> None:
    ch = comment(new(), "internal_comment", SYSTEM, automation=RULE)
    (added,) = ch.events
    assert isinstance(added, CommentAdded) and added.automation == RULE
    assert ch.push["activity"][0]["detail"] == "internal comment via agent by rule 'Agent reply → Waiting for customer'"


def test_a_rules_close_carries_its_firing_onto_the_closed_event_and_the_childrens_closing() -> None:
    ticket = {**in_status("open"), "children": [4]}
    cmd = CloseTicket(command_id="close-0009", actor=SYSTEM.actor(), number=1, automation=RULE)
    ch = close(ticket, cmd, config(), SYSTEM, now=NOW)
    closed = next(e for e in ch.events if isinstance(e, TicketClosed))
    assert closed.automation == RULE
    assert [c.automation for c in ch.commands] == [RULE]


def test_the_system_takes_a_ticket_out_of_new_without_a_handler_but_people_cannot() -> None:
    with pytest.raises(WorkflowRefused, match="needs a handler"):
        change(new(), {"status": "waiting_for_agent"}, v=ADMIN)
    ch = change(new(), {"status": "waiting_for_agent"}, v=SYSTEM)
    assert ch.set_fields["status"] == "waiting_for_agent" and ch.set_fields["phase"] == "active"


def test_the_system_reopens_a_closed_ticket_the_workflow_keeps_people_from_reopening() -> None:
    cfg = strict_fault(config(), {"closed": [], "resolved": ["closed"]})
    ticket = in_status("closed", cfg=cfg)
    with pytest.raises(WorkflowRefused, match="closed → open"):
        change(ticket, {"status": "open"}, cfg=cfg)
    ch = change(ticket, {"status": "open"}, v=SYSTEM, cfg=cfg)
    assert ch.set_fields["status"] == "open" and ch.set_fields["closed_at"] is None


def with_install(*statuses: tuple[str, str]) -> Config:
    """The configuration with an extra type, Install, of these (key, category) statuses."""
    cfg = config()
    found = [Status(key=key, name=key.capitalize(), category=category) for key, category in statuses]  # type: ignore[arg-type]
    return cfg.model_copy(update={"types": [*cfg.types, TicketType(key="install", name="Install", statuses=found)]})


def test_status_category_moves_the_ticket_to_its_types_first_status_of_that_category() -> None:
    cfg = with_install(
        ("received", "new"), ("with_us", "waiting_for_agent"), ("escalated", "waiting_for_agent"), ("done", "closed")
    )
    ticket = new({"type": "install"}, cfg=cfg)
    ch = change(ticket, {"status_category": "waiting_for_agent"}, v=SYSTEM, cfg=cfg)
    assert ch.set_fields["status"] == "with_us" and ch.set_fields["status_category"] == "waiting_for_agent"
    (updated,) = ch.events
    assert [(c.field, c.old, c.new) for c in updated.changes] == [("status", "received", "with_us")]
    escalated = applied(ticket, change(ticket, {"status": "escalated"}, v=SYSTEM, cfg=cfg))
    assert change(escalated, {"status_category": "waiting_for_agent"}, v=SYSTEM, cfg=cfg).events == []


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("dormant", "has no status of category `dormant`"),
        ("waiting", "`status_category` must be one of: new, open"),
        (None, "`status_category` must be one of"),
    ],
)
def test_a_status_category_the_type_lacks_or_that_does_not_exist_is_refused_naming_it(value: Any, said: str) -> None:
    cfg = with_install(("received", "new"), ("done", "closed"))
    with pytest.raises(Invalid) as refused:
        change(new({"type": "install"}, cfg=cfg), {"status_category": value}, v=SYSTEM, cfg=cfg)
    assert refused.value.fields == ("status_category",) and said in refused.value.message


def test_a_status_and_a_status_category_together_are_refused() -> None:
    with pytest.raises(Invalid) as refused:
        change(new(), {"status": "open", "status_category": "open"}, v=SYSTEM)
    assert refused.value.fields == ("status", "status_category")


def test_the_retired_reply_setting_in_a_saved_configuration_is_read_and_dropped() -> None:
    saved = default_config().model_dump(mode="json")
    saved["settings"]["status_after_customer_reply"] = "waiting_for_agent"
    read = Config.model_validate(saved)
    assert "status_after_customer_reply" not in read.settings.model_dump()
    assert read.settings.concurrent_edits == "merge"
    with pytest.raises(ValueError, match="extra"):
        Config.model_validate({**saved, "settings": {"no_such_setting": True}})


# --------------------------------------------------------------------------- SLA


def test_the_system_sets_sla_due_times_and_events_show_them() -> None:
    due = {
        "first_response_due": "2026-11-23T13:00:00+00:00",
        "resolution_due": None,
        "policy": "gold",
        "breached": ["first_response"],
    }
    ch = change(new(), {"sla": due}, v=SYSTEM)
    stored = ch.set_fields["sla"]
    assert stored == {
        "first_response_due": datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
        "resolution_due": None,
        "policy": "gold",
        "breached": ["first_response"],
    }
    (updated,) = ch.events
    assert updated.ticket.sla == stored


@pytest.mark.parametrize("who", [ADMIN, AGENT])
def test_people_may_not_set_sla_due_times(who: Viewer) -> None:
    with pytest.raises(Forbidden) as refused:
        change(new(), {"sla": {"first_response_due": None, "resolution_due": None}}, v=who)
    assert refused.value.fields == ("sla",)


@pytest.mark.parametrize(
    "sla",
    [
        "soon",
        {"first_response_due": "tomorrow"},
        {"resolution_due": None, "paused": True},
        {"policy": 7},
        {"breached": "first_response"},
    ],
)
def test_a_malformed_sla_is_refused_naming_sla(sla: Any) -> None:
    with pytest.raises(Invalid) as refused:
        change(new(), {"sla": sla}, v=SYSTEM)
    assert refused.value.fields == ("sla",)


# --------------------------------------------------------------------------- recurrence and wake-up


def test_a_recurring_ticket_that_is_resolved_wakes_after_its_period() -> None:
    ticket = in_status("open", recurrence={"every": "2w", "status": "new"})
    ch = change(ticket, {"status": "resolved"})
    assert ch.set_fields["wake_at"] == NOW + timedelta(weeks=2)
    (updated,) = ch.events
    assert updated.ticket.wake_at == NOW + timedelta(weeks=2) and updated.ticket.recurrence is not None


def test_a_recurring_ticket_that_is_closed_wakes_after_its_period() -> None:
    ticket = in_status("open", recurrence={"every": "3d", "status": "open"})
    ch = close(ticket, CloseTicket(command_id="close-0010", actor=AGENT.actor(), number=1), config(), AGENT, now=NOW)
    assert ch.set_fields["wake_at"] == NOW + timedelta(days=3)


def test_a_resolved_recurring_ticket_keeps_its_wake_up_time_when_edited_or_closed() -> None:
    resolved = in_status("resolved", recurrence={"every": "1w", "status": "new"})
    assert resolved["wake_at"] == NOW + timedelta(weeks=1)
    later = NOW + timedelta(days=2)
    edited = update(
        resolved,
        UpdateTicket(command_id="update-0010", actor=AGENT.actor(), number=1, fields={"priority": "high"}),
        config(),
        AGENT,
        now=later,
    )
    assert "wake_at" not in edited.set_fields
    closed = update(
        resolved,
        UpdateTicket(command_id="update-0011", actor=AGENT.actor(), number=1, fields={"status": "closed"}),
        config(),
        AGENT,
        now=later,
    )
    assert "wake_at" not in closed.set_fields


def test_reopening_a_recurring_ticket_forgets_its_wake_up_time() -> None:
    resolved = in_status("resolved", recurrence={"every": "1w", "status": "new"})
    ch = change(resolved, {"status_category": "new"}, v=SYSTEM)
    assert ch.set_fields["status"] == "new" and ch.set_fields["wake_at"] is None
    assert ch.set_fields["resolved_at"] is None


def test_giving_a_resolved_ticket_a_recurrence_sets_its_wake_up_time_and_removing_it_clears_it() -> None:
    resolved = in_status("resolved")
    assert resolved["wake_at"] is None
    ch = change(resolved, {"recurrence": {"every": "12h", "status": "open"}})
    assert ch.set_fields["wake_at"] == NOW + timedelta(hours=12)
    recurring = applied(resolved, ch)
    assert change(recurring, {"recurrence": None}).set_fields["wake_at"] is None


def test_a_ticket_without_recurrence_gets_no_wake_up_time_when_resolved() -> None:
    ch = change(in_status("open"), {"status": "resolved"})
    assert ch.set_fields.get("wake_at") is None


def test_a_dormant_ticket_resolved_forgets_its_dormant_until() -> None:
    until = datetime(2027, 1, 7, 8, 0, tzinfo=UTC)
    dormant = in_status("open")
    dormant = applied(dormant, change(dormant, {"status": "dormant", "dormant_until": until.isoformat()}))
    ch = change(dormant, {"status": "resolved"})
    assert ch.set_fields["wake_at"] is None and ch.set_fields["dormant_until"] is None


# --------------------------------------------------------------------------- mentions


@pytest.mark.parametrize(
    ("text", "handles"),
    [
        ("@bo kan du titta?", ["bo"]),
        ("Fråga @bo.berg.", ["bo.berg"]),
        ("(@li) och @u-42, @li igen", ["li", "u-42"]),
        ("skriv till kund@example.se", []),
        ("@ ensam, @. och mail@x", []),
        ("rad ett\n@ada_admin: klart", ["ada_admin"]),
    ],
)
def test_mention_handles_start_with_an_at_after_a_space_or_punctuation(text: str, handles: list[str]) -> None:
    assert mention_handles(text) == handles


def test_a_staff_comment_carries_the_mentioned_ids_once_in_order_without_its_author() -> None:
    for kind, who in (("internal_comment", AGENT), ("public_reply", ADMIN), ("internal_comment", LIGHT)):
        ch = comment(new(), kind, who, mentions=("u-li", "bo", "u-li", "ada", "li", "u-ada"))
        (added,) = ch.events
        assert added.mentions == tuple(m for m in ("u-li", "bo", "ada", "li", "u-ada") if m != who.id), kind


def test_a_customers_comment_mentions_nobody() -> None:
    ch = comment(new(), "customer_comment", CUSTOMER, mentions=("bo",))
    assert ch.events[0].mentions == ()


# --------------------------------------------------------------------------- SLA targets reached late


def under_sla(first_response_due: datetime, resolution_due: datetime) -> dict[str, Any]:
    ticket = new({"handler": "bo", "status": "open"})
    ticket["sla"] = {"policy": "standard", "first_response_due": first_response_due, "resolution_due": resolution_due}
    return ticket


def test_a_first_reply_after_its_due_time_is_recorded_as_a_missed_target() -> None:
    late = under_sla(NOW - timedelta(minutes=1), NOW + timedelta(hours=8))
    in_time = under_sla(NOW + timedelta(minutes=1), NOW + timedelta(hours=8))

    assert comment(late, "public_reply", AGENT).set_fields["sla_missed"] == ["first_response"]
    assert "sla_missed" not in comment(in_time, "public_reply", AGENT).set_fields
    assert "sla_missed" not in comment(late, "internal_comment", AGENT).set_fields


def test_resolving_after_the_resolution_due_time_is_recorded_once_with_what_was_missed_before() -> None:
    ticket = {**under_sla(NOW - timedelta(hours=2), NOW - timedelta(minutes=5)), "sla_missed": ["first_response"]}

    resolved = change(ticket, {"status": "resolved"})

    assert resolved.set_fields["sla_missed"] == ["first_response", "resolution"]
    in_time = change(under_sla(NOW - timedelta(hours=2), NOW + timedelta(minutes=5)), {"status": "resolved"})
    assert "sla_missed" not in in_time.set_fields
