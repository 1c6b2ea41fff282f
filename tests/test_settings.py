"""Settings: read from CINEMA_* once, validated with messages that name the variable."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from cinema.settings import ENV_NAMES, Settings, SettingsError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_need_no_configuration():
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8080, 1)
    assert settings.database_url is None  # embedded PostgreSQL


def test_values_are_parsed_by_type():
    settings = Settings.from_env(
        {
            "CINEMA_PORT": "9000",
            "CINEMA_MIGRATE_ON_START": "false",
            "CINEMA_ASK_TIMEOUT": "2.5",
            "CINEMA_DATA_DIR": "/var/lib/cinema",
            "CINEMA_DATABASE_URL": "postgresql://cinema:pw@db:5432/cinema",
            "CINEMA_LOG_FORMAT": "json",
        }
    )
    assert settings.port == 9000
    assert settings.migrate_on_start is False
    assert settings.ask_timeout == 2.5
    assert settings.data_dir == Path("/var/lib/cinema")
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CINEMA_PORT": "eighty"}, "CINEMA_PORT: expected an integer, got 'eighty'"),
        ({"CINEMA_PORT": "70000"}, "CINEMA_PORT: must be between 0 and 65535"),
        ({"CINEMA_MIGRATE_ON_START": "maybe"}, "CINEMA_MIGRATE_ON_START: expected true or false"),
        ({"CINEMA_LOG_LEVEL": "loud"}, "CINEMA_LOG_LEVEL: must be one of debug, info, warning, error"),
        ({"CINEMA_DATABASE_URL": "mysql://x/y"}, "CINEMA_DATABASE_URL: must be a postgresql:// URL"),
        ({"CINEMA_PROT": "80"}, "CINEMA_PROT: unknown setting"),
        ({"CINEMA_AMQP_URL": "http://rabbit/"}, "CINEMA_AMQP_URL: must be an amqp:// or amqps:// URL"),
        ({"CINEMA_AMQP_PREFIX": "a b"}, "CINEMA_AMQP_PREFIX: must be 1 to 100 of"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_test_only_variables_are_not_settings():
    Settings.from_env({"CINEMA_TEST_DATABASE_URL": "postgresql://x/y", "CINEMA_REQUIRE_SERVICES": "1"})


def test_the_database_password_is_redacted_when_printed():
    settings = Settings(database_url="postgresql://cinema:hunter2@db/cinema")
    assert "hunter2" not in repr(settings)
    assert "postgresql://cinema:***@db/cinema" in repr(settings)


def test_the_broker_password_is_redacted_when_printed():
    settings = Settings(amqp_url="amqp://cinema:hunter2@rabbit:5672/")
    assert "hunter2" not in repr(settings)
    assert "amqp://cinema:***@rabbit:5672/" in repr(settings)


def test_every_setting_is_in_the_readme_table_with_its_default():
    table = README.read_text()
    for field in attrs.fields(Settings):
        name = "CINEMA_" + field.name.upper()
        row = next((line for line in table.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"{name} is missing from the README configuration table"
    assert len(ENV_NAMES) == len(attrs.fields(Settings))


def test_cache_settings_are_parsed_and_checked():
    settings = Settings.from_env(
        {
            "CINEMA_REDIS_URL": "redis://:hunter2@cache:6379/2",
            "CINEMA_CACHE_TTLS": "genre=30, genres=5.5",
            "CINEMA_CACHE_ENTRIES": "0",
        }
    )
    assert settings.cache_ttls == "genre=30, genres=5.5"
    assert settings.cache_entries == 0
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CINEMA_REDIS_URL": "http://cache:6379"}, "CINEMA_REDIS_URL: must be a redis://, rediss:// or unix:// URL"),
        ({"CINEMA_CACHE_TTLS": "film=30"}, "CINEMA_CACHE_TTLS: unknown cache kind 'film'"),
        ({"CINEMA_CACHE_TTLS": "genre"}, "CINEMA_CACHE_TTLS: expected kind=seconds, got 'genre'"),
        ({"CINEMA_CACHE_TTLS": "genre=0"}, "CINEMA_CACHE_TTLS: the TTL of 'genre' must be between 1 and 604800"),
        ({"CINEMA_REDIS_TIMEOUT": "0"}, "CINEMA_REDIS_TIMEOUT: must be between 0.001 and 10"),
    ],
)
def test_bad_cache_settings_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_every_cache_kind_has_its_default_ttl_in_the_readme():
    from cinema.cache.kinds import KINDS

    text = README.read_text()
    for kind in KINDS.values():
        assert f"| `{kind.name}` | {kind.ttl:g} |" in text, f"cache kind {kind.name} is missing from the README"
