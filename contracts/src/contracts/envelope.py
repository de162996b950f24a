"""The envelope every Kafka message travels in, and the registry that turns it into a typed message."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

NAMESPACE = uuid.UUID("5f1f2d4e-8f3c-4b7e-9a51-6d1c3e0b7a42")


def new_id() -> str:
    """Return a fresh random id for an event or command."""
    return str(uuid.uuid4())


def derived_id(*parts: str) -> str:
    """Return an id that is the same every time for the same parts (idempotency keys)."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every event and command: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class Envelope(BaseModel):
    """What goes on the wire: metadata for routing, idempotency and tracing around one payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(description="Unique id of this message; consumers deduplicate on it.")
    type: str = Field(description="Name of the payload's model, e.g. `TicketCreated`.", min_length=1)
    schema_version: int = Field(description="Version of the payload's schema.", ge=1)
    occurred_at: datetime = Field(description="When the event happened or the command was issued (UTC).")
    correlation_id: str = Field(description="Id shared by every message caused by one outside input.")
    causation_id: str | None = Field(default=None, description="event_id of the message that caused this.")
    traceparent: str | None = Field(
        default=None, description="W3C trace context of the producer, kept for messages sent later (outbox)."
    )
    key: str | None = Field(default=None, description="Partition key (the ticket id where there is one).")
    payload: dict[str, Any] = Field(description="The event or command itself, as JSON.")

    @classmethod
    def wrap(
        cls,
        message: Message,
        *,
        event_id: str | None = None,
        correlation_id: str | None = None,
        causation: Envelope | None = None,
        key: str | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """Put a message in an envelope; ids default to fresh ones, or follow the causing envelope."""
        eid = event_id or new_id()
        return cls(
            event_id=eid,
            type=message.TYPE,
            schema_version=message.VERSION,
            occurred_at=utcnow(),
            correlation_id=correlation_id or (causation.correlation_id if causation else eid),
            causation_id=causation.event_id if causation else None,
            traceparent=traceparent,
            key=key,
            payload=message.model_dump(mode="json"),
        )

    def to_bytes(self) -> bytes:
        """Serialise for Kafka."""
        return self.model_dump_json().encode()


class UnknownMessageType(ValueError):
    """The envelope names a type or version this registry cannot read."""


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
M = TypeVar("M", bound=Message)


class Registry:
    """Maps (type, version) to a model; older versions are upcast step by step to the current one."""

    def __init__(self) -> None:
        self._models: dict[str, type[Message]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, model: type[M]) -> type[M]:
        """Register the current version of a message model (usable as a class decorator)."""
        self._models[model.TYPE] = model
        return model

    def upcaster(self, type_: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns version `from_version` of `type_` into the next version."""

        def deco(fn: Upcaster) -> Upcaster:
            self._upcasters[(type_, from_version)] = fn
            return fn

        return deco

    def models(self) -> dict[str, type[Message]]:
        """Return every registered model by type name."""
        return dict(self._models)

    def parse(self, envelope: Envelope) -> Message:
        """Return the typed payload of an envelope, upcast to the current version."""
        model = self._models.get(envelope.type)
        if model is None:
            raise UnknownMessageType(f"unknown message type {envelope.type!r}")
        payload, version = dict(envelope.payload), envelope.schema_version
        if version > model.VERSION:
            raise UnknownMessageType(
                f"{envelope.type} version {version} is newer than this service knows ({model.VERSION})"
            )
        while version < model.VERSION:
            step = self._upcasters.get((envelope.type, version))
            if step is None:
                raise UnknownMessageType(f"no upcaster for {envelope.type} version {version}")
            payload, version = step(payload), version + 1
        return model.model_validate(payload)


def decode_envelope(raw: bytes) -> Envelope:
    """Parse bytes from Kafka into an envelope (raises `pydantic.ValidationError` when malformed)."""
    return Envelope.model_validate_json(raw)


__all__ = [
    "Envelope",
    "Message",
    "Registry",
    "UnknownMessageType",
    "ValidationError",
    "decode_envelope",
    "derived_id",
    "new_id",
    "utcnow",
]
