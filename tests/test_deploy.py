"""deploy/: no Docker engine here, so the compose file is checked by reading it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cinema.settings import ENV_NAMES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def test_the_stack_has_the_database_a_migrate_job_and_the_service(compose):
    assert {"postgres", "migrate", "cinema"} <= set(compose["services"])


def test_every_image_is_pinned(compose):
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert ":" in image, f"{name}: image without a tag"
        assert not image.endswith(":latest"), f"{name}: unpinned image"


def test_the_build_context_and_dockerfile_exist(compose):
    build = compose["services"]["migrate"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()
    dockerfile = (context / build["dockerfile"]).read_text()
    for path in ("pyproject.toml", "constraints.txt", "cinema", "migrations"):
        assert path in dockerfile, f"the image does not copy {path}"
        assert (ROOT / path).exists()


def test_every_cinema_variable_is_a_real_setting(compose):
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("CINEMA_"):
                assert variable in ENV_NAMES, f"{name}: {variable} is not a setting"


def test_services_start_in_dependency_order(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["cinema"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["cinema"]["environment"]["CINEMA_MIGRATE_ON_START"] == "false"
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["cinema"]


def test_the_service_database_url_points_at_the_compose_database(compose):
    url = compose["services"]["cinema"]["environment"]["CINEMA_DATABASE_URL"]
    postgres = compose["services"]["postgres"]["environment"]
    expected = f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/"
    assert url == expected + postgres["POSTGRES_DB"]
    assert compose["services"]["cinema"]["ports"] == ["8080:8080"]


def test_the_service_reaches_the_compose_rabbitmq(compose):
    url = compose["services"]["cinema"]["environment"]["CINEMA_AMQP_URL"]
    rabbitmq = compose["services"]["rabbitmq"]["environment"]
    assert url == f"amqp://{rabbitmq['RABBITMQ_DEFAULT_USER']}:{rabbitmq['RABBITMQ_DEFAULT_PASS']}@rabbitmq:5672/"


def test_the_service_uses_the_compose_cache_and_search(compose):
    services = compose["services"]
    environment = services["cinema"]["environment"]
    assert environment["CINEMA_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["CINEMA_ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
    assert services["cinema"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["cinema"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    # The Python client of the pinned major version only talks to servers of the same major.
    assert services["elasticsearch"]["image"].rsplit(":", 1)[1].startswith("9.")
    for name in ("redis", "elasticsearch"):
        assert "healthcheck" in services[name]
    named = {volume.split(":")[0] for s in services.values() for volume in s.get("volumes", [])}
    assert named <= set(compose["volumes"])
