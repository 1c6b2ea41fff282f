"""The benchmark harness: seed, serve, load each endpoint with wrk, compare with baselines.

See bench/README.md. In short: a database (`--database-url`, `CINEMA_DATABASE_URL`, or a
dedicated `cinema_bench` database on `--server`) is seeded with `cinema seed` and indexed
with `cinema reindex`; the service runs as in production (`cinema serve --workers <cores>`,
JSON logs to a file); wrk drives each endpoint at fixed connections and duration; then the
two baselines of
bench/baselines.py run under the same load. The results are printed as a table with the
ratios against the baselines and their targets, and written to bench/results/<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.baselines import die_with_parent
from bench.common import UNLIMITED, free_port, with_database
from cinema.settings import redact_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "wrk.lua"
DEDICATED_DATABASE = "cinema_bench"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# The constant baseline's body when no movie detail can be fetched to size it.
FALLBACK_BODY_SIZE = 2048
FETCH_BASELINE = "baseline_fetch"
CONSTANT_BASELINE = "baseline_constant"


@dataclass(frozen=True)
class Endpoint:
    """One thing to load. `{id}` in the path becomes a random seeded movie id per request."""

    name: str
    path: str
    # The least acceptable requests/s as a fraction of the single-fetch baseline's.
    target: float | None = None
    note: str = ""

    def example(self, ids: tuple[int, int]) -> str:
        """The path with the first movie id: what the first, checking request asks for."""
        return self.path.replace("{id}", str(ids[0]))


# The service's endpoints, in the order they run. Add a row to benchmark another one;
# an endpoint that does not answer 2xx to a first request is reported as skipped.
ENDPOINTS = (
    Endpoint("movie_detail", "/api/v1/movies/{id}", target=0.40, note="uncached"),
    Endpoint("movie_list_20", "/api/v1/movies?limit=20", target=0.30),
    Endpoint("genres_list", "/api/v1/genres"),
)
BASELINES = (
    Endpoint(CONSTANT_BASELINE, "/", note="constant body, size of a movie detail"),
    Endpoint(FETCH_BASELINE, "/movies/{id}", note="one asyncpg single-row fetch"),
)


class HarnessError(Exception):
    """The benchmark cannot go on; the message says why."""


@dataclass
class Run:
    name: str
    kind: str  # "service" or "baseline"
    path: str
    requests_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    bytes: int = 0
    rounds: list[float] = field(default_factory=list)  # requests/s of each round
    skipped: str | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


# -- processes -----------------------------------------------------------------------


@contextmanager
def child(name: str, command: Sequence[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running child in its own process group, output to `log_path`; stopped on exit.

    Stopping sends SIGTERM to the child (a supervisor then stops its workers gracefully),
    waits, then SIGKILLs whatever is left of the group. The child also gets SIGTERM from
    Linux if the harness dies without cleaning up.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the harness, which stops it in order
            preexec_fn=die_with_parent,
        )
        try:
            yield process
        finally:
            _stop(name, process)


def _stop(name: str, process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {grace:.0f} s; killing it", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # workers left behind, if any
    process.wait()


def wait_until_serving(name: str, process: subprocess.Popen[bytes], log_path: Path, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 90
    while not ready():
        if process.poll() is not None:
            raise HarnessError(f"{name} exited with status {process.returncode}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise HarnessError(f"{name} was not ready after 90 s:\n{_tail(log_path)}")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _occurrences(path: Path, needle: str) -> int:
    return path.read_text(errors="replace").count(needle)


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def shown(dsn: str) -> str:
    """The DSN without its password, for output."""
    return redact_url(dsn).strip("'")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The harness's environment without its CINEMA_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINEMA_")}
    return env | extra


# -- database ------------------------------------------------------------------------


def prepare_database(args: argparse.Namespace, run_dir: Path) -> str:
    """The DSN to benchmark against, seeded as the flags ask."""
    given = args.database_url or os.environ.get("CINEMA_DATABASE_URL")
    if given:
        dsn, replace = given, args.reseed
    else:
        dsn, replace = _dedicated_database(args.server), True
    if args.no_seed:
        return dsn
    movies = _movie_count(dsn)
    if movies and not replace:
        print(f"using the existing catalog of {shown(dsn)} ({movies} movies); --reseed replaces it")
        return dsn
    command = [sys.executable, "-m", "cinema", "seed", "--movies", str(args.movies), "--seed", str(args.seed)]
    if args.persons:
        command += ["--persons", str(args.persons)]
    if replace:
        command.append("--replace")
    print(f"seeding {shown(dsn)}: {args.movies} movies, seed {args.seed}")
    started = time.monotonic()
    with (run_dir / "seed.log").open("wb") as log:
        # stderr stays the harness's: the progress bar shows on a terminal.
        env = child_env({"CINEMA_DATABASE_URL": dsn})
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=log, check=False, preexec_fn=die_with_parent)
    if done.returncode != 0:
        raise HarnessError(f"cinema seed failed (status {done.returncode}):\n{_tail(run_dir / 'seed.log')}")
    print(f"seeded in {time.monotonic() - started:.1f} s")
    # Index the catalog now: else the service's indexer builds the index at start-up, while the
    # first endpoint is under load (it cut the first run's requests/s by two thirds).
    with (run_dir / "seed.log").open("ab") as log:
        command = [sys.executable, "-m", "cinema", "reindex"]
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=log, check=False, preexec_fn=die_with_parent)
    if done.returncode != 0:
        raise HarnessError(f"cinema reindex failed (status {done.returncode}):\n{_tail(run_dir / 'seed.log')}")
    return dsn


def _dedicated_database(server: str) -> str:
    with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEDICATED_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DEDICATED_DATABASE}"')
    return with_database(server, DEDICATED_DATABASE)


def _movie_count(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        if conn.execute("SELECT to_regclass('movies')").fetchone() == (None,):
            return 0
        row = conn.execute("SELECT count(*) FROM movies").fetchone()
        return int(row[0]) if row else 0


def movie_ids(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT min(id), max(id) FROM movies").fetchone()
    if not row or row[0] is None:
        raise HarnessError("the database has no movies to ask for")
    return int(row[0]), int(row[1])


# -- load ----------------------------------------------------------------------------


def wrk(args: argparse.Namespace, base: str, endpoint: Endpoint, ids: tuple[int, int], seconds: int) -> dict[str, Any]:
    """Run wrk once against `endpoint`; its summary as printed by wrk.lua."""
    command = [
        "wrk",
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={seconds}s",
        f"--timeout={args.timeout}s",
        f"--script={LUA}",
        base + endpoint.example(ids),
    ]
    env = os.environ | {"BENCH_PATH": endpoint.path, "BENCH_ID_MIN": str(ids[0]), "BENCH_ID_MAX": str(ids[1])}
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        preexec_fn=die_with_parent,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if done.returncode != 0 or not lines:
        raise HarnessError(f"wrk failed (status {done.returncode}):\n{done.stdout}{done.stderr}")
    return dict(json.loads(lines[-1].removeprefix("BENCH_JSON ")))


@dataclass(frozen=True)
class Target:
    """An endpoint of a running server."""

    endpoint: Endpoint
    kind: str  # "service" or "baseline"
    base: str  # http://127.0.0.1:PORT


def start_service(stack: ExitStack, args: argparse.Namespace, dsn: str, run_dir: Path) -> str:
    """`cinema serve` as in production, ready when every worker serves; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # One load generator is one client: rate limiting would measure the limiter, so it is off.
    settings = {"CINEMA_DATABASE_URL": dsn, "CINEMA_LOG_FORMAT": "json", "CINEMA_LOG_LEVEL": "info"}
    env = child_env({**settings, **UNLIMITED, **args.service_env})
    command = [sys.executable, "-m", "cinema", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(args.workers)]
    log_path = run_dir / "service.log"
    print(f"service: {args.workers} workers on {base}, logs in {log_path}")
    process = stack.enter_context(child("the service", command, env, log_path))

    def ready() -> bool:
        every_worker = _occurrences(log_path, '"event":"serving"') >= int(args.workers)
        return every_worker and http_get(base + "/health/ready")[0] == 200

    wait_until_serving("the service", process, log_path, ready)
    return base


def start_baseline(
    stack: ExitStack, args: argparse.Namespace, endpoint: Endpoint, options: list[str], run_dir: Path
) -> str:
    port = free_port()
    kind = endpoint.name.removeprefix("baseline_")
    command = [sys.executable, "-m", "bench.baselines", kind, "--port", str(port), "--workers", str(args.workers)]
    log_path = run_dir / f"{endpoint.name}.log"
    process = stack.enter_context(child(endpoint.name, command + options, child_env({}), log_path))
    wait_until_serving(
        endpoint.name,
        process,
        log_path,
        lambda: _occurrences(log_path, '"event": "listening"') >= int(args.workers),
    )
    return f"http://127.0.0.1:{port}"


def measure(args: argparse.Namespace, targets: Sequence[Target], ids: tuple[int, int], run_dir: Path) -> list[Run]:
    """Load each target in turn, `--rounds` times over; a run's numbers are its rounds' medians.

    Every server is up for the whole measurement and only the one under load is busy, so
    the service and the baselines are measured alternately, minutes apart at most, and
    drifting background load affects them alike.
    """
    runs = [Run(t.endpoint.name, t.kind, t.endpoint.path) for t in targets]
    active: list[tuple[Target, Run]] = []
    for target, run in zip(targets, runs, strict=True):
        status, _ = http_get(target.base + target.endpoint.example(ids))
        if 200 <= status < 300:
            active.append((target, run))
        else:
            run.skipped = f"GET {target.endpoint.example(ids)} answered {status or 'nothing'}"
            print(f"  {run.name:<20} skipped: {run.skipped}")
    summaries: dict[str, list[dict[str, Any]]] = {run.name: [] for _, run in active}
    for round_number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"round {round_number} of {args.rounds}")
        for target, run in active:
            if args.warmup > 0:
                wrk(args, target.base, target.endpoint, ids, args.warmup)
            summary = wrk(args, target.base, target.endpoint, ids, args.duration)
            summaries[run.name].append(summary)
            errors = sum(summary["errors"].values())
            print(
                f"  {run.name:<20} {_per_second(summary):>10.0f} req/s"
                f"  p99 {summary['latency_us']['p99'] / 1000:.1f} ms" + (f", {errors} errors" if errors else "")
            )
    for _, run in active:
        _combine(run, summaries[run.name])
    (run_dir / "wrk.json").write_text(json.dumps(summaries, indent=2))
    return runs


def _per_second(summary: dict[str, Any]) -> float:
    return float(summary["requests"]) / float(summary["duration_us"]) * 1e6


def _combine(run: Run, summaries: list[dict[str, Any]]) -> None:
    run.rounds = [round(_per_second(s), 1) for s in summaries]
    run.requests_per_s = round(statistics.median(run.rounds), 1)
    keys = [k for k in summaries[0]["latency_us"] if k != "stdev"]
    run.latency_ms = {k: round(statistics.median(s["latency_us"][k] for s in summaries) / 1000, 2) for k in keys}
    run.errors = {k: sum(s["errors"][k] for s in summaries) for k in summaries[0]["errors"]}
    run.requests = sum(s["requests"] for s in summaries)
    run.bytes = sum(s["bytes"] for s in summaries)


def _selected(args: argparse.Namespace, endpoint: Endpoint) -> bool:
    return not args.only or endpoint.name in args.only


# -- report --------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not measured
    detail: str


def checks(runs: list[Run], endpoints: Sequence[Endpoint]) -> list[Check]:
    """The targets of `endpoints` (those run, or skipped) and the error check of every run."""
    by_name = {r.name: r for r in runs if r.skipped is None}
    fetch = by_name.get(FETCH_BASELINE)
    found = []
    for endpoint in endpoints:
        if endpoint.target is None:
            continue
        name = f"{endpoint.name} >= {endpoint.target:.0%} of {FETCH_BASELINE}"
        run = by_name.get(endpoint.name)
        if run is None or fetch is None:
            missing = endpoint.name if run is None else FETCH_BASELINE
            found.append(Check(name, None, f"not measured ({missing})"))
            continue
        ratio = run.requests_per_s / fetch.requests_per_s
        found.append(Check(name, ratio >= endpoint.target, f"{ratio:.1%}"))
    measured = [r for r in runs if r.skipped is None]
    failing = [f"{r.name}: {r.errors}" for r in measured if r.error_count]
    found.append(Check("zero non-2xx and socket errors", not failing, "; ".join(failing) or "none"))
    return found


def print_report(runs: list[Run], found: list[Check]) -> None:
    by_name = {r.name: r for r in runs if r.skipped is None}
    header = f"{'run':<20} {'path':<26} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}"
    header += f" {'vs fetch':>9} {'vs const':>9}"
    print()
    print(header)
    print("-" * len(header))
    for run in runs:
        if run.skipped is not None:
            print(f"{run.name:<20} {run.path:<26} skipped: {run.skipped}")
            continue
        lat = run.latency_ms
        line = f"{run.name:<20} {run.path:<26} {run.requests_per_s:>9.0f} {lat['p50']:>8.2f} {lat['p90']:>8.2f}"
        line += f" {lat['p99']:>8.2f} {run.error_count:>7}"
        for baseline in (FETCH_BASELINE, CONSTANT_BASELINE):
            base = by_name.get(baseline)
            line += f" {run.requests_per_s / base.requests_per_s:>9.0%}" if base else f" {'':>9}"
        print(line)
    print()
    for check in found:
        verdict = {True: "ok  ", False: "FAIL", None: "n/a "}[check.passed]
        print(f"{verdict} {check.name}: {check.detail}")


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wrk": wrk_version.splitlines()[0] if wrk_version else "",
    }


def git_commit() -> dict[str, Any]:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


# -- main ----------------------------------------------------------------------------


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("CINEMA_"):
        raise argparse.ArgumentTypeError(f"expected CINEMA_NAME=VALUE, got {text!r}")
    return key, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    db = p.add_argument_group("database")
    db.add_argument("--database-url", help="database to use (default: $CINEMA_DATABASE_URL, else a dedicated one)")
    db.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help=f"server for the dedicated `{DEDICATED_DATABASE}` database, reseeded on every run (default %(default)s)",
    )
    db.add_argument("--movies", type=int, default=10_000, help="movies to seed (default %(default)s)")
    db.add_argument("--persons", type=int, help="persons to seed (default: twice the movies)")
    db.add_argument("--seed", type=int, default=1, help="seed for `cinema seed` (default %(default)s)")
    db.add_argument("--reseed", action="store_true", help="replace the catalog of --database-url (destroys it)")
    db.add_argument("--no-seed", action="store_true", help="use the database as it is")
    load = p.add_argument_group("load")
    load.add_argument("--connections", type=int, default=32, help="wrk connections (default %(default)s)")
    load.add_argument("--threads", type=int, default=2, help="wrk threads (default %(default)s)")
    load.add_argument("--duration", type=int, default=10, help="seconds measured per run (default %(default)s)")
    load.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load first (default %(default)s)")
    load.add_argument(
        "--rounds", type=int, default=1, help="times every run is repeated, medians reported (default %(default)s)"
    )
    load.add_argument("--timeout", type=int, default=5, help="wrk's request timeout in seconds (default %(default)s)")
    load.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="service and baseline processes")
    names = [e.name for e in (*ENDPOINTS, *BASELINES)]
    load.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=f"runs to do: {', '.join(names)}")
    load.add_argument(
        "--service-env",
        type=_key_value,
        action="append",
        default=[],
        metavar="CINEMA_NAME=VALUE",
        help="a setting for the service (repeatable), e.g. to turn a cache off",
    )
    load.add_argument("--body-size", type=int, help="constant baseline body in bytes (default: a movie detail's)")
    p.add_argument("--results", type=Path, default=BENCH / "results", help="where results go (default bench/results)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in order with stderr
    args.service_env = dict(args.service_env)
    if shutil.which("wrk") is None:
        print(
            "bench: wrk is not installed; it drives the load. On Debian or Ubuntu: apt-get install -y wrk",
            file=sys.stderr,
        )
        return 2
    # SIGTERM unwinds like Ctrl-C, so the children are stopped either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = args.results / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, stamp, run_dir)
    except HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started is stopped", file=sys.stderr)
        return 130


def _bench(args: argparse.Namespace, stamp: str, run_dir: Path) -> int:
    started = time.time()
    load_before = os.getloadavg()
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        print(f"note: the machine is busy (load average {load_before[0]:.1f}); expect low, noisy numbers")
    dsn = prepare_database(args, run_dir)
    ids = movie_ids(dsn)
    with ExitStack() as stack:
        targets: list[Target] = []
        size = 0
        if any(_selected(args, e) for e in ENDPOINTS):
            base = start_service(stack, args, dsn, run_dir)
            targets += [Target(e, "service", base) for e in ENDPOINTS if _selected(args, e)]
            status, body = http_get(f"{base}/api/v1/movies/{ids[0]}")
            size = len(body) if status == 200 else 0
        body_size = args.body_size or size or FALLBACK_BODY_SIZE
        if not (args.body_size or size):
            print(f"  (no movie detail to size the constant baseline: {FALLBACK_BODY_SIZE} bytes instead)")
        options = {CONSTANT_BASELINE: ["--size", str(body_size)], FETCH_BASELINE: ["--dsn", dsn]}
        for baseline in BASELINES:
            if _selected(args, baseline):
                print(f"{baseline.name}: {args.workers} workers")
                base = start_baseline(stack, args, baseline, options[baseline.name], run_dir)
                targets.append(Target(baseline, "baseline", base))
        runs = measure(args, targets, ids, run_dir)
    found = checks(runs, [e for e in ENDPOINTS if _selected(args, e)])
    print_report(runs, found)
    passed = all(check.passed for check in found)
    result = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine() | {"load_average_before": load_before, "load_average_after": os.getloadavg()},
        "git": git_commit(),
        "settings": {
            "database": shown(dsn),
            "movies": _movie_count(dsn),
            "movie_ids": list(ids),
            "seed": args.seed,
            "workers": args.workers,
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "timeout_s": args.timeout,
            "constant_body_bytes": body_size,
            "service_env": args.service_env,
        },
        "runs": [asdict(run) for run in runs],
        "checks": [asdict(check) for check in found],
        "passed": passed,
    }
    out = args.results / f"{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0 if passed else 1
