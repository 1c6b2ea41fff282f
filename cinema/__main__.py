"""The command line: `python -m cinema serve | migrate | seed | reindex | storage | token | settings` (`--help`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from cinema.settings import Settings, SettingsError

if TYPE_CHECKING:
    from cinema.search.reindex import ReindexReport


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cinema", description="The cinema catalog service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the HTTP service (and its actors)")
    serve.add_argument("--host", help="address to listen on (CINEMA_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (CINEMA_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="processes sharing the port (CINEMA_WORKERS, default 1)")
    commands.add_parser("migrate", help="apply pending database migrations, then exit")
    seed = commands.add_parser(
        "seed",
        help="fill the database with a generated catalog (no events)",
        description=SEED_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seed.add_argument("--movies", type=_positive, required=True, metavar="N", help="how many movies")
    seed.add_argument("--persons", type=_positive, metavar="M", help="how many persons (default 2*N, at least 10)")
    seed.add_argument("--seed", type=int, default=1, metavar="S", help="the random seed (default 1)")
    seed.add_argument(
        "--replace", action="store_true", help="delete the whole catalog and the event log first, then seed"
    )
    commands.add_parser(
        "reindex", help="rebuild the search index from PostgreSQL and swap it in (searches keep answering)"
    )
    commands.add_parser(
        "new-catalog-id",
        help="give the catalog a new id after restoring a backup (caches, indices, ETags, cursors start afresh)",
    )
    storage = commands.add_parser("storage", help="object storage maintenance")
    storage_commands = storage.add_subparsers(dest="storage_command", required=True, metavar="STORAGE_COMMAND")
    storage_commands.add_parser(
        "sweep",
        help="delete stored images that no row refers to, older than CINEMA_STORAGE_SWEEP_GRACE",
    )
    commands.add_parser("settings", help="print the effective settings (secrets redacted)")
    token = commands.add_parser("token", help="print a token signed with CINEMA_JWT_SECRET")
    token.add_argument("--subject", default="cli", help="the token's `sub` claim (default: cli)")
    token.add_argument("--ttl", type=_positive, default=3600, help="seconds until it expires (default: 3600)")
    token.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="a scope to grant, repeatable or space-separated (default: catalog:write; catalog:admin for bulk)",
    )
    return parser


SEED_DESCRIPTION = """\
Apply pending migrations, then write a realistic catalog straight into the database:
genres, countries, persons, movies with their genres, countries and credits.
The same --seed writes the same rows. A catalog that already has rows is left alone
(exit status 1) unless --replace is given, which deletes every catalog row and the
event log first: for development and benchmark databases, never a real catalog.

Seeding writes no outbox events: a seeded catalog is a starting state, not a
history, so nothing is published and the change feed starts after it. It gives
the catalog a new id, so nothing cached, indexed, tagged or followed before it
carries over (stop the service first: a running one keeps the id it started with).
The database is CINEMA_DATABASE_URL, or the embedded one in CINEMA_DATA_DIR."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    if args.command == "token":
        scopes = tuple(dict.fromkeys(s for given in args.scope or ["catalog:write"] for s in given.split()))
        return _token(settings, args.subject, args.ttl, scopes)
    if args.command == "seed":
        return _seed(settings, args)
    if args.command == "reindex":
        return _reindex(settings)
    if args.command == "new-catalog-id":
        return _new_catalog_id(settings)
    if args.command == "storage":
        return _sweep(settings)
    print(settings)
    return 0


def _token(settings: Settings, subject: str, ttl: int, scopes: tuple[str, ...]) -> int:
    from cinema.http.auth import TokenVerifier

    if settings.jwt_secret is None:
        print("cinema: set CINEMA_JWT_SECRET first (tokens are signed with it)", file=sys.stderr)
        return 2
    verifier = TokenVerifier(settings.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    print(verifier.issue(subject, ttl, scopes))
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


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from cinema.db.embedded import embedded_postgres
    from cinema.db.migrate import apply_migrations
    from cinema.logs import configure_logging
    from cinema.seed import MIN_PERSONS, CatalogNotEmpty, seed

    if args.persons is not None and args.persons < MIN_PERSONS:
        print(f"cinema seed: --persons must be at least {MIN_PERSONS}", file=sys.stderr)
        return 2
    configure_logging(settings)
    with contextlib.ExitStack() as stack:
        dsn = settings.database_url or stack.enter_context(embedded_postgres(settings.data_dir))
        apply_migrations(dsn)
        try:
            asyncio.run(seed(dsn, args.movies, args.persons, args.seed, args.replace))
        except CatalogNotEmpty as exc:
            print(f"cinema seed: {exc}", file=sys.stderr)
            return 1
    return 0


async def _reindex_with(settings: Settings, dsn: str) -> ReindexReport:
    from cinema.db.catalog import get_catalog_id
    from cinema.db.pool import create_pool
    from cinema.search.configured import open_backend
    from cinema.search.reindex import reindex

    async with create_pool(dsn, 4) as pool:
        async with pool.acquire() as conn:
            catalog_id = await get_catalog_id(conn)
        backend = open_backend(settings, pool, catalog_id)
        try:
            return await reindex(pool, backend)
        finally:
            await backend.close()


def _new_catalog_id(settings: Settings) -> int:
    import asyncio

    import asyncpg

    from cinema.db.catalog import get_catalog_id, renew_catalog_id
    from cinema.db.embedded import embedded_postgres

    async def renew(dsn: str) -> tuple[str, str]:
        conn = await asyncpg.connect(dsn)
        try:
            old = await get_catalog_id(conn)
            return str(old), str(await renew_catalog_id(conn, old))
        finally:
            await conn.close()

    with contextlib.ExitStack() as stack:
        dsn = settings.database_url or stack.enter_context(embedded_postgres(settings.data_dir))
        old, new = asyncio.run(renew(dsn))
    print(f"catalog {old} is now {new}: restart the service")
    return 0


def _reindex(settings: Settings) -> int:
    import asyncio

    from cinema.db.embedded import embedded_postgres
    from cinema.logs import configure_logging
    from cinema.search.reindex import ReindexRunning

    configure_logging(settings)
    with contextlib.ExitStack() as stack:
        dsn = settings.database_url or stack.enter_context(embedded_postgres(settings.data_dir))
        try:
            report = asyncio.run(_reindex_with(settings, dsn))
        except ReindexRunning as exc:
            print(f"cinema: {exc}", file=sys.stderr)
            return 1
    print(
        f"reindexed {report.backend}: {report.documents} documents as of event {report.seq},"
        f" caught up through event {report.replayed_through}, in {report.seconds:g} s"
    )
    return 0


def _sweep(settings: Settings) -> int:
    import asyncio

    from cinema.actors.uploader import sweep_command
    from cinema.db.embedded import embedded_postgres
    from cinema.logs import configure_logging

    configure_logging(settings)
    with contextlib.ExitStack() as stack:
        dsn = settings.database_url or stack.enter_context(embedded_postgres(settings.data_dir))
        report = asyncio.run(sweep_command(settings, dsn))
    if report.skipped:
        print("cinema: another process is sweeping the storage right now", file=sys.stderr)
        return 1
    print(f"deleted {report.objects} objects and {report.spools} spool files, kept {report.kept} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
