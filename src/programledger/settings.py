"""Settings from ``PROGRAMLEDGER_*`` environment variables, validated once at start.

Read by the entry points (CLI, app factory) and passed down; nothing reads the environment
at import time. Every problem is reported in one line that names the variable, so a
misconfigured deployment fails at start with exit code 2 instead of at the first request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from programledger.redaction import redact

__all__ = [
    "GC_THRESHOLDS",
    "PREFIX",
    "SCHEMA_PATTERN",
    "LogFormat",
    "Settings",
    "SettingsError",
    "default_data_dir",
]

PREFIX = "PROGRAMLEDGER_"
SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")
"""A store schema name: interpolated (quoted) into SQL, so nothing outside this pattern
ever reaches a statement. Here, below the adapters, so that configuration is checked at
start and the PostgreSQL adapter enforces the same rule on every name it is handed."""
Mode = Literal["development", "production"]
LogFormat = Literal["json", "console"]


class SettingsError(ValueError):
    """A configuration problem, phrased for the operator who has to fix it.

    The message quotes the value that was wrong, with its secrets masked: it is printed
    and logged, and a database URL carries its password."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def default_data_dir() -> Path:
    """Per-user data for the embedded servers; outside /root when run as root, because the
    embedded PostgreSQL runs as an unprivileged user that cannot enter /root."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/programledger")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "programledger"


GC_THRESHOLDS = (10_000, 20, 20)
"""The garbage collector's thresholds by default (see ``programledger.gc_tuning``)."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    """PostgreSQL; unset = start the embedded PostgreSQL in ``data_dir``."""
    nats_url: str | None = None
    """NATS with JetStream; unset = start the embedded nats-server in ``data_dir``."""
    schema: str = "programledger"
    data_dir: Path = field(default_factory=default_data_dir)
    mode: Mode = "development"
    jwt_secret: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    embedded_postgres_port: int | None = None
    embedded_nats_port: int | None = None
    subject_prefix: str = "programledger"
    stream_replicas: int = 1
    """Replicas of the JetStream stream the relay creates: 1 for one server, 3 for a cluster."""
    db_pool_size: int = 10
    """PostgreSQL connections in each process's pool (API requests and commands, the
    relay's and runners' reads); runners and the relay each hold one more of their own."""
    appends_in_flight: int = 1
    """Append transactions one process runs at once; appends that arrive while this many
    run wait and go together in the next one (write-combining, docs/architecture.md)."""
    reads_in_flight: int = 2
    """Whole-stream reads (commands' loads) one process runs at once; more are combined
    into the next query the same way."""
    db_connect_timeout: int = 5
    """Seconds to open a PostgreSQL connection before giving up (a request then fails
    with ``UNAVAILABLE``, HTTP 503)."""
    db_statement_timeout: int = 10
    """PostgreSQL's ``statement_timeout`` for the pool's statements (rebuilds lift it on
    their own connections). An API request's database work gets this plus 2 seconds
    (waits for the read models excepted) before it fails with ``UNAVAILABLE``: a
    partitioned database makes requests fail, never hang."""
    max_waiting_requests: int = 500
    """Requests that may wait for the read models at once in one API process
    (``waitForProjections``, ``Programledger-Min-Position``); one more answers
    ``UNAVAILABLE`` (HTTP 503, ``Retry-After``) instead of queueing."""
    ready_max_lag_seconds: int | None = None
    """``/ready`` fails when a projection is further behind than this; ``None``: lag is
    reported there but never makes an API replica unready."""
    projection_state_cache: int = 5_000
    """Handler states each projection runner keeps in memory (least recently used evicted,
    read back from their table when needed): about 1-4 KB each."""
    projection_state_cache_mb: int = 2
    """Megabytes of memory the states each projection runner keeps take (held as encoded
    in their table), a second bound beside the count (states grow with their programs)."""
    projection_commit_interval_ms: int = 200
    """While events trickle in, a projection runner commits at most once per this many
    milliseconds (a backlog is committed batch after batch at once; 0: after every fetch)."""
    metrics_port: int | None = None
    """Where ``project`` serves its Prometheus ``/metrics`` (the API serves its own on
    ``http_port``); ``None``: not served."""
    gc_freeze: bool = True
    """Once started, freeze what the process holds so garbage collections never walk it
    again (``programledger.gc_tuning``: shorter pauses, a steadier tail)."""
    gc_thresholds: tuple[int, int, int] | None = GC_THRESHOLDS
    """The cycle collector's three thresholds (``gc.set_threshold``); ``None`` keeps
    CPython's (700, 10, 10)."""
    log_level: str = "INFO"
    log_format: LogFormat | None = None
    """``None`` chooses at start: ``console`` on a terminal, ``json`` otherwise."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins besides the API's own that may call it and open its WebSocket;
    ``("*",)`` is any origin (development mode only)."""
    graphiql: bool = True
    """Serve the GraphiQL page at ``/graphql``; off by default in production mode."""
    introspection: bool = True
    """Answer ``__schema`` / ``__type`` queries; off by default in production mode."""
    jwks_url: str | None = None
    """Where an identity provider publishes its signing keys (JWKS); fetched and cached."""
    jwks_file: Path | None = None
    """The signing keys as a JWKS file, read once at start."""
    jwt_issuer: str | None = None
    """The ``iss`` every token verified against the JWKS must carry."""
    jwt_audience: tuple[str, ...] = ()
    """Token ``aud`` values accepted (one of them must be in the token); for JWKS tokens."""
    jwt_roles_claim: str = "roles"
    """Dotted path to the roles in a token (``realm_access.roles`` for Keycloak)."""
    jwt_max_lifetime: int | None = None
    """Seconds a token may be valid for (``exp`` - ``iat``) at most; ``None``: no limit."""
    signing_key_file: Path | None = None
    """The Ed25519 private key (PEM) the sealer signs tree heads with."""
    signing_key: str | None = None
    """The same key given inline (PEM, or its 32-byte seed in base64); in development
    mode with neither, a key kept in ``data_dir`` (docs/integrity.md)."""
    webhook_allow_private: bool = False
    """Let webhook URLs name (or resolve to) private, loopback and link-local addresses."""
    webhook_timeout: int = 10
    """Seconds a webhook receiver has to answer before the attempt counts as failed."""
    webhook_disable_after: int = 100
    """Failed webhook attempts in a row after which an endpoint is disabled."""
    webhook_retry_max: int = 600
    """The longest wait, in seconds, between two attempts to deliver one event."""

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def embedded_nats(self) -> bool:
        return self.nats_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(PREFIX + name)
            return value.strip() if value is not None and value.strip() else None

        database_url = get("DATABASE_URL")
        if database_url is not None:
            _check_url("DATABASE_URL", database_url, {"postgres", "postgresql"})
        nats_url = get("NATS_URL")
        if nats_url is not None:
            for part in nats_url.split(","):
                _check_url("NATS_URL", part.strip(), {"nats", "tls", "ws", "wss"})
        schema = get("SCHEMA") or "programledger"
        if not SCHEMA_PATTERN.match(schema):
            raise SettingsError(
                f"{PREFIX}SCHEMA={schema!r} is not a valid schema name: use lowercase "
                "letters, digits and _, up to 51 characters"
            )
        mode = get("MODE") or "development"
        if mode not in ("development", "production"):
            raise SettingsError(
                f"{PREFIX}MODE={mode!r} is not known: use 'development' or 'production'"
            )
        secret = get("JWT_SECRET")
        tokens = _token_settings(get, mode)
        if mode == "production":
            if secret is None and not (tokens["jwks_url"] or tokens["jwks_file"]):
                raise SettingsError(
                    f"{PREFIX}JWT_SECRET is required in production mode (at least 32 "
                    "characters; no default secret is accepted), unless tokens are verified "
                    f"against {PREFIX}JWKS_URL or {PREFIX}JWKS_FILE"
                )
            if secret is not None and len(secret) < 32:
                raise SettingsError(f"{PREFIX}JWT_SECRET must be at least 32 characters long")
        subject_prefix = get("SUBJECT_PREFIX") or "programledger"
        if not subject_prefix.replace("_", "").replace("-", "").isalnum():
            raise SettingsError(
                f"{PREFIX}SUBJECT_PREFIX={subject_prefix!r} must be one NATS subject token "
                "(letters, digits, - and _)"
            )
        data_dir = Path(get("DATA_DIR") or default_data_dir()).expanduser()
        log_level = (get("LOG_LEVEL") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(
                f"{PREFIX}LOG_LEVEL={log_level!r} is not one of DEBUG, INFO, WARNING, ERROR"
            )
        log_format = get("LOG_FORMAT")
        if log_format is not None:
            log_format = log_format.lower()
            if log_format not in ("json", "console"):
                raise SettingsError(
                    f"{PREFIX}LOG_FORMAT={log_format!r} is not known: use 'json' or 'console'"
                )
        stream_replicas = _number(get, "STREAM_REPLICAS", low=1, high=5) or 1
        ready_max_lag = _number(get, "READY_MAX_LAG_SECONDS", low=1, high=86_400)
        db_pool_size = _number(get, "DB_POOL_SIZE", low=2, high=500) or 10
        state_cache = _number(get, "PROJECTION_STATE_CACHE", low=1, high=10_000_000) or 5_000
        state_cache_mb = _number(get, "PROJECTION_STATE_CACHE_MB", low=1, high=100_000) or 2
        commit_interval_ms = _number(get, "PROJECTION_COMMIT_INTERVAL_MS", low=0, high=10_000)
        appends_in_flight = _number(get, "APPENDS_IN_FLIGHT", low=1, high=500) or 1
        reads_in_flight = _number(get, "READS_IN_FLIGHT", low=1, high=500) or 2
        db_connect_timeout = _number(get, "DB_CONNECT_TIMEOUT", low=1, high=300) or 5
        db_statement_timeout = _number(get, "DB_STATEMENT_TIMEOUT", low=1, high=3600) or 10
        max_waiting = _number(get, "MAX_WAITING_REQUESTS", low=1, high=100_000) or 500
        if stream_replicas > 1 and nats_url is None:
            raise SettingsError(
                f"{PREFIX}STREAM_REPLICAS={stream_replicas} needs a NATS cluster: the embedded "
                f"NATS is one server, so set {PREFIX}NATS_URL or use 1 replica"
            )
        return cls(
            database_url=database_url,
            nats_url=nats_url,
            schema=schema,
            data_dir=data_dir,
            mode=mode,  # type: ignore[arg-type]
            jwt_secret=secret,
            http_host=get("HTTP_HOST") or "127.0.0.1",
            http_port=_port(get, "HTTP_PORT", 8000, allow_zero=True) or 0,
            embedded_postgres_port=_port(get, "EMBEDDED_POSTGRES_PORT", None),
            embedded_nats_port=_port(get, "EMBEDDED_NATS_PORT", None),
            subject_prefix=subject_prefix,
            stream_replicas=stream_replicas,
            db_pool_size=db_pool_size,
            appends_in_flight=appends_in_flight,
            reads_in_flight=reads_in_flight,
            db_connect_timeout=db_connect_timeout,
            db_statement_timeout=db_statement_timeout,
            max_waiting_requests=max_waiting,
            ready_max_lag_seconds=ready_max_lag,
            projection_state_cache=state_cache,
            projection_state_cache_mb=state_cache_mb,
            projection_commit_interval_ms=200 if commit_interval_ms is None else commit_interval_ms,
            metrics_port=_port(get, "METRICS_PORT", None),
            log_level=log_level,
            log_format=log_format,  # type: ignore[arg-type]
            gc_freeze=_flag(get, "GC_FREEZE", default=True),
            gc_thresholds=_gc_thresholds(get("GC_THRESHOLDS")),
            **_webhook_settings(get),
            **_browser_settings(get, mode),
            **tokens,
            **_signing_settings(get),
        )


def _webhook_settings(get: Callable[[str], str | None]) -> dict[str, Any]:
    return {
        "webhook_allow_private": _flag(get, "WEBHOOK_ALLOW_PRIVATE", default=False),
        "webhook_timeout": _number(get, "WEBHOOK_TIMEOUT", low=1, high=300) or 10,
        "webhook_disable_after": _number(get, "WEBHOOK_DISABLE_AFTER", low=1, high=1_000_000)
        or 100,
        "webhook_retry_max": _number(get, "WEBHOOK_RETRY_MAX", low=1, high=86_400) or 600,
    }


def _browser_settings(get: Callable[[str], str | None], mode: str) -> dict[str, Any]:
    """What browsers may do: call from other origins, load GraphiQL, introspect."""
    origins = _origins(get("CORS_ORIGINS"), mode)
    introspection = _flag(get, "INTROSPECTION", default=mode != "production")
    graphiql = _flag(get, "GRAPHIQL", default=introspection)
    if graphiql and not introspection:
        raise SettingsError(
            f"{PREFIX}GRAPHIQL needs {PREFIX}INTROSPECTION: GraphiQL reads the schema by "
            "introspection"
        )
    return {"cors_origins": origins, "graphiql": graphiql, "introspection": introspection}


def _origins(raw: str | None, mode: str) -> tuple[str, ...]:
    """Exact origins as browsers send them (``scheme://host[:port]``, lowercase, no default
    port): the ``Origin`` header is compared with them as a string."""
    if raw is None:
        return ()
    name = f"{PREFIX}CORS_ORIGINS"
    origins: list[str] = []
    for part in (item.strip() for item in raw.split(",")):
        if not part:
            continue
        if part == "*":
            if mode == "production":
                raise SettingsError(
                    f"{name}: '*' (any origin) is refused in production mode; "
                    "list the origins of your frontends"
                )
            origins.append(part)
            continue
        try:
            parts = urlsplit(part)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or parts.scheme.lower() not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise SettingsError(
                f"{name}: {part!r} is not an origin; write scheme, host and optional port, "
                "like https://app.example.com or http://localhost:3000, without a path"
            )
        scheme = parts.scheme.lower()
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if port is not None and port != {"http": 80, "https": 443}[scheme]:
            host = f"{host}:{port}"
        origins.append(f"{scheme}://{host}")
    if "*" in origins and len(origins) > 1:
        raise SettingsError(f"{name}: '*' already allows every origin; give it alone")
    return tuple(dict.fromkeys(origins))


def _token_settings(get: Callable[[str], str | None], mode: str) -> dict[str, Any]:
    """Tokens from an identity provider: where its keys are and what its tokens must say."""
    jwks_url = get("JWKS_URL")
    if jwks_url is not None:
        _check_url("JWKS_URL", jwks_url, {"http", "https"})
        if mode == "production" and urlsplit(jwks_url).scheme != "https":
            raise SettingsError(
                f"{PREFIX}JWKS_URL must use https in production mode: keys fetched in the "
                "clear could be replaced on the way"
            )
    jwks_file = get("JWKS_FILE")
    if jwks_url is not None and jwks_file is not None:
        raise SettingsError(f"set {PREFIX}JWKS_URL or {PREFIX}JWKS_FILE, not both")
    if jwks_file is not None and not Path(jwks_file).expanduser().is_file():
        raise SettingsError(f"{PREFIX}JWKS_FILE={jwks_file!r} is not a readable file")
    issuer = get("JWT_ISSUER")
    audience = tuple(
        dict.fromkeys(a.strip() for a in (get("JWT_AUDIENCE") or "").split(",") if a.strip())
    )
    if mode == "production" and (jwks_url or jwks_file) and (issuer is None or not audience):
        raise SettingsError(
            f"{PREFIX}JWT_ISSUER and {PREFIX}JWT_AUDIENCE are required with a JWKS in "
            "production mode, so that tokens issued for other applications are refused"
        )
    roles_claim = get("JWT_ROLES_CLAIM") or "roles"
    if not all(part.strip() for part in roles_claim.split(".")):
        raise SettingsError(
            f"{PREFIX}JWT_ROLES_CLAIM={roles_claim!r} must be a dotted path of claim names, "
            "like roles or realm_access.roles"
        )
    max_lifetime = _duration(get, "JWT_MAX_LIFETIME")
    if max_lifetime is None and mode == "production":
        max_lifetime = _PRODUCTION_MAX_LIFETIME
    return {
        "jwks_url": jwks_url,
        "jwks_file": None if jwks_file is None else Path(jwks_file).expanduser(),
        "jwt_issuer": issuer,
        "jwt_audience": audience,
        "jwt_roles_claim": roles_claim,
        "jwt_max_lifetime": max_lifetime,
    }


_PRODUCTION_MAX_LIFETIME = 24 * 3600
"""Seconds: a day, a working session with margin; longer tokens are refused in production."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def _signing_settings(get: Callable[[str], str | None]) -> dict[str, Any]:
    key_file = get("SIGNING_KEY_FILE")
    key = get("SIGNING_KEY")
    if key_file is not None and key is not None:
        raise SettingsError(
            f"{PREFIX}SIGNING_KEY_FILE and {PREFIX}SIGNING_KEY are both set: give the key once"
        )
    return {
        "signing_key_file": Path(key_file).expanduser() if key_file else None,
        "signing_key": key,
    }


def _duration(get: Callable[[str], str | None], name: str) -> int | None:
    """Seconds in ``name``: ``3600``, ``90s``, ``30m``, ``8h`` or ``1d``."""
    raw = get(name)
    if raw is None:
        return None
    text = raw.lower()
    unit = _UNITS.get(text[-1:])
    number = text[:-1] if unit is not None else text
    if not number.isdigit():
        raise SettingsError(
            f"{PREFIX}{name}={raw!r} is not a duration: write seconds or a number with s, m, "
            "h or d (like 8h)"
        )
    seconds = int(number) * (unit or 1)
    if not 1 <= seconds <= 366 * 86_400:
        raise SettingsError(f"{PREFIX}{name}={raw!r} must be between 1 second and a year")
    return seconds


def _gc_thresholds(raw: str | None) -> tuple[int, int, int] | None:
    """``PROGRAMLEDGER_GC_THRESHOLDS``: three whole numbers, or ``python`` for CPython's."""
    if raw is None:
        return GC_THRESHOLDS
    if raw.lower() == "python":
        return None
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise SettingsError(
            f"{PREFIX}GC_THRESHOLDS={raw!r} is not three positive whole numbers: write "
            "them like 10000,20,20, or python for CPython's own (700,10,10)"
        )
    return int(parts[0]), int(parts[1]), int(parts[2])


def _flag(get: Callable[[str], str | None], name: str, *, default: bool) -> bool:
    raw = get(name)
    if raw is None:
        return default
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{PREFIX}{name}={raw!r} is not a yes/no value: use true or false")


def _check_url(name: str, url: str, schemes: set[str]) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes:
        raise SettingsError(
            f"{PREFIX}{name}={url!r} has scheme {parts.scheme or 'none'!r}; "
            f"expected one of {', '.join(sorted(schemes))}"
        )
    if not parts.hostname and "host=" not in parts.query:
        raise SettingsError(f"{PREFIX}{name}={url!r} names no host")


def _port(
    get: Callable[[str], str | None], name: str, default: int | None, *, allow_zero: bool = False
) -> int | None:
    port = _number(
        get,
        name,
        low=0 if allow_zero else 1,
        high=65535,
        noun="a port number",
        out_of_range="is impossible: a port is {low}-{high}",
    )
    return default if port is None else port


def _number(
    get: Callable[[str], str | None],
    name: str,
    *,
    low: int,
    high: int,
    noun: str = "a whole number",
    out_of_range: str = "must be between {low} and {high}",
) -> int | None:
    """The whole number in ``name`` (``None`` when unset), refused outside ``low..high``."""
    raw = get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not {noun}") from None
    if not low <= value <= high:
        refusal = out_of_range.format(low=low, high=high)
        raise SettingsError(f"{PREFIX}{name}={value} {refusal}")
    return value
