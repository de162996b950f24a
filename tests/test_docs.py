"""`make docs` writes an AsyncAPI document per service naming its topics, OpenAPI, and message schemas."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from contracts import REGISTRY, topics

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    "ingest": {topics.INBOUND_EMAIL},
    "tickets": {topics.INBOUND_EMAIL, topics.NOTIFY_EVENTS, topics.TICKET_EVENTS},
    "triggers": {topics.TICKET_EVENTS, topics.NOTIFY_COMMANDS},
    "notify": {topics.NOTIFY_COMMANDS, topics.NOTIFY_EVENTS},
}


def test_docs_describe_every_service_its_topics_and_every_message(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "tools" / "docs.py"), "--out", str(tmp_path)], check=True)
    for service, expected in EXPECTED.items():
        spec = yaml.safe_load((tmp_path / "asyncapi" / f"{service}.yaml").read_text())
        addresses = {channel["address"] for channel in spec["channels"].values()}
        assert expected <= addresses, service
    for service in (*EXPECTED, "portal"):
        openapi = json.loads((tmp_path / "openapi" / f"{service}.json").read_text())
        assert "/health" in openapi["paths"] and "/metrics" in openapi["paths"]
    assert "/api/tickets" in json.loads((tmp_path / "openapi" / "tickets.json").read_text())["paths"]
    written = {p.name.split(".")[0] for p in (tmp_path / "contracts").glob("*.json")}
    assert set(REGISTRY.models()) | {"Envelope"} <= written
