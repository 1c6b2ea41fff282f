"""`python -m cinema serve`: the real command, one process or several sharing a port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

from cinema.app import create_app
from cinema.settings import Settings
from tests.conftest import embedded_data_dir
from tests.prometheus import Samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the service exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError("the service did not become ready")


@contextlib.contextmanager
def serving(
    database_url: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CINEMA_", "OTEL_", "SENTRY_"))}
    env |= {"CINEMA_DATABASE_URL": database_url, "CINEMA_LOG_FORMAT": "json", "CINEMA_SHUTDOWN_TIMEOUT": "5"}
    env |= extra
    with (
        log.open("wb") as out,
        subprocess.Popen(
            [sys.executable, "-m", "cinema", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            yield process, port
        finally:
            if process.poll() is None:
                process.kill()


def workers(process: subprocess.Popen[bytes]) -> set[int]:
    # multiprocessing's spawn also starts a resource tracker; workers run cinema's code.
    pids = set()
    for child in psutil.Process(process.pid).children():
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                pids.add(child.pid)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue  # a dead worker not yet reaped by the parent
    return pids


def test_single_process_serves_and_stops_cleanly_on_sigterm(database_url, tmp_path):
    with serving(database_url, tmp_path / "log") as (process, port):
        wait_ready(port, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/genres") as resp:
            assert resp.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    lines = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert "serving" in [line["event"] for line in lines]
    [access] = [line for line in lines if line["event"] == "http_request" and line["path"] == "/api/v1/genres"]
    assert access["method"] == "GET"
    assert access["status"] == 200
    assert access["level"] == "info"
    assert access["logger"] == "cinema.http"
    assert len(access["request_id"]) == 32
    assert access["ts"].endswith("Z")
    assert access["duration_ms"] >= 0


def test_workers_share_the_port_and_a_dead_worker_is_replaced(database_url, tmp_path):
    with serving(database_url, tmp_path / "log", "--workers", "2") as (process, port):
        wait_ready(port, process)
        first = workers(process)
        assert len(first) == 2
        victim = next(iter(first))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (victim in workers(process) or len(workers(process)) < 2):
            time.sleep(0.1)
        assert victim not in workers(process)
        assert len(workers(process)) == 2
        wait_ready(port, process)
        remaining = workers(process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in remaining)


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 (worker i's metrics port is base + i)."""
    for _ in range(50):
        base = free_port()
        with contextlib.ExitStack() as stack:
            try:
                for i in range(1, count):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", base + i))
            except OSError:
                continue
        return base
    raise AssertionError("no consecutive free ports")


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return Samples(resp.read().decode())


def test_two_workers_each_serve_their_metrics_which_add_up_to_the_traffic(database_url, tmp_path):
    base = consecutive_free_ports(2)
    args = ("--workers", "2")
    with serving(database_url, tmp_path / "log", *args, env={"CINEMA_METRICS_PORT": str(base)}) as (process, port):
        wait_ready(port, process)
        for metrics_port in (base, base + 1):  # each worker's own port, once it listens
            deadline = time.monotonic() + 30
            while True:
                try:
                    scrape(metrics_port)
                    break
                except (urllib.error.URLError, ConnectionError):
                    assert time.monotonic() < deadline, f"nothing serves metrics on {metrics_port}"
                    time.sleep(0.1)
        requests = 40
        for _ in range(requests):  # a connection each: the kernel spreads them over the workers
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as resp:
                assert resp.status == 200
        counts = [
            scrape(p).get("cinema_http_requests_total", route="/health/live", status=200) or 0 for p in (base, base + 1)
        ]
        assert sum(counts) == requests
        assert all(counts), counts  # two processes, each counting its own (40 all to one: 2**-39)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_a_bad_setting_exits_2_naming_the_variable():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")} | {"CINEMA_WORKERS": "many"}
    result = subprocess.run([sys.executable, "-m", "cinema", "serve"], env=env, capture_output=True, timeout=30)
    assert result.returncode == 2
    assert b"CINEMA_WORKERS: expected an integer" in result.stderr


def test_tracing_asked_of_a_protocol_not_installed_exits_2_naming_the_variable(database_url, tmp_path):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with serving(database_url, tmp_path / "log", env=env) as (process, _):
        assert process.wait(timeout=30) == 2
    [line] = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert line["event"] == "tracing_misconfigured"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in line["error"]


async def test_without_a_database_url_the_app_runs_on_embedded_postgres(aiohttp_client):
    with embedded_data_dir() as data_dir:
        client = await aiohttp_client(create_app(Settings(database_url=None, data_dir=data_dir)))
        resp = await client.get("/health/ready")
        assert resp.status == 200
        created = await client.post("/api/v1/genres", json={"name": "Drama"})
        assert created.status == 201
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        await client.close()
