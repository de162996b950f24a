"""Configuration as data: ticket types with their workflows, fields, pick-lists and global settings.

Pure models and defaults (PRODUCT.md §4–5); the store keeps them as documents and the API edits them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Category = Literal["new", "open", "waiting_for_customer", "waiting_for_agent", "dormant", "resolved", "closed"]
Phase = Literal["active", "dormant", "resolved", "closed"]
PHASE_OF: dict[str, Phase] = {
    "new": "active",
    "open": "active",
    "waiting_for_customer": "active",
    "waiting_for_agent": "active",
    "dormant": "dormant",
    "resolved": "resolved",
    "closed": "closed",
}
KEY = r"^[a-z][a-z0-9_]{0,39}$"
MAX_TYPES = 10

CustomKind = Literal["text", "number", "date", "pick_list", "checkbox"]
STANDARD_FIELDS = (
    "title",
    "description",
    "type",
    "status",
    "priority",
    "category",
    "group",
    "handler",
    "organisation",
    "cc",
    "tags",
    "parent",
    "recurrence",
    "dormant_until",
)


class Strict(BaseModel):
    """Configuration models refuse unknown keys."""

    model_config = ConfigDict(extra="forbid")


class Status(Strict):
    """One status of a type's workflow."""

    key: str = Field(pattern=KEY, description="Stable key, e.g. `waiting_for_agent`.")
    name: str = Field(min_length=1, max_length=60, description="Label shown to people.")
    category: Category = Field(description="What the status means to queues and rules.")


class TicketType(Strict):
    """A ticket type with its own statuses and allowed transitions."""

    key: str = Field(pattern=KEY, description="Stable key, e.g. `fault`.")
    name: str = Field(min_length=1, max_length=60)
    colour: str = Field(default="#7f8c8d", pattern=r"^#[0-9a-fA-F]{6}$")
    icon: str = Field(default="ticket", max_length=40)
    mailbox: str | None = Field(default=None, max_length=320, description="Inbound address of this type.")
    statuses: list[Status] = Field(min_length=2, max_length=30)
    transitions: dict[str, list[str]] = Field(
        default_factory=dict, description="Status key → the status keys it may move to; missing means any."
    )

    @model_validator(mode="after")
    def _consistent(self) -> TicketType:
        keys = [s.key for s in self.statuses]
        if len(set(keys)) != len(keys):
            raise ValueError("status keys must be unique within a type")
        if not any(s.category == "new" for s in self.statuses):
            raise ValueError("a type needs a status of category `new` for new tickets")
        if not any(s.category == "closed" for s in self.statuses):
            raise ValueError("a type needs a status of category `closed`")
        for source, targets in self.transitions.items():
            unknown = [k for k in [source, *targets] if k not in keys]
            if unknown:
                raise ValueError(f"transitions name unknown statuses: {', '.join(unknown)}")
        return self

    def status(self, key: str) -> Status | None:
        """Return the status with this key, if the type has it."""
        return next((s for s in self.statuses if s.key == key), None)

    def first(self, category: Category) -> Status | None:
        """Return the first status of a category."""
        return next((s for s in self.statuses if s.category == category), None)

    def allows(self, source: str, target: str) -> bool:
        """Tell whether the workflow allows moving from `source` to `target`."""
        if source == target:
            return True
        allowed = self.transitions.get(source)
        return allowed is None or target in allowed


class FieldRule(Strict):
    """Whether a standard field is used and required."""

    used: bool = True
    required: bool = False


class CustomField(Strict):
    """A custom field an admin added."""

    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=60)
    kind: CustomKind
    options: list[str] = Field(default_factory=list, max_length=200, description="Choices of a pick-list.")
    used: bool = True
    required: bool = False

    @model_validator(mode="after")
    def _options(self) -> CustomField:
        if self.kind == "pick_list" and not self.options:
            raise ValueError("a pick-list needs options")
        return self


class Choice(Strict):
    """One entry of a pick-list (priorities, categories)."""

    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=60)


RETIRED_SETTINGS = ("status_after_customer_reply",)
"""Settings that no longer exist; configurations saved before still hold them, so reading them drops them."""


class Settings(Strict):
    """Global ticket settings an admin can change.

    What a customer's reply does to the status is not one of them: that is triggers' default rule
    ("customer's reply → Waiting for agent"), which an admin edits there.
    """

    concurrent_edits: Literal["refuse", "merge"] = Field(
        default="merge",
        description="A change based on an old version: `refuse` it, or `merge` it when no field overlaps.",
    )
    customers_see_organisation: bool = Field(
        default=False, description="Customers see their organisation's tickets, not only their own."
    )
    close_children_with_parent: bool = Field(default=True, description="Closing a parent closes its children.")
    attachment_limit_mb: int = Field(
        default=20,
        ge=1,
        le=100,
        description="Largest file (MB) agents and customers may upload with a reply or a new request; ingest's "
        "own hard limit (`HELPDESK_MAX_UPLOAD_BYTES`) still applies.",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in RETIRED_SETTINGS):
            return {k: v for k, v in data.items() if k not in RETIRED_SETTINGS}
        return data


class Config(Strict):
    """The whole ticket configuration, as one value the domain decides with."""

    types: list[TicketType] = Field(min_length=1, max_length=MAX_TYPES)
    priorities: list[Choice] = Field(min_length=1, max_length=10)
    categories: list[Choice] = Field(default_factory=list, max_length=200)
    fields: dict[str, FieldRule] = Field(default_factory=dict)
    custom_fields: list[CustomField] = Field(default_factory=list, max_length=100)
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        keys = [t.key for t in self.types]
        if len(set(keys)) != len(keys):
            raise ValueError("ticket type keys must be unique")
        unknown = [f for f in self.fields if f not in STANDARD_FIELDS]
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(unknown)}")
        if "title" in self.fields and not (self.fields["title"].used and self.fields["title"].required):
            raise ValueError("the title is always used and required")
        return self

    def type(self, key: str) -> TicketType | None:
        """Return a ticket type by key."""
        return next((t for t in self.types if t.key == key), None)

    def rule(self, field: str) -> FieldRule:
        """Return whether a standard field is used and required."""
        if field == "title":
            return FieldRule(used=True, required=True)
        return self.fields.get(field, FieldRule())

    def custom(self, key: str) -> CustomField | None:
        """Return a custom field definition by key."""
        return next((c for c in self.custom_fields if c.key == key), None)


DEFAULT_STATUSES: list[dict[str, Any]] = [
    {"key": "new", "name": "New", "category": "new"},
    {"key": "open", "name": "Open", "category": "open"},
    {"key": "waiting_for_customer", "name": "Waiting for customer", "category": "waiting_for_customer"},
    {"key": "waiting_for_agent", "name": "Waiting for agent", "category": "waiting_for_agent"},
    {"key": "dormant", "name": "Dormant", "category": "dormant"},
    {"key": "resolved", "name": "Resolved", "category": "resolved"},
    {"key": "closed", "name": "Closed", "category": "closed"},
]


def default_config() -> Config:
    """Return the shipped configuration: Fault, Order and Other with the default workflow (PRODUCT.md §5)."""
    types = [
        TicketType(key=key, name=name, colour=colour, icon=icon, statuses=[Status(**s) for s in DEFAULT_STATUSES])
        for key, name, colour, icon in (
            ("fault", "Fault", "#c0392b", "bug"),
            ("order", "Order", "#2471a3", "cart"),
            ("other", "Other", "#7f8c8d", "ticket"),
        )
    ]
    return Config(
        types=types,
        priorities=[Choice(key=k, name=n) for k, n in (("low", "Low"), ("medium", "Medium"), ("high", "High"))],
        categories=[],
        fields={"category": FieldRule(used=True, required=False)},
    )
