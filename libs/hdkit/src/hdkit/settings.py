"""Small settings mixins; each service builds its own Settings from the ones it needs."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Helpdesk(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HELPDESK_", extra="ignore")


class Base(_Helpdesk):
    """Reads `HELPDESK_*` environment variables; built once in `cli.main` and passed down."""

    log_level: str = Field(default="INFO", description="Python log level.")
    log_json: bool = Field(default=True, description="Log JSON lines with trace ids (False: plain text).")


class KafkaSettings(_Helpdesk):
    """Where Kafka is."""

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_partitions: int = Field(default=6, ge=1, description="Partitions when creating topics.")
    consumer_workers: int = Field(
        default=6,
        ge=1,
        le=64,
        description="Consumers per subscribed topic in this process; each owns whole partitions, so one ticket's "
        "messages stay in order. More than the partition count gains nothing.",
    )


class MongoSettings(_Helpdesk):
    """Where the MongoDB-wire store is."""

    mongo_url: str = Field(default="mongodb://127.0.0.1:27017/", description="MongoDB connection URL.")
    mongo_db: str = Field(description="Database of this service (each service owns its own).")


class HttpSettings(_Helpdesk):
    """Where this service listens for HTTP (API, /health, /ready, /metrics)."""

    http_host: str = Field(default="127.0.0.1", description="HTTP bind address.")
    http_port: int = Field(description="HTTP port.")


class TelemetrySettings(_Helpdesk):
    """Where traces go."""

    otel_endpoint: str | None = Field(default=None, description="OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318.")
    trace_file: str | None = Field(default=None, description="Write finished spans as JSON lines to this file.")


class ServiceTokenSettings(_Helpdesk):
    """The shared secret services use to call each other's HTTP APIs."""

    service_token: SecretStr = Field(description="Bearer token for internal HTTP calls (no default).", min_length=16)


class MessageIdSettings(_Helpdesk):
    """The secret that signs our Message-IDs."""

    message_id_secret: SecretStr = Field(description="HMAC key for our Message-IDs (no default).", min_length=16)
    mail_domain: str = Field(default="helpdesk.localhost", description="Domain part of our Message-IDs.")
