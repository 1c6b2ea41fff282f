"""deploy/: no Docker engine here, so the compose file and the provisioning files are checked by
reading them, and the scrape configuration and the dashboard's queries against a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from cinema.settings import ENV_NAMES
from tests.conftest import service_unavailable
from tests.http.test_metrics import FAMILIES
from tests.test_serve import consecutive_free_ports, free_port, serving, wait_ready

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "cinema.json"


def load(relative: str) -> dict:
    return yaml.safe_load((DEPLOY / relative).read_text())


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
    sources = {volume.split(":")[0] for s in services.values() for volume in s.get("volumes", [])}
    named = {source for source in sources if not source.startswith((".", "/"))}  # not bind mounts
    assert named <= set(compose["volumes"])


def cinema_env(compose: dict) -> dict[str, str]:
    return compose["services"]["cinema"]["environment"]


def workers(compose: dict) -> int:
    command = compose["services"]["cinema"]["command"]
    count = int(command[command.index("--workers") + 1])
    assert cinema_env(compose)["CINEMA_WORKERS"] == str(count)
    return count


def test_the_whole_observability_stack_is_there(compose):
    wanted = {"minio", "minio-bucket", "prometheus", "grafana", "loki", "promtail", "tempo", "redis", "elasticsearch"}
    assert wanted <= set(compose["services"])
    assert workers(compose) >= 2


def test_every_dependency_waits_for_a_condition_the_dependency_can_meet(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on a missing {dependency}"
            condition = how["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s missing health check"
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} is not a one-shot job"
            else:
                assert condition == "service_started"


def test_every_mounted_file_exists(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts the missing {source}"


# Ports the images listen on by default, or as their configuration file says.
def listening_ports() -> dict[str, set[int]]:
    loki, tempo = load("loki/loki.yml"), load("tempo/tempo.yml")
    receivers = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    return {
        "postgres": {5432},
        "rabbitmq": {5672, 15672},
        "redis": {6379},
        "elasticsearch": {9200},
        "minio": {9000, 9001},
        "prometheus": {9090},
        "loki": {loki["server"]["http_listen_port"]},
        "tempo": {
            tempo["server"]["http_listen_port"],
            *(int(p["endpoint"].rsplit(":", 1)[1]) for p in receivers.values()),
        },
    }


def started_before(compose: dict, name: str) -> set[str]:
    """The services `name` waits for, directly or through another one."""
    found: set[str] = set()
    pending = list(compose["services"][name].get("depends_on", {}))
    while pending:
        dependency = pending.pop()
        if dependency not in found:
            found.add(dependency)
            pending += list(compose["services"][dependency].get("depends_on", {}))
    return found


def test_every_service_the_app_reaches_exists_at_that_host_and_port(compose):
    environment = cinema_env(compose)
    ports = listening_ports()
    urls = [
        environment["CINEMA_DATABASE_URL"],
        environment["CINEMA_AMQP_URL"],
        environment["CINEMA_REDIS_URL"],
        environment["CINEMA_ELASTICSEARCH_URL"],
        environment["CINEMA_S3_ENDPOINT_URL"],
        environment["OTEL_EXPORTER_OTLP_ENDPOINT"],
    ]
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname in compose["services"], f"{url}: no such service"
        assert parts.port in ports[parts.hostname], f"{url}: {parts.hostname} does not listen on {parts.port}"
        assert parts.hostname in started_before(compose, "cinema"), f"cinema does not wait for {parts.hostname}"
    # Traces go over OTLP/HTTP, the one protocol installed (4318, not gRPC's 4317).
    assert urlsplit(environment["OTEL_EXPORTER_OTLP_ENDPOINT"]).port == 4318


def test_the_bucket_job_creates_the_bucket_the_service_uses(compose):
    job = compose["services"]["minio-bucket"]
    environment, minio = cinema_env(compose), compose["services"]["minio"]["environment"]
    assert job["environment"]["BUCKET"] == environment["CINEMA_S3_BUCKET"] == "cinema"
    assert "mc mb --ignore-existing" in " ".join(job["entrypoint"])
    assert environment["CINEMA_S3_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"] == job["environment"]["MINIO_ROOT_USER"]
    assert environment["CINEMA_S3_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert compose["services"]["cinema"]["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"


def test_the_prometheus_targets_are_each_workers_metrics_endpoint(compose):
    [job] = [j for j in load("prometheus/prometheus.yml")["scrape_configs"] if j["job_name"] == "cinema"]
    assert job["metrics_path"] == "/metrics"
    [targets] = [group["targets"] for group in job["static_configs"]]
    base = int(cinema_env(compose)["CINEMA_METRICS_PORT"])
    assert targets == [f"cinema:{base + i}" for i in range(workers(compose))]
    assert {str(base + i) for i in range(workers(compose))} <= set(compose["services"]["cinema"]["expose"])


def test_grafana_and_promtail_reach_the_stack():
    sources = {d["uid"]: d for d in load("grafana/provisioning/datasources/datasources.yml")["datasources"]}
    ports = listening_ports()
    assert {d["type"] for d in sources.values()} == {"prometheus", "loki", "tempo"}
    for source in sources.values():
        parts = urlsplit(source["url"])
        assert parts.port in ports[parts.hostname], source["url"]
    # A log line's trace id leads to Tempo, and a trace back to its lines in Loki.
    [derived] = sources["loki"]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == "tempo"
    line = json.dumps({"event": "http_request", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, separators=(",", ":"))
    assert re.search(derived["matcherRegex"], line).group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert sources["tempo"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    promtail = load("promtail/promtail.yml")
    [client] = promtail["clients"]
    parts = urlsplit(client["url"])
    assert parts.port in ports[parts.hostname]
    provider = load("grafana/provisioning/dashboards/dashboards.yml")["providers"][0]
    mounts = dict(v.split(":")[:2] for v in yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels if p["datasource"]["type"] == "prometheus" for t in p["targets"]]


def exported_series(family: str) -> set[str]:
    if FAMILIES[family] == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    return {family}


def test_the_dashboard_queries_name_metrics_the_service_exports():
    series = {name for family in FAMILIES for name in exported_series(family)}
    queries = dashboard_queries()
    for query in queries:
        named = set(re.findall(r"\bcinema_[a-z_]+\b", query))
        assert named, f"names no metric: {query}"
        assert named <= series, f"not exported: {named - series}"
    panels = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    for wanted in ("Request rate", "Latency percentiles", "Error rate", "Actor mailboxes", "Actor restarts",
                   "Cache hit ratio", "Outbox backlog", "Indexer lag"):  # fmt: skip
        assert any(title.startswith(wanted) for title in panels), wanted
    loki = [
        t["expr"]
        for p in json.loads(DASHBOARD.read_text())["panels"]
        if p["datasource"]["type"] == "loki"
        for t in p["targets"]
    ]
    assert loki
    assert all('service="cinema"' in query for query in loki)


def test_the_image_is_built_in_stages_and_runs_unprivileged():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .+$", dockerfile, re.M)
    assert len(stages) >= 2
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    [user] = re.findall(r"^USER (\S+)$", final, re.M)
    assert user not in ("root", "0")
    assert "COPY --from=build" in final


# -- against a real Prometheus -------------------------------------------------------------


def prometheus_api(port: int, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}{query}", timeout=10) as resp:
        answer = json.loads(resp.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def eventually_sync(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.2)


def test_a_real_prometheus_scrapes_every_worker_and_runs_every_dashboard_query(compose, database_url, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        service_unavailable("prometheus is not installed (apt-get install -y prometheus)")
    count = workers(compose)
    base = consecutive_free_ports(count)
    # The compose scrape configuration, with each worker at 127.0.0.1 instead of the compose host.
    config = load("prometheus/prometheus.yml")
    config["global"]["scrape_interval"] = "1s"
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "cinema"]
    for group in job["static_configs"]:
        group["targets"] = [t.replace("cinema:", "127.0.0.1:").replace(str(int(t.rsplit(":", 1)[1])), str(base + i))
                            for i, t in enumerate(group["targets"])]  # fmt: skip
    config["scrape_configs"] = [job]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    env = {"CINEMA_METRICS_PORT": str(base)}
    with (
        serving(database_url, tmp_path / "service.log", "--workers", str(count), env=env) as (service, service_port),
        (tmp_path / "prometheus.log").open("wb") as log,
        subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT) as prometheus,
    ):
        try:
            wait_ready(service_port, service)
            for _ in range(30):  # traffic: reads, a write, a miss
                urllib.request.urlopen(f"http://127.0.0.1:{service_port}/api/v1/genres", timeout=5).close()

            def all_up() -> bool:
                active = prometheus_api(port, "targets")["activeTargets"]
                return len(active) == count and all(t["health"] == "up" for t in active)

            eventually_sync(all_up)

            # Two scrapes of each target at least, so that rates have two points.
            def scraped_twice() -> bool:
                counts = prometheus_api(port, "query", query="count_over_time(up[1m])")["result"]
                return len(counts) == count and min(float(r["value"][1]) for r in counts) >= 2

            eventually_sync(scraped_twice)
            scraped = set(prometheus_api(port, "label/__name__/values"))
            wanted = {name for family in FAMILIES for name in exported_series(family)}
            # Families with no series yet (no RabbitMQ here) have no name in Prometheus either.
            assert {"cinema_http_requests_total", "cinema_actor_mailbox_messages", "cinema_cache_hits_total"} <= scraped
            assert scraped & wanted == {n for n in scraped if n.startswith("cinema_")}
            total = prometheus_api(port, "query", query='sum(cinema_http_requests_total{route="/api/v1/genres"})')
            assert float(total["result"][0]["value"][1]) == 30  # both workers' counts, summed
            for query in dashboard_queries():
                expr = query.replace("$__rate_interval", "1m").replace("$__range", "5m")
                prometheus_api(port, "query", query=expr)  # parses and runs
            rate = prometheus_api(port, "query", query=dashboard_queries()[0].replace("$__rate_interval", "1m"))
            assert rate["result"], "the request rate panel shows nothing"
        finally:
            prometheus.terminate()
            prometheus.wait(10)
