"""The JetStream stream the relay publishes into, and applying its definition safely.

The definition is code (:class:`StreamSettings`) so that every process derives the same
stream from the same prefix; ``infra/nats/stream.json`` is generated from it for operators
(usable with ``nats stream add --config``) and a test keeps the two equal.

Applying it is idempotent and never destructive by surprise: a missing stream is created,
limits that JetStream can change in place (age, size, duplicate window, replicas) are
updated, and anything else that differs (subjects, storage, retention, a mirror) is a
:class:`StreamConfigConflict` for a human to resolve, because "fixing" it could drop or
misroute events that consumers rely on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import APIError, NotFoundError

from programledger.adapters.nats.envelope import HEADER_STORE_ID, validate_prefix
from programledger.application.errors import OperationalError

__all__ = [
    "DEFAULT_DUPLICATE_WINDOW",
    "DEFAULT_MAX_AGE",
    "STORE_METADATA_KEY",
    "ForeignStream",
    "StreamConfigConflict",
    "StreamSettings",
    "StreamSetup",
    "check_message_store",
    "check_stream_store",
    "ensure_stream",
    "stream_name",
    "stream_store",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 30 * 24 * 3600.0
"""Thirty days: consumers further behind than this rebuild from PostgreSQL (DESIGN §3)."""
DEFAULT_DUPLICATE_WINDOW = 120.0
"""Longer than any relay restart or NATS failover, during which re-publishes happen."""

_NANOS = 1_000_000_000
_ERR_STREAM_NAME_IN_USE = 10058
_ERR_SUBJECTS_OVERLAP = 10065

STORE_METADATA_KEY = "programledger_store_id"
"""The stream metadata entry naming the event store whose relay fills the stream."""
_DESCRIPTION_MARK = re.compile(r"\(event store ([0-9a-f-]{36})\)")


class StreamConfigConflict(OperationalError):
    """The stream exists with a definition we must not change on our own."""


class ForeignStream(StreamConfigConflict):
    """The stream (or a message in it) belongs to another event store: consuming it would
    apply another deployment's events here, and touching its consumers would break that
    deployment's readers."""

    def __init__(self, stream: str, found: str, ours: UUID, where: str = "its metadata") -> None:
        super().__init__(
            f"JetStream stream {stream!r} belongs to event store {found} ({where} says so), "
            f"not to this one ({ours}): two deployments share the subject prefix. Give each "
            "its own PROGRAMLEDGER_SUBJECT_PREFIX; nothing was read from or changed on the "
            "stream"
        )
        self.stream = stream
        self.found = found
        self.ours = ours


def stream_store(info: StreamInfo) -> str | None:
    """The store id the stream is marked with; ``None`` for a stream no relay of this
    version has claimed yet (made by hand from ``infra/nats/stream.json``, or older).

    Servers before 2.10 drop stream metadata, so the mark is in the description too.
    """
    found = (info.config.metadata or {}).get(STORE_METADATA_KEY)
    if found is None:
        marked = _DESCRIPTION_MARK.search(info.config.description or "")
        found = marked[1] if marked else None
    return found


def check_stream_store(info: StreamInfo, store_id: UUID) -> None:
    """Raises :class:`ForeignStream` when the stream's metadata names another store. An
    unmarked stream passes: its messages are still checked one by one
    (:func:`check_message_store`), and the relay marks it at its next start."""
    found = stream_store(info)
    if found is not None and found != str(store_id):
        raise ForeignStream(info.config.name or "?", found, store_id)


def check_message_store(stream: str, headers: Mapping[str, str] | None, store_id: UUID) -> None:
    """Raises :class:`ForeignStream` for a message another store's relay published; a
    message without the header predates store ids and passes."""
    found = (headers or {}).get(HEADER_STORE_ID)
    if found is not None and found != str(store_id):
        raise ForeignStream(stream, found, store_id, f"a message's {HEADER_STORE_ID} header")


def stream_name(prefix: str) -> str:
    """``programledger`` → ``PROGRAMLEDGER_EVENTS``; dots and dashes become underscores."""
    token = validate_prefix(prefix).replace(".", "_").replace("-", "_").upper()
    return f"{token}_EVENTS"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What an operator may choose; everything else about the stream is fixed by design."""

    prefix: str
    max_age: float = DEFAULT_MAX_AGE
    """Seconds a message is kept; 0 keeps messages until ``max_bytes`` says otherwise."""
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    replicas: int = 1
    """1 for a single server (development, tests); 3 for a production cluster."""
    max_bytes: int = -1

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        if self.max_age < 0 or self.duplicate_window <= 0:
            raise ValueError("max_age must be >= 0 and duplicate_window > 0 (seconds)")
        if self.max_age and self.duplicate_window > self.max_age:
            raise ValueError("duplicate_window cannot be longer than max_age")
        if not 1 <= self.replicas <= 5:
            raise ValueError("replicas must be between 1 and 5")

    @property
    def name(self) -> str:
        return stream_name(self.prefix)

    @property
    def subjects(self) -> list[str]:
        return [f"{self.prefix}.>"]

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=f"programledger events published by the relay under {self.prefix}.>",
            subjects=self.subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age,
            max_bytes=self.max_bytes,
            max_msgs=-1,
            max_msg_size=-1,
            max_msgs_per_subject=-1,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
            # Nobody removes single messages: the relay's resume logic trusts that the
            # stream's last message is the last one it published. Purge stays possible
            # for a deliberate reset (see docs/events.md).
            deny_delete=True,
            deny_purge=False,
            allow_rollup_hdrs=False,
        )

    def definition(self) -> dict[str, Any]:
        """The stream in the JetStream API's JSON form (durations in nanoseconds)."""
        return {
            "name": self.name,
            "description": self.config().description,
            "subjects": self.subjects,
            "retention": "limits",
            "storage": "file",
            "discard": "old",
            "max_age": int(self.max_age * _NANOS),
            "max_bytes": self.max_bytes,
            "max_msgs": -1,
            "max_msg_size": -1,
            "max_msgs_per_subject": -1,
            "max_consumers": -1,
            "num_replicas": self.replicas,
            "duplicate_window": int(self.duplicate_window * _NANOS),
            "deny_delete": True,
            "deny_purge": False,
            "allow_rollup_hdrs": False,
            "sealed": False,
        }

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any], prefix: str) -> StreamSettings:
        """Settings from a definition file such as ``infra/nats/stream.json``, applied to
        ``prefix``; only the operator-tunable limits are taken from the file."""
        return cls(
            prefix=prefix,
            max_age=float(definition.get("max_age", DEFAULT_MAX_AGE * _NANOS)) / _NANOS,
            duplicate_window=float(
                definition.get("duplicate_window", DEFAULT_DUPLICATE_WINDOW * _NANOS)
            )
            / _NANOS,
            replicas=int(definition.get("num_replicas", 1)),
            max_bytes=int(definition.get("max_bytes", -1)),
        )

    @classmethod
    def from_file(cls, path: Path, prefix: str) -> StreamSettings:
        return cls.from_definition(json.loads(path.read_text(encoding="utf-8")), prefix)


@dataclass(frozen=True, slots=True)
class StreamSetup:
    name: str
    action: Literal["created", "updated", "unchanged"]
    changed: tuple[str, ...] = ()


def _enum_value(value: object) -> object:
    return getattr(value, "value", value)


def _conflicts(found: StreamConfig, wanted: StreamConfig) -> list[str]:
    problems: list[str] = []
    if sorted(found.subjects or []) != sorted(wanted.subjects or []):
        problems.append(f"subjects are {found.subjects}, expected {wanted.subjects}")
    for field in ("storage", "retention"):
        have, want = _enum_value(getattr(found, field)), _enum_value(getattr(wanted, field))
        if have != want:
            problems.append(f"{field} is {have}, expected {want}")
    if found.mirror is not None or found.sources:
        problems.append("it mirrors or sources other streams")
    if found.sealed:
        problems.append("it is sealed (read-only)")
    if found.subject_transform is not None:
        problems.append("it transforms the subjects it stores")
    if found.no_ack:
        problems.append("it does not acknowledge publishes")
    if found.deny_delete != wanted.deny_delete or found.deny_purge != wanted.deny_purge:
        problems.append(
            f"deny_delete/deny_purge are {found.deny_delete}/{found.deny_purge}, expected "
            f"{wanted.deny_delete}/{wanted.deny_purge} (these cannot be changed in place)"
        )
    return problems


_UPDATABLE = (
    "description",
    "max_age",
    "max_bytes",
    "max_msgs",
    "max_msg_size",
    "max_msgs_per_subject",
    "num_replicas",
    "duplicate_window",
    "discard",
    "allow_rollup_hdrs",
)


def _differences(found: StreamConfig, wanted: StreamConfig) -> list[str]:
    changed = []
    for field in _UPDATABLE:
        have, want = _enum_value(getattr(found, field)), _enum_value(getattr(wanted, field))
        if isinstance(have, float) and isinstance(want, float):
            # Durations come back from the server in nanoseconds converted to float seconds.
            if abs(have - want) > 1e-6:
                changed.append(field)
        elif have != want:
            changed.append(field)
    return changed


def _conflict(name: str, problems: list[str]) -> StreamConfigConflict:
    return StreamConfigConflict(
        f"JetStream stream {name!r} exists with a conflicting definition: "
        + "; ".join(problems)
        + ". Refusing to change it automatically: fix or remove the stream (consumers "
        "depend on it), or choose another subject prefix."
    )


async def ensure_stream(
    js: JetStreamContext, settings: StreamSettings, *, store_id: UUID | None = None
) -> StreamSetup:
    """Create the stream, or bring its tunable limits in line with ``settings``.

    With ``store_id`` (the relay's store), the stream is marked as that store's in its
    metadata: a new one at creation, an unmarked one by claiming it; one marked with
    another store's id is a :class:`ForeignStream`, left untouched.

    Safe to call from several processes at once: a concurrent creation is detected and
    the existing stream is then checked like any other.
    """
    wanted = settings.config()
    if store_id is not None:
        wanted.metadata = {STORE_METADATA_KEY: str(store_id)}
        wanted.description = f"{wanted.description} (event store {store_id})"
    name = settings.name
    try:
        info: StreamInfo = await js.stream_info(name)
    except NotFoundError:
        try:
            await js.add_stream(wanted)
        except APIError as exc:
            if exc.err_code == _ERR_SUBJECTS_OVERLAP:
                raise _conflict(
                    name,
                    [f"another stream already captures {settings.subjects} ({exc.description})"],
                ) from exc
            if exc.err_code != _ERR_STREAM_NAME_IN_USE:
                raise
            info = await js.stream_info(name)
        else:
            log.info("created JetStream stream %s for subjects %s", name, settings.subjects)
            return StreamSetup(name, "created")
    found = info.config
    owner = stream_store(info)
    if store_id is not None and owner is not None and owner != str(store_id):
        raise ForeignStream(name, owner, store_id)
    problems = _conflicts(found, wanted)
    if problems:
        raise _conflict(name, problems)
    changed = _differences(found, wanted)
    if store_id is not None and owner is None:
        # The server keeps metadata of its own (``_nats.*``) beside ours.
        wanted.metadata = {**(found.metadata or {}), STORE_METADATA_KEY: str(store_id)}
        changed.append("metadata")
    if not changed:
        return StreamSetup(name, "unchanged")
    try:
        await js.update_stream(wanted)
    except APIError as exc:
        raise _conflict(
            name, [f"updating {', '.join(changed)} was refused by the server: {exc.description}"]
        ) from exc
    if store_id is not None and owner is None:
        # Two stores claiming one unmarked stream at once: the last update wins, and the
        # loser must find out now, before it publishes.
        check_stream_store(await js.stream_info(name), store_id)
    log.warning(
        "updated JetStream stream %s: %s",
        name,
        ", ".join(f"{f} {getattr(found, f)!r} -> {getattr(wanted, f)!r}" for f in changed),
    )
    return StreamSetup(name, "updated", tuple(changed))
