"""Vendor htmx into the portal from the npm registry, checked against the registry's sha512 integrity.

The portal serves htmx itself (no CDN: the content security policy allows scripts from 'self' only, and
the workspace keeps working without the internet). The file is committed, so CI and `make run` need no
network; run `make vendor` (or this script) only to update it:

    .venv/bin/python tools/vendor_htmx.py [--version 2.0.11]

It downloads the version's tarball, refuses it unless its sha512 matches both the registry's
`dist.integrity` and the integrity pinned below for that version, and writes `htmx.min.js` with a README
naming the version and the integrity. A new version is pinned by editing `PINNED` after checking its
release notes.
"""

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
PACKAGE = "htmx.org"
DEFAULT_VERSION = "2.0.11"
PINNED: dict[str, str] = {
    "2.0.11": "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
}
"""Integrity of each version we accept: a registry that changed a published tarball is refused too."""
MEMBER = "package/dist/htmx.min.js"
MAX_BYTES = 20 * 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "services/portal/src/portal/static/vendor"

Fetch = Callable[[str], bytes]


class VendorError(Exception):
    """The package could not be vendored (unknown version, failed integrity check, unexpected tarball)."""


class IntegrityMismatch(VendorError):
    """The downloaded bytes do not have the integrity the registry (or our pin) promises."""


def fetch(url: str) -> bytes:
    """Return the body of an https URL of the registry (at most `MAX_BYTES`)."""
    if not url.startswith(REGISTRY + "/"):
        raise VendorError(f"refusing to download from outside the registry: {url}")
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - https to the registry only
        data: bytes = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise VendorError(f"{url} is larger than {MAX_BYTES} bytes")
    return data


def integrity_of(data: bytes) -> str:
    """Return the Subresource-Integrity string (sha512) of some bytes, as npm writes it."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def verify_integrity(data: bytes, expected: str) -> None:
    """Raise `IntegrityMismatch` unless the bytes have the expected sha512 integrity."""
    if not expected.startswith("sha512-"):
        raise IntegrityMismatch(f"only sha512 integrity is accepted, got {expected[:20]!r}")
    actual = integrity_of(data)
    if actual != expected:
        raise IntegrityMismatch(f"integrity mismatch: expected {expected}, got {actual}")


def extract_min_js(tarball: bytes) -> bytes:
    """Return `dist/htmx.min.js` from the package tarball."""
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            member = archive.getmember(MEMBER)
            if not member.isfile():
                raise VendorError(f"{MEMBER} in the tarball is not a file")
            extracted = archive.extractfile(member)
            if extracted is None:
                raise VendorError(f"{MEMBER} cannot be read from the tarball")
            return extracted.read()
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise VendorError(f"the tarball has no readable {MEMBER}: {exc}") from exc


def readme(version: str, integrity: str, tarball_url: str, script: bytes) -> str:
    """Return the README that says what is vendored and how to update it."""
    return f"""# Vendored front-end files

`htmx.min.js` is [htmx](https://htmx.org) {version}, taken unchanged from the npm registry's tarball
and served by the portal itself (no CDN; the content security policy allows scripts from 'self' only).

- package: `{PACKAGE}@{version}` ({tarball_url})
- tarball integrity (checked against the registry's `dist.integrity` and the pin in the tool):
  `{integrity}`
- `htmx.min.js` sha512: `{integrity_of(script)}`
- licence: BSD Zero Clause (0BSD)

Update: pin the new version's integrity in `PINNED` in `tools/vendor_htmx.py` after reading its release
notes, then run `make vendor` (`.venv/bin/python tools/vendor_htmx.py --version X.Y.Z`) and commit both
files. The portal's tests check the file is here, so CI needs no network.
"""


def vendor(version: str, target: Path, get: Fetch = fetch) -> str:
    """Download, verify and write one version of htmx into `target`; return the tarball's integrity."""
    pinned = PINNED.get(version)
    if pinned is None:
        raise VendorError(f"version {version} is not pinned in PINNED; add its integrity first")
    try:
        meta = json.loads(get(f"{REGISTRY}/{PACKAGE}/{version}"))
        dist = meta["dist"]
        integrity, tarball_url = str(dist["integrity"]), str(dist["tarball"])
    except (ValueError, KeyError, TypeError) as exc:
        raise VendorError(f"the registry's metadata of {PACKAGE}@{version} is not readable: {exc}") from exc
    if integrity != pinned:
        raise IntegrityMismatch(f"the registry's integrity {integrity} differs from the pinned {pinned}")
    tarball = get(tarball_url)
    verify_integrity(tarball, integrity)
    script = extract_min_js(tarball)
    target.mkdir(parents=True, exist_ok=True)
    (target / "htmx.min.js").write_bytes(script)
    (target / "README.md").write_text(readme(version, integrity, tarball_url, script), encoding="utf-8")
    return integrity


def main(argv: list[str] | None = None) -> int:
    """Vendor the pinned htmx version (or the one given) into the portal's static files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", default=DEFAULT_VERSION, help="htmx version (must be pinned in PINNED)")
    parser.add_argument("--target", type=Path, default=TARGET, help="folder to write htmx.min.js into")
    args = parser.parse_args(argv)
    try:
        integrity = vendor(args.version, args.target)
    except VendorError as exc:
        print(f"vendor_htmx: {exc}", file=sys.stderr)
        return 1
    print(f"vendored {PACKAGE}@{args.version} ({integrity}) into {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
