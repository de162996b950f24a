"""Local infrastructure for the helpdesk: a real Kafka broker and a MongoDB-wire store as plain processes.

No container engine is needed (see shared/spec/INFRA.md):

* Kafka: Apache Kafka 4.1.1 jars from Maven Central (``infra/kafka/pom.xml``),
  one combined broker+controller KRaft node on loopback.
* Store: ``mongod`` when one is on PATH, otherwise FerretDB v1.24 with its SQLite
  backend, built from ``infra/ferretdb`` into ``.cache/bin/ferretdb-launcher``.

This module imports with the standard library only. ``aiokafka`` (Kafka readiness,
``create_topics``) and ``pymongo`` (store readiness) are imported lazily inside the
functions that use them; the readiness checks fall back to a minimal wire-protocol
probe written here when they are missing.

Library use (e.g. from a pytest session fixture)::

    from stack import KafkaServer, StoreServer, create_topics, free_port

    kafka = KafkaServer(free_port(), free_port(), tmp / "kafka")
    store = StoreServer(free_port(), tmp / "store")
    kafka.start(); store.start()
    kafka.wait_ready(); store.wait_ready()
    create_topics(kafka.bootstrap, ["tickets.events"], partitions=6)
    ...
    kafka.stop(); store.stop()   # also done at interpreter exit

Command line::

    python infra/stack.py install            # download / build only, says what it reused
    python infra/stack.py up [--kafka-port 9092 --controller-port 9093 --mongo-port 27017 --data .data/stack]
    python infra/stack.py down               # stop servers left by an earlier run of this repo

Environment: HELPDESK_KAFKA_PORT, HELPDESK_KAFKA_CONTROLLER_PORT, HELPDESK_MONGO_PORT,
HELPDESK_DATA_DIR (defaults of ``up``); HELPDESK_STORE_BACKEND = auto (default) | mongod | ferretdb;
HELPDESK_STORE_LOG_LEVEL (FerretDB launcher, default ``error``); HELPDESK_STORE_PPROF (an address
where the FerretDB launcher serves Go's pprof profiles, e.g. 127.0.0.1:6060; off by default);
HELPDESK_STORE_WAL_LIMIT (bytes of SQLite write-ahead log after which the launcher empties it, default
64 MiB); HELPDESK_KAFKA_JVM_OPTS (replaces
KafkaServer.JVM_OPTS); HELPDESK_KAFKA_CDS=0 disables the class-data-sharing archive that speeds up
later Kafka starts (written to .cache/kafka-cds/ when the first broker exits).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess  # noqa: S404 - this module's job is to start local servers
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache"
INFRA = REPO_ROOT / "infra"
KAFKA_POM = INFRA / "kafka" / "pom.xml"
KAFKA_LOG4J = INFRA / "kafka" / "log4j2.properties"
FERRETDB_SRC = INFRA / "ferretdb"
KAFKA_VERSION = "4.1.1"
DEFAULT_DATA_DIR = REPO_ROOT / ".data" / "stack"

STOP_GRACE_SECONDS = 20.0
_MARKER = ".complete"

__all__ = [
    "CACHE",
    "KafkaServer",
    "ServerError",
    "StoreServer",
    "create_topics",
    "ensure_kafka",
    "ensure_store",
    "free_port",
    "main",
    "port_in_use",
]


class ServerError(RuntimeError):
    """A local server could not be installed, started or reached."""


# --------------------------------------------------------------------------- helpers


def _log(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether a server could not bind ``host:port`` now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def _tcp_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise installs between processes (two test sessions may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tail(paths: Iterable[Path], lines: int = 40) -> str:
    out = []
    for p in paths:
        try:
            text = p.read_text(errors="replace").splitlines()
        except OSError:
            continue
        if text:
            out.append(f"--- {p} (last {min(lines, len(text))} lines) ---")
            out.extend(text[-lines:])
    return "\n".join(out) if out else "(no log output)"


def _run_async(factory: Callable[[], Any], timeout: float) -> Any:
    """Run the coroutine made by ``factory`` in a private event loop on a helper thread.

    Works whether or not the caller already runs an event loop (pytest-asyncio fixtures).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stack-async") as ex:
        return ex.submit(asyncio.run, factory()).result(timeout=timeout)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- install


def _dir_hash(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def ensure_kafka(cache: Path = CACHE) -> Path:
    """Make sure the Kafka jars are in ``cache/kafka-libs`` and return that folder.

    Runs ``mvn dependency:copy-dependencies`` on infra/kafka/pom.xml only when the
    folder's marker (written after a successful copy, holding the pom's hash) is
    missing or stale, so later runs reuse the download.
    """
    libs = Path(cache) / "kafka-libs"
    want = _dir_hash([KAFKA_POM])
    marker = libs / _MARKER
    if marker.is_file() and marker.read_text().strip() == want:
        return libs
    with _file_lock(Path(cache) / "kafka-libs.lock"):
        if marker.is_file() and marker.read_text().strip() == want:
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise ServerError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
        tmp = Path(cache) / f"kafka-libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _log(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central into {libs} ...")
        t0 = time.monotonic()
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)  # noqa: S603
        if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            shutil.rmtree(tmp, ignore_errors=True)
            raise ServerError(f"mvn failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        marker.write_text(want + "\n")
        _log(f"fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - t0:.1f}s")
    return libs


def _store_backend() -> str:
    backend = os.environ.get("HELPDESK_STORE_BACKEND", "auto").strip().lower() or "auto"
    if backend not in ("auto", "mongod", "ferretdb"):
        raise ServerError(f"HELPDESK_STORE_BACKEND must be auto, mongod or ferretdb, not {backend!r}")
    return backend


def _ferretdb_inputs() -> list[Path]:
    return [FERRETDB_SRC / n for n in ("main.go", "go.mod", "go.sum")]


# FerretDB v1.24.2's SQLite backend never uses its `_id` index: the index is built on
# `_ferretdb_sjson->"_id"` while queries and updates filter on `_ferretdb_sjson->'$._id'`, and SQLite only
# uses an expression index for the identical expression. Every find, update and delete therefore scanned
# the whole collection (an update by `_id` took 20 ms at 2,000 documents). It also pushed `_id` down only
# when the filter had no other key, so conditional updates (`{_id, version}`) scanned too. These patches
# are applied to a copy of the module fetched from the Go module proxy before building; the handlers
# re-apply the whole filter to what the backend returns, so the wider pushdown changes no results.
# A third patch makes single-document updates atomic (see helpdesk_write_lock.go below).
# The rest let queries use the collection's other indexes (equality, $in, ranges, sort, limit and count);
# see _overlay/internal/backends/sqlite/helpdesk_pushdown.go for the contract that makes this safe.
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
_HANDLER_HEAD = (
    "func (h *Handler) Msg{name}(connCtx context.Context, msg *wire.OpMsg) (*wire.OpMsg, error) {{\n"
    "\tdocument, err := opMsgDocument(msg)\n\tif err != nil {{\n\t\treturn nil, lazyerrors.Error(err)\n\t}}\n"
)
FERRETDB_PATCHES: tuple[tuple[str, str, str], ...] = (
    (
        (
            "internal/backends/sqlite/metadata/metadata.go",
            "IDColumn = DefaultColumn + \"->'$._id'\"",
            "IDColumn = DefaultColumn + \"->'_id'\"",
        ),
        (
            "internal/backends/sqlite/metadata/registry.go",
            'fields[j] = fmt.Sprintf("%q", f)',
            'fields[j] = "\'" + strings.ReplaceAll(f, "\'", "\'\'") + "\'"',
        ),
        (
            "internal/backends/sqlite/collection.go",
            'if params.Filter.Len() == 1 {\n\t\tv, _ := params.Filter.Get("_id")',
            'if params.Filter.Len() >= 1 {\n\t\tv, _ := params.Filter.Get("_id")',
        ),
        (
            "internal/backends/sqlite/metadata/registry.go",
            'columns[i] = fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(fields, "->"))',
            "columns[i] = HelpdeskFieldExpr(key.Field)",
        ),
        (
            "internal/backends/sqlite/collection.go",
            "\treturn &backends.QueryResult{\n\t\tIter: newQueryIterator(ctx, rows, params.OnlyRecordIDs),\n\t}, nil\n",
            "\titer := newQueryIterator(ctx, rows, params.OnlyRecordIDs)\n\titer.(*queryIterator).keep = keep\n\n"
            "\treturn &backends.QueryResult{\n\t\tIter: iter,\n\t}, nil\n",
        ),
        (
            "internal/backends/sqlite/query_iterator.go",
            "\tonlyRecordIDs bool\n}\n",
            "\tonlyRecordIDs bool\n\tkeep          []string // helpdesk: fields to decode (helpdeskSlim)\n}\n",
        ),
        (
            "internal/backends/sqlite/query_iterator.go",
            "\t\tif doc, err = sjson.Unmarshal(b); err != nil {\n",
            "\t\tif doc, err = sjson.Unmarshal(helpdeskSlim(b, iter.keep)); err != nil {\n",
        ),
        (
            "internal/backends/collection.go",
            "\tLimit  int64\n\n\tOnlyRecordIDs bool\n",
            "\tLimit  int64\n\n\tOnlyRecordIDs bool\n\n"
            "\t// helpdesk pushdown (see helpdesk_pushdown.go): the whole filter, sort and skip+limit, and count only\n"
            "\tIndexFilter     *types.Document\n\tIndexSort       *types.Document\n\tIndexProjection *types.Document\n"
            "\tIndexLimit      int64\n\tCountOnly       bool\n",
        ),
        (
            "internal/backends/collection.go",
            "type QueryResult struct {\n\tIter types.DocumentsIterator\n",
            "type QueryResult struct {\n\tIter types.DocumentsIterator\n\n\tCount   int64\n\tCounted bool\n",
        ),
        (
            "internal/backends/sqlite/collection.go",
            "\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n",
            "\tq, whereClause, args, keep, done, err := c.helpdeskApply(ctx, db, meta, params, q, whereClause, args)\n"
            "\tif err != nil || done != nil {\n\t\treturn done, err\n\t}\n\n"
            "\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n",
        ),
        (
            "internal/handler/msg_find.go",
            "\t// Limit pushdown is not applied if:\n",
            "\tif !h.DisablePushdown {\n"
            "\t\tqp.IndexFilter, qp.IndexSort, qp.IndexProjection = params.Filter, params.Sort, params.Projection\n"
            "\t\tif params.Limit != 0 {\n\t\t\tqp.IndexLimit = max(params.Limit, -params.Limit) + params.Skip\n\t\t}\n"
            "\t}\n\n"
            "\t// Limit pushdown is not applied if:\n",
        ),
        (
            "internal/handler/msg_count.go",
            "\tqueryRes, err := c.Query(connCtx, &qp)\n\tif err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n",
            "\tif !h.DisablePushdown {\n"
            "\t\tqp.IndexFilter, qp.CountOnly = params.Filter, params.Skip == 0 && params.Limit == 0\n\t}\n\n"
            "\tqueryRes, err := c.Query(connCtx, &qp)\n"
            "\tif err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n\n"
            "\tif queryRes.Counted {\n"
            "\t\tqueryRes.Iter.Close()\n\n"
            '\t\treturn documentOpMsg(must.NotFail(types.NewDocument("n", int32(queryRes.Count), "ok", float64(1))))\n'
            "\t}\n",
        ),
    )
    + tuple(
        (
            f"internal/handler/{file}",
            f"\t\tqp.Filter = {expr}\n",
            f"\t\tqp.Filter = {expr}\n\t\tqp.IndexFilter = {expr}\n",
        )
        for file, expr in (("msg_delete.go", "p.Filter"), ("msg_findandmodify.go", "params.Query"))
    )
    + (
        (
            "internal/handler/msg_update.go",
            "\t\t\tqp.Filter = u.Filter\n",
            "\t\t\tqp.Filter = u.Filter\n\t\t\tqp.IndexFilter = u.Filter\n",
        ),
    )
    + tuple(
        # FerretDB tracks every iterator and cursor in a pprof profile to find leaks in its own tests; the
        # stack capture costs about an eighth of a find's CPU. Keep it for debug builds only.
        (
            "internal/util/resource/resource.go",
            f"func {name}(obj any, token *Token) {{\n\tcheckArgs(obj, token)\n",
            f"func {name}(obj any, token *Token) {{\n\tif !debugbuild.Enabled {{\n\t\treturn\n\t}}\n\n"
            "\tcheckArgs(obj, token)\n",
        )
        for name in ("Track", "Untrack")
    )
    + tuple(
        (
            f"internal/handler/{file}",
            _HANDLER_HEAD.format(name=name),
            _HANDLER_HEAD.format(name=name) + "\tdefer lockDatabase(document)()\n",
        )
        for name, file in (
            ("Update", "msg_update.go"),
            ("FindAndModify", "msg_findandmodify.go"),
            ("Delete", "msg_delete.go"),
        )
    )
)
FERRETDB_OVERLAY = FERRETDB_SRC / "_overlay"  # whole new files, copied over the module tree (Go skips "_" dirs)


def _overlay_files() -> dict[str, str]:
    return {
        str(path.relative_to(FERRETDB_OVERLAY)): path.read_text() for path in sorted(FERRETDB_OVERLAY.rglob("*.go"))
    }


FERRETDB_PATCH_ID = hashlib.sha256(repr((FERRETDB_PATCHES, _overlay_files())).encode()).hexdigest()[:16]


def _patched_ferretdb_modfile(cache: Path, go: str, env: dict[str, str]) -> Path:
    """Copy FerretDB from the module cache, apply FERRETDB_PATCHES, return a go.mod that builds with it."""
    proc = subprocess.run(  # noqa: S603
        [go, "mod", "download", "-json", FERRETDB_MODULE], cwd=FERRETDB_SRC, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise ServerError(f"go mod download {FERRETDB_MODULE} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    info = json.loads(proc.stdout)
    src = cache / f"ferretdb-src-{info['Version']}-{FERRETDB_PATCH_ID}"
    if not src.is_dir():
        tmp = src.with_name(src.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(info["Dir"], tmp)
        for path in tmp.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        for rel, old, new in FERRETDB_PATCHES:
            target = tmp / rel
            text = target.read_text()
            if old not in text:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ServerError(f"FerretDB patch no longer applies to {rel}: {old!r}")
            target.write_text(text.replace(old, new))
        for rel, content in _overlay_files().items():
            (tmp / rel).write_text(content)
        tmp.rename(src)
    build = cache / "ferretdb-build"
    build.mkdir(parents=True, exist_ok=True)
    mod = (FERRETDB_SRC / "go.mod").read_text() + f"\nreplace {FERRETDB_MODULE} => {src}\n"
    (build / "go.mod").write_text(mod)
    shutil.copyfile(FERRETDB_SRC / "go.sum", build / "go.sum")
    return build / "go.mod"


def ensure_store(cache: Path = CACHE) -> list[str]:
    """Return the command prefix of the MongoDB-wire store.

    ``[<path of mongod>]`` when ``mongod`` is on PATH (unless HELPDESK_STORE_BACKEND=ferretdb),
    else ``[<cache>/bin/ferretdb-launcher]``, built from infra/ferretdb with
    ``CGO_ENABLED=0 go build`` only when the binary is missing or older than its sources.
    """
    backend = _store_backend()
    mongod = shutil.which("mongod")
    if backend == "mongod" or (backend == "auto" and mongod):
        if not mongod:
            raise ServerError("HELPDESK_STORE_BACKEND=mongod but no mongod is on PATH")
        return [mongod]
    binary = Path(cache) / "bin" / "ferretdb-launcher"

    stamp = binary.with_name(binary.name + ".patch")

    def fresh() -> bool:
        if not binary.is_file() or not stamp.is_file() or stamp.read_text() != FERRETDB_PATCH_ID:
            return False
        built = binary.stat().st_mtime
        return all(p.stat().st_mtime <= built for p in _ferretdb_inputs() if p.exists())

    if fresh():
        return [str(binary)]
    with _file_lock(Path(cache) / "ferretdb.lock"):
        if fresh():
            return [str(binary)]
        go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
        if not go:
            raise ServerError("no mongod on PATH and Go is not installed: cannot build the FerretDB launcher")
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_name(f"{binary.name}.tmp-{os.getpid()}")
        _log(f"building FerretDB launcher into {binary} (first time takes about a minute) ...")
        t0 = time.monotonic()
        env = {**os.environ, "CGO_ENABLED": "0"}
        modfile = _patched_ferretdb_modfile(Path(cache), go, env)
        cmd = [go, "build", "-trimpath", f"-modfile={modfile}", "-o", str(tmp), "."]
        proc = subprocess.run(cmd, cwd=FERRETDB_SRC, env=env, capture_output=True, text=True)  # noqa: S603
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise ServerError(f"go build of infra/ferretdb failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        tmp.replace(binary)
        stamp.write_text(FERRETDB_PATCH_ID)
        _log(f"built FerretDB launcher in {time.monotonic() - t0:.1f}s")
    return [str(binary)]


# --------------------------------------------------------------------------- process base

_LIVE: set[_Server] = set()
_CLI_OWNER = False  # set by `up`: its servers may be stopped by `down` through the `up` process
_LIVE_LOCK = threading.Lock()


def _cleanup_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for srv in servers:
        with contextlib.suppress(Exception):
            srv.stop()


atexit.register(_cleanup_all)


def _registry_dir() -> Path:
    return CACHE / "run"


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001, S110 - best effort only
        pass


class _Server:
    """A child server process in its own process group, with a log file and a port registry entry."""

    kind = "server"

    def __init__(self, port: int, data_dir: Path, *, die_with_parent: bool | None = None) -> None:
        self.port = int(port)
        self.data_dir = Path(data_dir).resolve()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_seconds: float | None = None
        # None: decided in start(). PR_SET_PDEATHSIG fires when the *thread* that forked
        # exits, so by default it is only used when start() runs on the main thread.
        self.die_with_parent = die_with_parent

    # subclasses -----------------------------------------------------------
    @property
    def ports(self) -> list[int]:
        """Every TCP port the server listens on."""
        return [self.port]

    @property
    def log_file(self) -> Path:
        """File receiving the process's stdout and stderr."""
        return self.data_dir / f"{self.kind}.out"

    def _log_files(self) -> list[Path]:
        return [self.log_file]

    def _prepare(self) -> None:
        """Write configuration / initialise storage before the first launch."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _probe(self) -> bool:
        raise NotImplementedError

    # common ---------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """Process id of the running server, if started."""
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        """Tell whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def _check_ports(self) -> None:
        for port in self.ports:
            if not port_in_use(port):
                continue
            entry = _registry_dir() / f"{port}.json"
            info: dict[str, Any] = {}
            with contextlib.suppress(Exception):
                info = json.loads(entry.read_text())
            pid = int(info.get("pid", 0) or 0)
            if pid and _pid_alive(pid):
                raise ServerError(
                    f"port 127.0.0.1:{port} is still held by a previous helpdesk stack run "
                    f"({info.get('kind')} pid {pid}, data dir {info.get('data_dir')}). "
                    f"Stop it with `python infra/stack.py down` (or kill -TERM -- -{pid}), "
                    "or pick other ports."
                )
            raise ServerError(f"port 127.0.0.1:{port} is already in use by another program; pick another port")

    def start(self) -> None:
        """Start the server process (non-blocking; call wait_ready next)."""
        if self.running():
            return
        self._check_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        cmd = self._command()
        pdeathsig = self.die_with_parent
        if pdeathsig is None:
            pdeathsig = threading.current_thread() is threading.main_thread()
        with open(self.log_file, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(  # noqa: S603
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: stop() kills the group
                preexec_fn=_pdeathsig if pdeathsig else None,  # noqa: PLW1509
                env=self._env(),
            )
        self.started_at = time.monotonic()
        self.ready_seconds = None
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._register()

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _register(self) -> None:
        reg = _registry_dir()
        reg.mkdir(parents=True, exist_ok=True)
        info = {
            "kind": self.kind,
            "pid": self.pid,
            "ports": self.ports,
            "data_dir": str(self.data_dir),
            "started": time.time(),
            "owner_pid": os.getpid(),
            "owner_is_cli": _CLI_OWNER,
        }
        for port in self.ports:
            (reg / f"{port}.json").write_text(json.dumps(info))

    def _unregister(self) -> None:
        for port in self.ports:
            entry = _registry_dir() / f"{port}.json"
            with contextlib.suppress(Exception):
                if json.loads(entry.read_text()).get("pid") == self.pid:
                    entry.unlink()

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Block until the server answers its protocol; return seconds since start().

        Raises ServerError with the log tail if the process died or the timeout passed.
        """
        if self.proc is None:
            raise ServerError(f"{self.kind}: wait_ready() before start()")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.kind} exited with status {self.proc.returncode} before it was ready\n"
                    + _tail(self._log_files())
                )
            if _tcp_open(self.port) and self._probe():
                self.ready_seconds = time.monotonic() - self.started_at
                return self.ready_seconds
            if time.monotonic() > deadline:
                raise ServerError(f"{self.kind} not ready after {timeout:.0f}s\n" + _tail(self._log_files()))
            time.sleep(0.2)

    def stop(self, timeout: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; return the exit status."""
        proc = self.proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _log(f"{self.kind} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f}s: SIGKILL")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            # leftovers of the group (none expected) go too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        finally:
            self._unregister()
            with _LIVE_LOCK:
                _LIVE.discard(self)
        return proc.returncode

    def __enter__(self) -> _Server:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} port={self.port} pid={self.pid} data_dir={self.data_dir}>"


# --------------------------------------------------------------------------- Kafka


def _random_cluster_id() -> str:
    # Kafka's Uuid.toString(): URL-safe base64 of the 16 bytes, unpadded; CLI refuses a leading "-"
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaServer(_Server):
    """One Apache Kafka 4.1.1 node (broker + KRaft controller) on 127.0.0.1.

    ``data_dir`` holds server.properties, the formatted log dir (``kraft-logs``), the
    cluster id, ``kafka.out`` (stdout/stderr) and ``kafka.log`` (log4j, WARN+).
    Re-using a data dir keeps topics and offsets; storage is formatted only once.

    Keyword options: ``libs`` (jar folder; default ``ensure_kafka(CACHE)`` at start()),
    ``cluster_id`` (used when the data dir is formatted; default random), ``properties``
    (extra/overriding server.properties entries), ``die_with_parent`` (SIGKILL the broker
    when the thread that started it exits; default: only when start() runs on the main thread).
    Also usable as a context manager (start + wait_ready, then stop).
    """

    kind = "kafka"
    # Serial GC and the C1 compiler only: measured fastest to start on 2 cores (ready ~2.2s
    # after start() vs ~2.9s with the JVM defaults); plenty for development and tests.
    JVM_OPTS = (
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
    )

    def __init__(
        self,
        port: int,
        controller_port: int,
        data_dir: Path,
        *,
        libs: Path | None = None,
        cluster_id: str | None = None,
        properties: dict[str, str] | None = None,
        die_with_parent: bool | None = None,
    ) -> None:
        super().__init__(port, data_dir, die_with_parent=die_with_parent)
        self.controller_port = int(controller_port)
        self.libs = Path(libs) if libs else None
        self._cluster_id = cluster_id
        self.extra_properties = dict(properties or {})
        self._cds_dump: Path | None = None

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers string for clients, ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        """Broker and controller ports."""
        return [self.port, self.controller_port]

    @property
    def log_dir(self) -> Path:
        """Kafka's ``log.dirs`` (topic data and the KRaft metadata log)."""
        return self.data_dir / "kraft-logs"

    @property
    def properties_file(self) -> Path:
        """The generated server.properties."""
        return self.data_dir / "server.properties"

    def _log_files(self) -> list[Path]:
        return [self.log_file, self.data_dir / "kafka.log"]

    def server_properties(self) -> dict[str, str]:
        """Return the broker configuration written to server.properties."""
        p, c = self.port, self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{c}",
            "listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            # topics
            "num.partitions": "6",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            # internal topics: single replica, few partitions so the first group join is fast
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            # retention: a week or 1 GiB per partition, small segments for a dev box
            "log.retention.hours": "168",
            "log.retention.bytes": "1073741824",
            "log.segment.bytes": "67108864",
            "log.retention.check.interval.ms": "300000",
            # a 2-core machine
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "4",
        }
        props.update(self.extra_properties)
        return props

    def cluster_id(self) -> str:
        """Return the KRaft cluster id, generated once per data dir (or the one given)."""
        f = self.data_dir / "cluster.id"
        if f.is_file():
            return f.read_text().strip()
        cid = self._cluster_id or _random_cluster_id()
        f.write_text(cid + "\n")
        return cid

    def _classpath(self) -> str:
        return str(self.libs / "*")  # type: ignore[operator]

    def _java(self) -> str:
        java = shutil.which("java")
        if not java:
            raise ServerError("java is not on PATH (Kafka needs Java 17+)")
        return java

    def _jvm_opts(self) -> list[str]:
        raw = os.environ.get("HELPDESK_KAFKA_JVM_OPTS", "").strip()
        opts = raw.split() if raw else list(self.JVM_OPTS)
        return [*opts, f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={self.data_dir}"]

    def _cds_archive(self) -> Path | None:
        """AppCDS archive for this JDK and these jars (None when disabled)."""
        if os.environ.get("HELPDESK_KAFKA_CDS", "1").strip().lower() in ("0", "false", "no", "off"):
            return None
        java = Path(os.path.realpath(self._java()))
        h = hashlib.sha256(str(java).encode())
        for f in (java, java.parent.parent / "lib" / "server" / "libjvm.so", self.libs / _MARKER):  # type: ignore[operator]
            with contextlib.suppress(OSError):
                st = f.stat()
                h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
        return CACHE / "kafka-cds" / f"kafka-{h.hexdigest()[:16]}.jsa"

    def _cds_opts(self, dump: bool) -> list[str]:
        archive = self._cds_archive()
        if archive is None:
            return []
        if archive.is_file() and archive.stat().st_size > 0:
            return [f"-XX:SharedArchiveFile={archive}"]
        if not dump:
            return []
        # no archive yet: this broker writes one when it exits (takes a few seconds, once)
        archive.parent.mkdir(parents=True, exist_ok=True)
        self._cds_dump = archive.with_name(f"{archive.name}.tmp-{os.getpid()}-{self.port}")
        return [f"-XX:ArchiveClassesAtExit={self._cds_dump}"]

    def stop(self, timeout: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM the broker's process group, SIGKILL it after ``timeout`` seconds; return the exit status.

        Java exits with 143 (128 + SIGTERM) after a clean shutdown.
        """
        rc = super().stop(timeout)
        dump, self._cds_dump = self._cds_dump, None
        if dump is not None:
            archive = self._cds_archive()
            if archive is not None and dump.is_file() and dump.stat().st_size > 0 and rc in (0, 143):
                dump.replace(archive)
            else:
                dump.unlink(missing_ok=True)
        return rc

    def _prepare(self) -> None:
        if self.libs is None:
            self.libs = ensure_kafka(CACHE)
        lines = [f"{k}={v}" for k, v in self.server_properties().items()]
        self.properties_file.write_text("# written by infra/stack.py\n" + "\n".join(lines) + "\n")
        if (self.log_dir / "meta.properties").is_file():
            return
        cmd = [
            self._java(),
            *self._jvm_opts(),
            *self._cds_opts(dump=False),
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            self.cluster_id(),
            "-c",
            str(self.properties_file),
        ]
        proc = subprocess.run(cmd, cwd=self.data_dir, capture_output=True, text=True)  # noqa: S603
        if proc.returncode != 0:
            raise ServerError(f"kafka storage format failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def _command(self) -> list[str]:
        return [
            self._java(),
            *self._jvm_opts(),
            *self._cds_opts(dump=True),
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.properties_file),
        ]

    def _probe(self) -> bool:
        try:
            import aiokafka  # noqa: F401
        except ImportError:
            return _kafka_metadata_probe(self.port)
        try:
            return bool(_run_async(lambda: _aiokafka_ready(self.bootstrap), timeout=10))
        except Exception:  # noqa: BLE001 - not ready yet
            return False


async def _aiokafka_ready(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        info = await admin.describe_cluster()
        if not info.get("brokers") or info.get("controller_id", -1) < 0:
            return False
        # Also wait for the group coordinator: this creates __consumer_offsets now, so the
        # first consumer group joins at once instead of retrying GroupCoordinatorNotAvailable.
        await admin.find_coordinator("helpdesk-stack-readiness")
        return True
    finally:
        await admin.close()


def _kafka_metadata_probe(port: int) -> bool:
    """Stdlib fallback: a Metadata v1 request must list at least one broker and a controller."""
    client = b"stack-probe"
    body = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", -1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv_exact(s, 4))[0]
            data = _recv_exact(s, size)
    except (OSError, struct.error):
        return False
    (corr, n_brokers) = struct.unpack_from(">ii", data, 0)
    return corr == 7 and n_brokers > 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 6,
    replication_factor: int = 1,
    timeout: float = 60.0,
) -> list[str]:
    """Create the topics that do not exist yet (idempotent); return the names actually created.

    Waits until every named topic has a leader on all its partitions. Needs aiokafka.
    """
    names = list(dict.fromkeys(names))
    if not names:
        return []
    return list(
        _run_async(
            lambda: _create_topics(bootstrap, names, partitions, replication_factor, timeout),
            timeout=timeout + 5,
        )
    )


async def _create_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    rf: int,
    timeout: float,  # noqa: ASYNC109 - also the broker-side request timeout
) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    created: list[str] = []
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        todo = [n for n in names if n not in existing]
        if todo:
            resp = await admin.create_topics(
                [NewTopic(name=n, num_partitions=partitions, replication_factor=rf) for n in todo],
                timeout_ms=int(timeout * 1000),
            )
            for entry in resp.topic_errors:
                topic, code = entry[0], entry[1]
                if code == 0:
                    created.append(topic)
                elif code != 36:  # TOPIC_ALREADY_EXISTS: created concurrently, fine
                    msg = entry[2] if len(entry) > 2 else ""
                    raise ServerError(f"creating topic {topic!r} failed: error code {code} {msg or ''}")
        deadline = time.monotonic() + timeout
        while True:
            topics = await admin.describe_topics(names)
            ok = {
                t["topic"]
                for t in topics
                if t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
            }
            if ok >= set(names):
                return created
            if time.monotonic() > deadline:
                raise ServerError(f"topics without leaders after {timeout:.0f}s: {sorted(set(names) - ok)}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


# --------------------------------------------------------------------------- store


class StoreServer(_Server):
    """The MongoDB-wire store on 127.0.0.1: mongod if on PATH, else the FerretDB/SQLite launcher.

    ``data_dir`` holds the database files (``db/``) and ``store.out`` (stdout/stderr).
    Keyword options: ``command`` (command prefix; default ``ensure_store(CACHE)`` at start()),
    ``die_with_parent`` (as for KafkaServer). Also usable as a context manager.
    """

    kind = "store"

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        command: list[str] | None = None,
        die_with_parent: bool | None = None,
    ) -> None:
        super().__init__(port, data_dir, die_with_parent=die_with_parent)
        self.command_prefix = list(command) if command else None

    @property
    def url(self) -> str:
        """MongoDB connection string, ``mongodb://127.0.0.1:PORT/``."""
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def backend(self) -> str:
        """``mongod`` or ``ferretdb`` (known after start())."""
        prefix = self.command_prefix or []
        return "mongod" if prefix and Path(prefix[0]).name.startswith("mongod") else "ferretdb"

    @property
    def db_dir(self) -> Path:
        """Folder of the database files."""
        return self.data_dir / "db"

    def _prepare(self) -> None:
        if self.command_prefix is None:
            self.command_prefix = ensure_store(CACHE)
        self.db_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        assert self.command_prefix is not None  # noqa: S101
        if self.backend == "mongod":
            return [
                *self.command_prefix,
                "--dbpath",
                str(self.db_dir),
                "--port",
                str(self.port),
                "--bind_ip",
                "127.0.0.1",
                "--quiet",
                "--wiredTigerCacheSizeGB",
                "0.25",
            ]
        level = os.environ.get("HELPDESK_STORE_LOG_LEVEL", "").strip() or "error"
        pprof = os.environ.get("HELPDESK_STORE_PPROF", "").strip()
        wal_limit = os.environ.get("HELPDESK_STORE_WAL_LIMIT", "").strip()
        return [
            *self.command_prefix,
            "-listen",
            f"127.0.0.1:{self.port}",
            "-dir",
            str(self.db_dir),
            "-log-level",
            level,
            *(["-pprof", pprof] if pprof else []),
            *(["-wal-limit", wal_limit] if wal_limit else []),
        ]

    def _probe(self) -> bool:
        try:
            import pymongo
        except ImportError:
            return _mongo_ping_probe(self.port)
        try:
            with pymongo.MongoClient(
                self.url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, directConnection=True
            ) as client:
                return client.admin.command("ping").get("ok") == 1
        except Exception:  # noqa: BLE001 - not ready yet
            return False


def _mongo_ping_probe(port: int) -> bool:
    """Stdlib fallback: OP_MSG {ping: 1, $db: "admin"} must answer ok: 1.0."""
    doc = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    doc = struct.pack("<i", len(doc) + 5) + doc + b"\x00"
    body = struct.pack("<i", 0) + b"\x00" + doc
    msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(msg)
            size = struct.unpack("<i", _recv_exact(s, 4))[0]
            data = _recv_exact(s, size - 4)
    except (OSError, struct.error):
        return False
    i = data.find(b"\x01ok\x00")
    return i >= 0 and struct.unpack_from("<d", data, i + 4)[0] == 1.0


# --------------------------------------------------------------------------- CLI


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _install(verbose: bool = True) -> tuple[Path, list[str]]:
    """Fetch the Kafka jars and build the store launcher in parallel."""
    libs = CACHE / "kafka-libs"
    kafka_cached = (libs / _MARKER).is_file() and (libs / _MARKER).read_text().strip() == _dir_hash([KAFKA_POM])
    binary = CACHE / "bin" / "ferretdb-launcher"
    binary_mtime = binary.stat().st_mtime if binary.is_file() else None
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fk = ex.submit(ensure_kafka, CACHE)
        fs = ex.submit(ensure_store, CACHE)
        libs, store_cmd = fk.result(), fs.result()
    if verbose:
        jars = len(list(libs.glob("*.jar")))
        how = "reused" if kafka_cached else "downloaded"
        print(f"kafka: {how} {jars} jars of Kafka {KAFKA_VERSION} in {libs}")
        if Path(store_cmd[0]).name.startswith("mongod"):
            print(f"store: mongod on PATH: {store_cmd[0]}")
        else:
            same = binary_mtime is not None and binary.stat().st_mtime == binary_mtime
            print(f"store: {'reused' if same else 'built'} FerretDB launcher {store_cmd[0]}")
        print(f"install done in {time.monotonic() - t0:.1f}s")
    return libs, store_cmd


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _down(everything: bool = False) -> int:
    """Stop servers of this checkout: orphans, `up` stacks and, with ``everything``, live test servers."""
    reg = _registry_dir()
    seen: set[int] = set()
    stopped = 0
    for entry in sorted(reg.glob("*.json")) if reg.is_dir() else []:
        try:
            info = json.loads(entry.read_text())
            pid = int(info["pid"])
        except Exception:  # noqa: BLE001
            entry.unlink(missing_ok=True)
            continue
        if pid in seen:
            continue
        seen.add(pid)
        cmd = _cmdline(pid)
        if not (_pid_alive(pid) and ("kafka.Kafka" in cmd or "ferretdb" in cmd or "mongod" in cmd)):
            entry.unlink(missing_ok=True)
            continue
        owner = int(info.get("owner_pid") or 0)
        if owner and owner != os.getpid() and _pid_alive(owner):
            if info.get("owner_is_cli"):
                print(f"asking `stack.py up` (pid {owner}) to stop its {info.get('kind')} (pid {pid})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(owner, signal.SIGTERM)
                _wait_gone(pid, STOP_GRACE_SECONDS + 5)
            elif not everything:
                print(
                    f"leaving {info.get('kind')} pid {pid} (ports {info.get('ports')}): it belongs to live "
                    f"process {owner} ({_cmdline(owner)[:80].strip()}); `down --all` stops it anyway"
                )
                continue
        if _pid_alive(pid):
            print(f"stopping {info.get('kind')} pid {pid} (ports {info.get('ports')})")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            if not _wait_gone(pid, STOP_GRACE_SECONDS):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        stopped += 1
        for port in info.get("ports", []):
            (reg / f"{port}.json").unlink(missing_ok=True)
    print(f"stopped {stopped} server(s)")
    return 0


def _up(args: argparse.Namespace) -> int:
    global _CLI_OWNER  # noqa: PLW0603
    _CLI_OWNER = True
    data = Path(args.data).resolve()
    _install(verbose=False)
    kafka = KafkaServer(args.kafka_port, args.controller_port, data / "kafka")
    store = StoreServer(args.mongo_port, data / "store")

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for srv in (kafka, store):  # fail before starting anything
            srv._check_ports()
        t0 = time.monotonic()
        kafka.start()
        store.start()
        store_s = store.wait_ready(args.timeout)
        kafka_s = kafka.wait_ready(args.timeout)
        if args.topics:
            create_topics(kafka.bootstrap, [t for t in args.topics.split(",") if t], args.partitions)
        endpoints = {
            "kafka_bootstrap": kafka.bootstrap,
            "mongo_url": store.url,
            "store_backend": store.backend,
            "kafka_pid": kafka.pid,
            "store_pid": store.pid,
        }
        (data / "endpoints.json").write_text(json.dumps(endpoints, indent=2) + "\n")
        print(
            f"READY kafka={kafka.bootstrap} mongo={store.url} store={store.backend} "
            f"(kafka {kafka_s:.1f}s, store {store_s:.1f}s, total {time.monotonic() - t0:.1f}s)",
            flush=True,
        )
        while not stopping.wait(0.5):
            for srv in (kafka, store):
                if not srv.running():
                    _log(f"{srv.kind} exited unexpectedly (status {srv.proc.returncode if srv.proc else '?'})")
                    _log(_tail(srv._log_files(), 20))
                    return 1
        return 0
    except ServerError as exc:
        _log(str(exc))
        return 1
    finally:
        if kafka.proc or store.proc:
            for srv in (kafka, store):
                srv.stop()
            _log("stopped")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="infra/stack.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="fetch the Kafka jars and build the store launcher (reuses earlier downloads)")
    up = sub.add_parser("up", help="run Kafka and the store in the foreground until SIGINT/SIGTERM")
    up.add_argument("--kafka-port", type=int, default=_env_int("HELPDESK_KAFKA_PORT", 9092))
    up.add_argument(
        "--controller-port",
        type=int,
        default=_env_int("HELPDESK_KAFKA_CONTROLLER_PORT", 0),
        help="default: the Kafka port + 1",
    )
    up.add_argument("--mongo-port", type=int, default=_env_int("HELPDESK_MONGO_PORT", 27017))
    up.add_argument("--data", default=os.environ.get("HELPDESK_DATA_DIR") or str(DEFAULT_DATA_DIR))
    up.add_argument("--topics", default="", help="comma-separated topics to create once Kafka is ready")
    up.add_argument("--partitions", type=int, default=6)
    up.add_argument("--timeout", type=float, default=90.0)
    down = sub.add_parser("down", help="stop servers of this checkout left running (orphans and `up` stacks)")
    down.add_argument("--all", action="store_true", help="also stop servers owned by live test processes")
    args = ap.parse_args(argv)
    if args.cmd == "install":
        try:
            _install()
        except ServerError as exc:
            _log(str(exc))
            return 1
        return 0
    if args.cmd == "down":
        return _down(args.all)
    if not args.controller_port:
        args.controller_port = args.kafka_port + 1
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
