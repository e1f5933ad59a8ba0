"""Settings are validated at start, and every problem names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from programledger.settings import Settings, SettingsError

PRODUCTION_JWKS = {
    "PROGRAMLEDGER_MODE": "production",
    "PROGRAMLEDGER_JWKS_URL": "https://id.example.com/realms/pmo/certs",
    "PROGRAMLEDGER_JWT_ISSUER": "https://id.example.com/realms/pmo",
    "PROGRAMLEDGER_JWT_AUDIENCE": "programledger, programledger-ui",
}


def test_defaults_mean_embedded_development() -> None:
    settings = Settings.from_env({})
    assert settings.embedded_postgres
    assert settings.embedded_nats
    assert settings.mode == "development"
    assert settings.schema == "programledger"


def test_configured_servers() -> None:
    settings = Settings.from_env(
        {
            "PROGRAMLEDGER_DATABASE_URL": "postgresql://app@db:5432/ledger",
            "PROGRAMLEDGER_NATS_URL": "nats://n1:4222, nats://n2:4222",
            "PROGRAMLEDGER_DATA_DIR": "/srv/pl",
            "PROGRAMLEDGER_HTTP_PORT": "9000",
        }
    )
    assert not settings.embedded_postgres
    assert settings.nats_url == "nats://n1:4222, nats://n2:4222"
    assert settings.data_dir == Path("/srv/pl")
    assert settings.http_port == 9000
    assert settings.db_pool_size == 10
    assert Settings.from_env({"PROGRAMLEDGER_DB_POOL_SIZE": "40"}).db_pool_size == 40
    assert settings.projection_state_cache == 5_000
    assert settings.metrics_port is None
    tuned = Settings.from_env(
        {"PROGRAMLEDGER_PROJECTION_STATE_CACHE": "200", "PROGRAMLEDGER_METRICS_PORT": "9100"}
    )
    assert (tuned.projection_state_cache, tuned.metrics_port) == (200, 9100)
    assert settings.projection_state_cache_mb == 2
    assert (
        Settings.from_env(
            {"PROGRAMLEDGER_PROJECTION_STATE_CACHE_MB": "16"}
        ).projection_state_cache_mb
        == 16
    )
    assert settings.projection_commit_interval_ms == 200
    for raw, ms in (("0", 0), ("250", 250)):
        env = {"PROGRAMLEDGER_PROJECTION_COMMIT_INTERVAL_MS": raw}
        assert Settings.from_env(env).projection_commit_interval_ms == ms
    assert (settings.appends_in_flight, settings.reads_in_flight) == (1, 2)
    combining = Settings.from_env(
        {"PROGRAMLEDGER_APPENDS_IN_FLIGHT": "2", "PROGRAMLEDGER_READS_IN_FLIGHT": "8"}
    )
    assert (combining.appends_in_flight, combining.reads_in_flight) == (2, 8)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROGRAMLEDGER_DATABASE_URL": "mysql://db/x"}, "PROGRAMLEDGER_DATABASE_URL"),
        ({"PROGRAMLEDGER_DATABASE_URL": "postgresql://db:99999/x"}, "not a valid URL"),
        ({"PROGRAMLEDGER_DATABASE_URL": "postgresql:///x"}, "names no host"),
        ({"PROGRAMLEDGER_NATS_URL": "http://n1:4222"}, "PROGRAMLEDGER_NATS_URL"),
        ({"PROGRAMLEDGER_HTTP_PORT": "70000"}, "impossible"),
        ({"PROGRAMLEDGER_HTTP_PORT": "eighty"}, "not a port number"),
        ({"PROGRAMLEDGER_EMBEDDED_POSTGRES_PORT": "0"}, "impossible"),
        ({"PROGRAMLEDGER_MODE": "prod"}, "PROGRAMLEDGER_MODE"),
        ({"PROGRAMLEDGER_MODE": "production"}, "JWT_SECRET is required"),
        ({"PROGRAMLEDGER_MODE": "production", "PROGRAMLEDGER_JWT_SECRET": "short"}, "at least 32"),
        ({"PROGRAMLEDGER_SCHEMA": "Bad-Name"}, "PROGRAMLEDGER_SCHEMA"),
        ({"PROGRAMLEDGER_SUBJECT_PREFIX": "a.b"}, "SUBJECT_PREFIX"),
        ({"PROGRAMLEDGER_LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"PROGRAMLEDGER_DB_POOL_SIZE": "1"}, "DB_POOL_SIZE=1 must be between 2 and 500"),
        ({"PROGRAMLEDGER_DB_POOL_SIZE": "many"}, "not a whole number"),
        ({"PROGRAMLEDGER_APPENDS_IN_FLIGHT": "0"}, "APPENDS_IN_FLIGHT=0 must be between 1"),
        ({"PROGRAMLEDGER_READS_IN_FLIGHT": "x"}, "not a whole number"),
        ({"PROGRAMLEDGER_CORS_ORIGINS": "app.example.com"}, "CORS_ORIGINS: 'app.example.com' is"),
        ({"PROGRAMLEDGER_CORS_ORIGINS": "https://a.example/app"}, "without a path"),
        ({"PROGRAMLEDGER_CORS_ORIGINS": "ftp://a.example"}, "is not an origin"),
        ({"PROGRAMLEDGER_CORS_ORIGINS": "*, https://a.example"}, "give it alone"),
        (
            {
                "PROGRAMLEDGER_MODE": "production",
                "PROGRAMLEDGER_JWT_SECRET": "s" * 40,
                "PROGRAMLEDGER_CORS_ORIGINS": "*",
            },
            "refused in production mode",
        ),
        ({"PROGRAMLEDGER_GRAPHIQL": "maybe"}, "GRAPHIQL='maybe' is not a yes/no value"),
        (
            {**PRODUCTION_JWKS, "PROGRAMLEDGER_JWKS_URL": "http://id.example.com/certs"},
            "JWKS_URL must use https in production",
        ),
        (
            {"PROGRAMLEDGER_JWKS_URL": "https://id/certs", "PROGRAMLEDGER_JWKS_FILE": "/etc/j"},
            "not both",
        ),
        ({"PROGRAMLEDGER_JWKS_FILE": "/nonexistent/jwks.json"}, "not a readable file"),
        ({"PROGRAMLEDGER_JWKS_URL": "ftp://id.example.com/certs"}, "JWKS_URL"),
        (
            {**PRODUCTION_JWKS, "PROGRAMLEDGER_JWT_ISSUER": ""},
            "JWT_ISSUER and PROGRAMLEDGER_JWT_AUDIENCE are required with a JWKS",
        ),
        ({"PROGRAMLEDGER_JWT_MAX_LIFETIME": "forever"}, "not a duration"),
        ({"PROGRAMLEDGER_JWT_MAX_LIFETIME": "0"}, "between 1 second and a year"),
        ({"PROGRAMLEDGER_JWT_ROLES_CLAIM": "realm_access..roles"}, "dotted path"),
        (
            {"PROGRAMLEDGER_GRAPHIQL": "true", "PROGRAMLEDGER_INTROSPECTION": "false"},
            "GRAPHIQL needs PROGRAMLEDGER_INTROSPECTION",
        ),
        ({"PROGRAMLEDGER_PROJECTION_STATE_CACHE": "0"}, "PROJECTION_STATE_CACHE=0 must be"),
        ({"PROGRAMLEDGER_PROJECTION_STATE_CACHE_MB": "0"}, "STATE_CACHE_MB=0 must be"),
        ({"PROGRAMLEDGER_PROJECTION_COMMIT_INTERVAL_MS": "-1"}, "COMMIT_INTERVAL_MS=-1"),
        ({"PROGRAMLEDGER_PROJECTION_COMMIT_INTERVAL_MS": "0.5"}, "COMMIT_INTERVAL_MS='0.5'"),
        ({"PROGRAMLEDGER_METRICS_PORT": "99999"}, "impossible"),
        ({"PROGRAMLEDGER_GC_THRESHOLDS": "10000,20"}, "GC_THRESHOLDS='10000,20' is not three"),
        ({"PROGRAMLEDGER_GC_THRESHOLDS": "0,10,10"}, "three positive whole numbers"),
        ({"PROGRAMLEDGER_GC_FREEZE": "sometimes"}, "GC_FREEZE='sometimes' is not a yes/no"),
    ],
)
def test_bad_settings_are_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env(env)
    assert "\n" not in str(error.value)


def test_production_with_a_real_secret() -> None:
    settings = Settings.from_env(
        {
            "PROGRAMLEDGER_MODE": "production",
            "PROGRAMLEDGER_JWT_SECRET": "s" * 40,
        }
    )
    assert settings.mode == "production"


def test_cors_origins_are_kept_as_browsers_send_them() -> None:
    settings = Settings.from_env(
        {
            "PROGRAMLEDGER_CORS_ORIGINS": (
                "http://localhost:3000, HTTPS://App.Example.com:443/, https://app.example.com"
            )
        }
    )
    assert settings.cors_origins == ("http://localhost:3000", "https://app.example.com")
    assert Settings.from_env({"PROGRAMLEDGER_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    assert Settings.from_env({}).cors_origins == ()


def test_production_hides_graphiql_and_introspection_unless_enabled() -> None:
    production = {"PROGRAMLEDGER_MODE": "production", "PROGRAMLEDGER_JWT_SECRET": "s" * 40}
    hidden = Settings.from_env(production)
    shown = Settings.from_env({**production, "PROGRAMLEDGER_INTROSPECTION": "true"})
    development = Settings.from_env({})

    assert (hidden.graphiql, hidden.introspection) == (False, False)
    assert (shown.graphiql, shown.introspection) == (True, True)
    assert (development.graphiql, development.introspection) == (True, True)


def test_an_identity_provider_replaces_the_shared_secret_in_production() -> None:
    settings = Settings.from_env(PRODUCTION_JWKS)
    limited = Settings.from_env({**PRODUCTION_JWKS, "PROGRAMLEDGER_JWT_MAX_LIFETIME": "8h"})

    assert settings.jwt_secret is None
    assert settings.jwt_audience == ("programledger", "programledger-ui")
    assert settings.jwt_roles_claim == "roles"
    assert settings.jwt_max_lifetime == 86_400  # production never accepts unlimited tokens
    assert limited.jwt_max_lifetime == 8 * 3600
    assert Settings.from_env({}).jwt_max_lifetime is None


def test_the_signing_key_is_given_once() -> None:
    assert Settings.from_env({"PROGRAMLEDGER_SIGNING_KEY_FILE": "~/k.pem"}).signing_key_file == (
        Path("~/k.pem").expanduser()
    )
    with pytest.raises(SettingsError, match="both set"):
        Settings.from_env(
            {"PROGRAMLEDGER_SIGNING_KEY_FILE": "k.pem", "PROGRAMLEDGER_SIGNING_KEY": "x"}
        )


def test_garbage_collection_is_tuned_unless_told_otherwise() -> None:
    default = Settings.from_env({})
    assert (default.gc_freeze, default.gc_thresholds) == (True, (10_000, 20, 20))
    python = Settings.from_env(
        {"PROGRAMLEDGER_GC_FREEZE": "false", "PROGRAMLEDGER_GC_THRESHOLDS": "Python"}
    )
    assert (python.gc_freeze, python.gc_thresholds) == (False, None)
    tuned = Settings.from_env({"PROGRAMLEDGER_GC_THRESHOLDS": " 5000, 10 ,30"})
    assert tuned.gc_thresholds == (5000, 10, 30)
