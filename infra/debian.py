"""Install a Debian package on demand, so a fresh CI machine gets the tools the tests drive (dovecot, swaks).

``ensure_debian_package("swaks", "swaks")`` returns the binary's path, running
``apt-get install -y --no-install-recommends <package>`` first when it is missing: as root, or through
``sudo -n`` (never prompting). Installs are serialised across processes by a file lock (dpkg has one too,
but it fails instead of waiting). When the package lists are missing or stale, ``apt-get update`` runs once
and the install is retried.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # noqa: S404 - this module's job is to run apt-get
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import CACHE, ServerError, _file_lock, _log  # noqa: E402

__all__ = ["SEARCH_PATH", "apt_get", "ensure_debian_package"]

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])


def apt_get(args: list[str], *, package: str) -> subprocess.CompletedProcess[str]:
    """Run ``apt-get <args>`` as root (directly or through ``sudo -n``), non-interactively."""
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if not sudo:
            raise ServerError(f"{package} is not installed and we are not root (no sudo): apt-get install {package}")
        prefix = [sudo, "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run([*prefix, "apt-get", *args], capture_output=True, text=True, env=env)  # noqa: S603


def ensure_debian_package(
    binary: str,
    package: str,
    *,
    search_path: str = SEARCH_PATH,
    after_install: Callable[[], None] | None = None,
) -> str:
    """Return the path of ``binary``, installing Debian's ``package`` first when it is missing."""
    found = shutil.which(binary, path=search_path)
    if found:
        return found
    with _file_lock(CACHE / "apt-install.lock"):
        found = shutil.which(binary, path=search_path)
        if found:
            return found
        if not shutil.which("apt-get"):
            raise ServerError(f"{binary} is not installed and there is no apt-get: install {package} by hand")
        _log(f"installing {package} with apt-get ...")
        t0 = time.monotonic()
        install = ["install", "-y", "--no-install-recommends", package]
        proc = apt_get(install, package=package)
        if proc.returncode != 0:
            # the package lists may be missing or stale on a fresh machine
            apt_get(["update"], package=package)
            proc = apt_get(install, package=package)
        if proc.returncode != 0:
            raise ServerError(f"apt-get install {package} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        if after_install is not None:
            after_install()
        found = shutil.which(binary, path=search_path)
        if not found:
            raise ServerError(f"{package} was installed but no {binary} binary was found")
        _log(f"installed {package} in {time.monotonic() - t0:.1f}s")
        return found
