"""Every `web.AppKey` of the application, in one place."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web

from cinema.actors.cache import CacheActor
from cinema.actors.catalog import CatalogActor
from cinema.actors.indexer import IndexerActor
from cinema.actors.system import ActorSystem
from cinema.actors.uploader import UploaderActor
from cinema.bus.amqp import Broker
from cinema.bus.commands import CommandConsumer
from cinema.bus.local import LocalBus
from cinema.bus.relay import OutboxRelay
from cinema.bus.remote import RemoteEvents
from cinema.cache.shared import SharedStore
from cinema.etags import Tagged
from cinema.http.auth import TokenVerifier
from cinema.http.ratelimit import RateLimiter
from cinema.metrics import RouteMetrics
from cinema.search.backend import SearchBackend
from cinema.search.live import Clients, LiveSearch
from cinema.settings import Settings
from cinema.storage import Storage

SETTINGS = web.AppKey("settings", Settings)
DSN = web.AppKey("dsn", str)
POOL = web.AppKey("pool", asyncpg.Pool)
# Names everything kept outside the database: Redis keys, search indices, ETags, feed cursors.
CATALOG_ID = web.AppKey("catalog_id", uuid.UUID)
BUS = web.AppKey("bus", LocalBus)
ACTORS = web.AppKey("actors", ActorSystem)
CATALOG = web.AppKey("catalog", CatalogActor)
MIGRATIONS = web.AppKey("migrations", tuple)  # ids of the migrations this code expects
ORIGIN = web.AppKey("origin", str)  # this app instance's name in commit notifications
REMOTE_EVENTS = web.AppKey("remote_events", RemoteEvents)
OPENAPI = web.AppKey("openapi", Tagged)  # the OpenAPI document, generated at start-up
CACHE = web.AppKey("cache", CacheActor)  # absent when CINEMA_CACHE_ENABLED is off
SHARED_CACHE = web.AppKey("shared_cache", SharedStore)  # absent without CINEMA_REDIS_URL
# Present only when CINEMA_AMQP_URL is set.
BROKER = web.AppKey("broker", Broker)
RELAY = web.AppKey("relay", OutboxRelay)
COMMAND_CONSUMER = web.AppKey("command_consumer", CommandConsumer)
INDEXER = web.AppKey("indexer", IndexerActor)
SEARCH_BACKEND = web.AppKey("search_backend", SearchBackend)
LIVE_SEARCH = web.AppKey("live_search", LiveSearch)
STREAM_CLIENTS = web.AppKey("stream_clients", Clients)
# Each route's counters, for GET /metrics; absent when CINEMA_METRICS is off.
ROUTE_METRICS = web.AppKey("route_metrics", list[RouteMetrics])
STORAGE = web.AppKey("storage", Storage)  # S3 or local files
UPLOADER = web.AppKey("uploader", UploaderActor)
VERIFIER = web.AppKey("verifier", TokenVerifier)  # absent when no token key is configured (or CINEMA_AUTH=off)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)  # absent when every budget is 0
