"""The vendored htmx: present for CI without a network, and the tool refuses a tampered tarball."""

import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "services/portal/src/portal/static"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_htmx", ROOT / "tools/vendor_htmx.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["vendor_htmx"] = module
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def tarball(script: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("package/dist/htmx.min.js")
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
    return buffer.getvalue()


def registry(version: str, data: bytes, integrity: str) -> dict[str, bytes]:
    url = f"{tool.REGISTRY}/htmx.org/-/htmx.org-{version}.tgz"
    meta = {"dist": {"integrity": integrity, "tarball": url}}
    return {f"{tool.REGISTRY}/htmx.org/{version}": json.dumps(meta).encode(), url: data}


def test_the_vendored_htmx_is_in_the_static_files_with_its_readme() -> None:
    script = (STATIC / "vendor/htmx.min.js").read_text(encoding="utf-8")
    readme = (STATIC / "vendor/README.md").read_text(encoding="utf-8")

    assert script.startswith("var htmx=")
    assert f"htmx.org@{tool.DEFAULT_VERSION}" in readme
    assert tool.PINNED[tool.DEFAULT_VERSION] in readme
    assert tool.integrity_of(script.encode()) in readme


def test_the_tool_writes_the_script_from_a_tarball_that_matches_its_integrity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tarball(b"var htmx=1;")
    monkeypatch.setitem(tool.PINNED, "9.9.9", tool.integrity_of(good))
    answers = registry("9.9.9", good, tool.integrity_of(good))

    tool.vendor("9.9.9", tmp_path, get=answers.__getitem__)

    assert (tmp_path / "htmx.min.js").read_bytes() == b"var htmx=1;"
    assert "htmx.org@9.9.9" in (tmp_path / "README.md").read_text(encoding="utf-8")


def test_the_tool_refuses_a_tampered_tarball_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tarball(b"var htmx=1;")
    tampered = tarball(b"var htmx=1;steal(document.cookie);")
    monkeypatch.setitem(tool.PINNED, "9.9.9", tool.integrity_of(good))
    answers = registry("9.9.9", tampered, tool.integrity_of(good))

    with pytest.raises(tool.IntegrityMismatch):
        tool.vendor("9.9.9", tmp_path, get=answers.__getitem__)

    assert not (tmp_path / "htmx.min.js").exists()


def test_the_tool_refuses_registry_metadata_that_differs_from_the_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = tarball(b"var htmx=evil;")
    monkeypatch.setitem(tool.PINNED, "9.9.9", tool.integrity_of(tarball(b"var htmx=1;")))
    answers = registry("9.9.9", evil, tool.integrity_of(evil))  # consistent, but not what we pinned

    with pytest.raises(tool.IntegrityMismatch):
        tool.vendor("9.9.9", tmp_path, get=answers.__getitem__)

    assert not (tmp_path / "htmx.min.js").exists()


def test_an_unpinned_version_is_refused_before_any_download(tmp_path: Path) -> None:
    def no_network(url: str) -> bytes:
        raise AssertionError(f"downloaded {url}")

    with pytest.raises(tool.VendorError, match="not pinned"):
        tool.vendor("0.0.1", tmp_path, get=no_network)


def test_the_base_page_loads_htmx_and_the_workspace_script_from_the_site() -> None:
    base = (ROOT / "services/portal/src/portal/templates/base.html").read_text(encoding="utf-8")

    assert '<script src="/static/vendor/htmx.min.js" defer></script>' in base
    assert '<script src="/static/workspace.js" defer></script>' in base
    script = (STATIC / "workspace.js").read_text(encoding="utf-8")
    assert "htmx:configRequest" in script and "X-CSRF-Token" in script
