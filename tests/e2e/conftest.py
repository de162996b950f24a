"""The whole helpdesk, as separate processes on real Kafka and a real MongoDB-wire store, for the session."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from local import LocalHelpdesk, Ports  # noqa: E402


@pytest.fixture(scope="session")
def helpdesk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHelpdesk]:
    data = tmp_path_factory.mktemp("helpdesk")
    stack = LocalHelpdesk(
        data,
        Ports.free(),
        partitions=3,
        trace_dir=data / "traces",
        quiet=True,
        extra_env={"HELPDESK_MAX_MESSAGE_BYTES": str(2 * 1024 * 1024)},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
