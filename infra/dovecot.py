"""A private Dovecot IMAP server for tests: Debian's ``dovecot-imapd``, run as a plain foreground process.

It never touches the system's Dovecot: its own config file, ``base_dir``, ``state_dir``, logs, passwd-file
and maildirs all live in its data folder, and it listens on 127.0.0.1 only, without TLS, allowing plaintext
logins (loopback only). ``ensure_dovecot()`` installs the package with apt-get when ``dovecot`` is missing
(as root, or through ``sudo -n``), which is how a fresh CI machine gets it.

Library use::

    from dovecot import DovecotServer, free_port

    server = DovecotServer(free_port(), data_dir, users={"alice": "secret"})
    server.start(); server.wait_ready()
    ... IMAP on 127.0.0.1:server.port, log in as alice/secret ...
    server.stop()   # also done at interpreter exit

When run as root the mail processes run as the package's ``dovecot`` user (Dovecot refuses uid 0 for mail),
so ``data_dir`` must be reachable by that user: every folder above it needs o+x (``/tmp/x`` is, pytest's
``/tmp/pytest-of-root/...`` is not). ``reachable_temp_dir()`` makes such a folder.

Command line: ``python infra/dovecot.py install`` (install only) or ``python infra/dovecot.py up`` (run
a server in the foreground with user ``test``/``test`` until Ctrl-C).
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess  # noqa: S404 - this module's job is to install and start a local server
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from debian import SEARCH_PATH, ensure_debian_package  # noqa: E402
from stack import ServerError, _log, _Server, free_port  # noqa: E402

__all__ = ["DovecotServer", "dovecot_binary", "dovecot_version", "ensure_dovecot", "free_port", "reachable_temp_dir"]

PACKAGE = "dovecot-imapd"
_SEARCH_PATH = SEARCH_PATH


def dovecot_binary() -> str | None:
    """Return the path of the ``dovecot`` master binary, or None when it is not installed."""
    return shutil.which("dovecot", path=_SEARCH_PATH)


def dovecot_version(binary: str) -> tuple[int, int]:
    """Return (major, minor) of the installed Dovecot, e.g. (2, 3)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    match = re.match(r"\s*(\d+)\.(\d+)", out)
    if not match:
        raise ServerError(f"cannot read the Dovecot version from {out!r}")
    return int(match.group(1)), int(match.group(2))


def _stop_system_dovecot() -> None:
    """Stop a system Dovecot the package's postinst may have started (no systemd: invoke-rc.d runs it)."""
    service = shutil.which("service", path=_SEARCH_PATH)
    if service and Path("/run/dovecot/master.pid").exists():
        prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
        subprocess.run([*prefix, service, "dovecot", "stop"], capture_output=True, check=False)  # noqa: S603


def ensure_dovecot() -> str:
    """Return the ``dovecot`` binary, installing Debian's ``dovecot-imapd`` first when it is missing."""
    return ensure_debian_package("dovecot", PACKAGE, search_path=_SEARCH_PATH, after_install=_stop_system_dovecot)


def reachable_temp_dir(prefix: str = "helpdesk-dovecot-") -> Path:
    """Make a fresh folder under the system temp dir that Dovecot's unprivileged users can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


class DovecotServer(_Server):
    """A private Dovecot on 127.0.0.1:``port`` serving IMAP (no TLS) for the given ``users`` (name -> password).

    ``data_dir`` holds ``dovecot.conf``, ``users`` (passwd-file), ``mail/<user>/`` (maildirs), ``run/``
    (base_dir), ``state/``, ``dovecot.log`` and ``dovecot.out``. Keyword option ``binary`` (default
    ``ensure_dovecot()`` at start()). Also usable as a context manager.
    """

    kind = "dovecot"

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        users: dict[str, str] | None = None,
        binary: str | None = None,
        die_with_parent: bool | None = None,
    ) -> None:
        super().__init__(port, data_dir, die_with_parent=die_with_parent)
        self.users = dict(users or {"test": "test"})
        self.binary = binary

    @property
    def config_file(self) -> Path:
        """The instance's own dovecot.conf."""
        return self.data_dir / "dovecot.conf"

    @property
    def mail_dir(self) -> Path:
        """Root of the users' maildirs."""
        return self.data_dir / "mail"

    def _log_files(self) -> list[Path]:
        return [self.log_file, self.data_dir / "dovecot.log"]

    def _accounts(self) -> tuple[str, int, int]:
        """Return (internal user, uid, gid) the mail processes run as."""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            return me.pw_name, me.pw_uid, me.pw_gid
        try:
            internal = pwd.getpwnam("dovecot")
        except KeyError as exc:
            raise ServerError(f"the {PACKAGE} package should have created the 'dovecot' user") from exc
        return internal.pw_name, internal.pw_uid, internal.pw_gid

    def _prepare(self) -> None:
        if self.binary is None:
            self.binary = ensure_dovecot()
        internal, uid, gid = self._accounts()
        root = os.geteuid() == 0
        if root:
            for parent in [self.data_dir, *self.data_dir.parents]:
                if not parent.stat().st_mode & 0o001:
                    raise ServerError(
                        f"{parent} is not enterable by others, so Dovecot's '{internal}' user cannot reach "
                        f"{self.data_dir}; use a folder from reachable_temp_dir()"
                    )
            self.data_dir.chmod(0o711)
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        for name in self.users:
            (self.mail_dir / name).mkdir(exist_ok=True)
        if root:
            for path in [self.mail_dir, *self.mail_dir.rglob("*")]:
                os.chown(path, uid, gid)
        users = self.data_dir / "users"
        users.write_text("".join(f"{name}:{{PLAIN}}{password}::::::\n" for name, password in self.users.items()))
        users.chmod(0o644)
        major, minor = dovecot_version(self.binary)
        cleartext = "auth_allow_cleartext = yes" if (major, minor) >= (2, 4) else "disable_plaintext_auth = no"
        login_user = "dovenull" if root else internal
        login_chroot = "" if root else "  chroot =\n"  # chroot needs root
        self.config_file.write_text(
            f"""# written by infra/dovecot.py for a private test instance
instance_name = helpdesk-{self.port}
protocols = imap
listen = 127.0.0.1
base_dir = {self.data_dir}/run
state_dir = {self.data_dir}/state
log_path = {self.data_dir}/dovecot.log
ssl = no
{cleartext}
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(gid).gr_name}
default_login_user = {login_user}
first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 500)}
mail_location = maildir:{self.mail_dir}/%u
namespace inbox {{
  inbox = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_dir}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login_chroot}}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        )
        (self.data_dir / "state").mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        assert self.binary is not None  # noqa: S101
        return [self.binary, "-F", "-c", str(self.config_file)]

    def _probe(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                return s.recv(200).startswith(b"* OK")
        except OSError:
            return False


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="infra/dovecot.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help=f"install {PACKAGE} when dovecot is missing")
    up = sub.add_parser("up", help="run a private Dovecot (user test/test) until SIGINT/SIGTERM")
    up.add_argument("--port", type=int, default=1143)
    args = ap.parse_args(argv)
    try:
        binary = ensure_dovecot()
    except ServerError as exc:
        _log(str(exc))
        return 1
    if args.cmd == "install":
        _log(f"dovecot: {binary} {'.'.join(map(str, dovecot_version(binary)))}")
        return 0
    data = reachable_temp_dir()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with DovecotServer(args.port, data, binary=binary) as server:
            print(f"READY imap=127.0.0.1:{server.port} user=test password=test data={data}", flush=True)
            while server.running():
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
