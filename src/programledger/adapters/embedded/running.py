"""The data directory's record of the embedded servers a process runs: ``running.json``.

The process that starts (or takes over) the embedded servers writes their URLs here, with
its own pid and start time, and removes the file when it stops them. ``programledger
status`` prints it; and a process that finds the servers running while the file names a
process that is gone (``run`` was SIGKILLed) knows they were started by a programledger
that can no longer stop them, and takes them over instead of leaving them running for
ever. A live owner's servers are left alone.

The URLs carry no secrets (the embedded servers trust local connections), and the file is
written whole or not at all (a temporary file renamed into place).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import msgspec

__all__ = [
    "RUNNING_FILE",
    "RunningServers",
    "clear_running",
    "note_api",
    "read_running",
    "write_running",
]

RUNNING_FILE = "running.json"


class RunningServers(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    """The owner: the process that started the servers and will stop them."""
    pid_started: int
    """The owner's start time (clock ticks since boot), so a reused pid is not taken for it."""
    postgres: str | None = None
    nats: str | None = None
    api: str | None = None
    """The GraphQL endpoint, once ``run`` serves it."""

    @classmethod
    def for_this_process(
        cls, *, postgres: str | None, nats: str | None, api: str | None = None
    ) -> RunningServers:
        return cls(
            pid=os.getpid(),
            pid_started=process_started(os.getpid()),
            postgres=postgres,
            nats=nats,
            api=api,
        )

    @property
    def owner_alive(self) -> bool:
        return process_started(self.pid) == self.pid_started

    @property
    def ours(self) -> bool:
        return self.pid == os.getpid() and self.owner_alive


def process_started(pid: int) -> int:
    """A process's start time from ``/proc`` (field 22 of ``stat``); -1 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return -1
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return -1


def read_running(data_dir: Path) -> RunningServers | None:
    """The record, or ``None`` when there is none (or it is not one: a record that cannot
    be read proves nothing about who owns the servers)."""
    try:
        return msgspec.json.decode((data_dir / RUNNING_FILE).read_bytes(), type=RunningServers)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def write_running(data_dir: Path, record: RunningServers) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{RUNNING_FILE}.", dir=data_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.format(msgspec.json.encode(record)) + b"\n")
        os.chmod(staging, 0o644)
        os.replace(staging, data_dir / RUNNING_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def note_api(data_dir: Path, url: str) -> None:
    """Add the API's URL to the record, if this process owns it."""
    record = read_running(data_dir)
    if record is not None and record.ours:
        write_running(data_dir, msgspec.structs.replace(record, api=url))


def clear_running(data_dir: Path) -> None:
    """Remove the record if this process owns it (another may have taken over since)."""
    record = read_running(data_dir)
    if record is not None and record.ours:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / RUNNING_FILE).unlink()
