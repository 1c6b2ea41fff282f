"""The command line: `python -m cinema serve | migrate | reindex | settings` (`--help` lists them)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

import attrs

from cinema.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cinema", description="The cinema catalog service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the HTTP service (and its actors)")
    serve.add_argument("--host", help="address to listen on (CINEMA_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (CINEMA_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="processes sharing the port (CINEMA_WORKERS, default 1)")
    commands.add_parser("migrate", help="apply pending database migrations, then exit")
    commands.add_parser(
        "reindex", help="rebuild the search index from PostgreSQL and swap it in (searches keep answering)"
    )
    commands.add_parser("settings", help="print the effective settings (secrets redacted)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        if args.command == "serve":
            overrides = {k: getattr(args, k) for k in ("host", "port", "workers") if getattr(args, k) is not None}
            settings = attrs.evolve(settings, **overrides)
    except SettingsError as exc:
        print(f"cinema: configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command == "serve":
        from cinema.serve import serve

        return serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "reindex":
        return _reindex(settings)
    print(settings)
    return 0


def _migrate(settings: Settings) -> int:
    from cinema.db.embedded import embedded_postgres
    from cinema.db.migrate import apply_migrations
    from cinema.logs import configure_logging

    configure_logging(settings)
    with contextlib.ExitStack() as stack:
        dsn = settings.database_url or stack.enter_context(embedded_postgres(settings.data_dir))
        apply_migrations(dsn)
    return 0


def _reindex(settings: Settings) -> int:
    import asyncio

    from cinema.db.embedded import embedded_postgres
    from cinema.logs import configure_logging
    from cinema.search.reindex import ReindexRunning, reindex_command

    configure_logging(settings)
    with contextlib.ExitStack() as stack:
        dsn = settings.database_url or stack.enter_context(embedded_postgres(settings.data_dir))
        try:
            report = asyncio.run(reindex_command(settings, dsn))
        except ReindexRunning as exc:
            print(f"cinema: {exc}", file=sys.stderr)
            return 1
    print(
        f"reindexed {report.backend}: {report.documents} documents as of event {report.seq},"
        f" caught up through event {report.replayed_through}, in {report.seconds:g} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
