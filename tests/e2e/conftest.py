"""The whole helpdesk, as separate processes on real Kafka and a real MongoDB-wire store, for the session."""

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from debian import ensure_debian_package  # noqa: E402
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


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium (installed by apt when missing; never a browser download), driven by Playwright."""
    from playwright.sync_api import sync_playwright

    executable = ensure_debian_package("chromium", "chromium")
    with sync_playwright() as playwright:
        # root in CI containers cannot use Chromium's user-namespace sandbox
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Any:
    """Return `shot(page, name)`: saves a full-page PNG to $HELPDESK_SCREENSHOTS (`make screenshots`: docs/)."""
    folder = os.environ.get("HELPDESK_SCREENSHOTS")

    def shot(page: Any, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return shot
