"""Logging: one handler and one level for the whole process, FastStream's per-message lines included."""

import json
import logging

import pytest
from hdkit.kafka import make_broker
from hdkit.settings import Base, KafkaSettings
from hdkit.telemetry import setup_logging
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry


@pytest.fixture
def restore_logging():
    root, fs = logging.getLogger(), logging.getLogger("faststream")
    saved = (root.handlers[:], root.level, fs.handlers[:], fs.level, fs.propagate)
    yield
    root.handlers[:], root.level, fs.handlers[:], fs.level, fs.propagate = saved


def test_faststream_logs_go_through_our_json_handler_at_our_level(restore_logging, capsys) -> None:
    setup_logging("svc", Base(log_level="WARNING", log_json=True))
    make_broker(KafkaSettings(), service="svc", tracer_provider=TracerProvider(), metrics=CollectorRegistry())
    logger = logging.getLogger("faststream.svc")  # the broker's logger: "Received"/"Processed" go there
    logger.setLevel(logging.DEBUG)  # as FastStream may do with the broker's log_level
    logger.info("Received")
    logging.getLogger("faststream").info("FastStream app starting...")
    logger.warning("consumer lost its partition")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["consumer lost its partition"]
    assert lines[0]["service"] == "svc"
