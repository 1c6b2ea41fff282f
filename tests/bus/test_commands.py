"""Commands from other systems through a real RabbitMQ: applied once, answered, dead-lettered with a
reason when they can never succeed, held and retried when the database cannot take them now."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue
from yarl import URL

from cinema.app import create_app
from cinema.bus.amqp import Broker, Topology
from cinema.bus.commands import COMMANDS, CommandConsumer
from cinema.db import genres
from cinema.db.commands import Upsert
from cinema.errors import Unavailable
from cinema.http.keys import CATALOG
from cinema.models import GenreCreate
from tests.bus.conftest import events_queue, running, take
from tests.conftest import eventually
from tests.db.test_commands import FILM_UPSERT
from tests.faults.proxy import Proxy


@pytest.fixture
async def service(aiohttp_client, amqp_settings, db):
    """The whole service, consuming commands from the test's queue."""
    client = await aiohttp_client(create_app(amqp_settings))
    await running(client.app)
    return client


@pytest.fixture
async def start_consumer(client, amqp_server, topology):
    """A consumer with a registry of the test's choosing, in front of a service without RabbitMQ."""
    started = []

    async def start(commands=COMMANDS, prefetch=64, url=amqp_server):
        broker = Broker(url)
        broker.start()
        consumer = CommandConsumer(
            broker, client.app[CATALOG], topology, prefetch=prefetch, commands=commands, backoff=(0.01, 0.05)
        )
        started.append((consumer, broker))
        consumer.start()
        await asyncio.wait_for(consumer.consuming.wait(), 20)
        return consumer

    yield start
    for consumer, broker in started:
        await consumer.stop()
        await broker.stop()


async def send(
    channel: AbstractChannel,
    topology: Topology,
    command: str,
    body: object,
    *,
    message_id: str | None = None,
    **properties: object,
) -> str:
    """Publish a command the way another system would; returns its message id."""
    message_id = message_id or uuid.uuid4().hex
    exchange = await channel.get_exchange(topology.commands)
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    message = aio_pika.Message(payload, message_id=message_id, content_type="application/json", **properties)  # type: ignore[arg-type]
    await exchange.publish(message, routing_key=command)
    return message_id


async def reply_queue(channel: AbstractChannel) -> AbstractQueue:
    return await channel.declare_queue(exclusive=True)


def genre_upsert(external_id: str, name: str, **data: object) -> dict:
    return {"source": "imdb", "external_id": external_id, "data": {"name": name, **data}}


async def test_a_command_creates_a_genre_and_its_redelivery_does_not_create_another(service, amqp, topology, db):
    events = await events_queue(amqp, topology)
    replies = await reply_queue(amqp)
    message_id = await send(amqp, topology, "genre.upsert", genre_upsert("g1", "Drama"))
    [event] = await take(events, 1)
    body = json.loads(event.body)
    assert (body["type"], body["data"]["name"]) == ("genre.created", "Drama")
    genre = await (await service.get(f"/api/v1/genres/{body['entity_id']}")).json()
    assert genre == {"id": body["entity_id"], "slug": "drama", "name": "Drama"}

    # The same message again (a redelivery after a lost acknowledgement, or a resend).
    await send(amqp, topology, "genre.upsert", genre_upsert("g1", "Drama"), message_id=message_id,
               reply_to=replies.name, correlation_id="again")  # fmt: skip
    [reply] = await take(replies, 1)
    assert reply.correlation_id == "again"
    assert json.loads(reply.body) == {"ok": True, "entity_id": genre["id"]}
    assert await db.fetchval("SELECT count(*) FROM genres") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1


async def test_an_rpc_command_gets_its_reply(service, amqp, topology, db):
    replies = await reply_queue(amqp)
    await send(amqp, topology, "genre.upsert", genre_upsert("g1", "Drama"), reply_to=replies.name, correlation_id="c1")
    await send(amqp, topology, "genre.upsert", genre_upsert("g2", "X"), reply_to=replies.name, correlation_id="c2")
    answers = {m.correlation_id: json.loads(m.body) for m in await take(replies, 2)}
    genre_id = await db.fetchval("SELECT id FROM genres")
    assert answers["c1"] == {"ok": True, "entity_id": genre_id}
    assert answers["c2"] == {
        "ok": False,
        "problem": {
            "type": "/problems/validation-failed",
            "title": "Validation failed",
            "status": 422,
            "detail": "The body has invalid fields.",
            "errors": [{"field": "data.name", "message": "must be at least 2 characters long"}],
        },
    }


async def test_commands_for_one_entity_apply_in_the_order_they_were_sent(service, amqp, topology, db):
    events = await events_queue(amqp, topology)
    for version in range(100):
        await send(amqp, topology, "genre.upsert", genre_upsert("g1", f"Drama v{version}"))
    names = [json.loads(m.body)["data"]["name"] for m in await take(events, 100)]
    assert names == [f"Drama v{version}" for version in range(100)]
    assert await db.fetchval("SELECT name FROM genres") == "Drama v99"


async def test_commands_that_can_never_succeed_are_dead_lettered_with_the_reason(start_consumer, amqp, topology, db):
    await db.execute("INSERT INTO genres (slug, name) VALUES ('drama', 'Drama')")
    consumer = await start_consumer({**COMMANDS, "movie.upsert": FILM_UPSERT})
    missing = [{"source": "imdb", "external_id": "nope"}]
    film = {"source": "imdb", "external_id": "tt1", "data": {"title": "Heat", "genres": missing}}
    cases = [
        ("genre.upsert", b"{not json", "bad-request: The body is not valid JSON"),
        (
            "genre.frobnicate",
            genre_upsert("g1", "Drama"),
            "bad-request: Unknown command 'genre.frobnicate' (the routing key); known: country.upsert, genre.upsert,"
            " movie.delete, movie.upsert, person.delete, person.upsert.",
        ),
        (
            "genre.upsert",
            {"source": "imdb", "data": {}},
            "validation-failed: The body has invalid fields. (external_id: is required)",
        ),
        (
            "genre.upsert",
            genre_upsert("g2", "Comedy", colour="red"),
            "validation-failed: The body has invalid fields. (data.colour: unknown field)",
        ),
        (
            "movie.upsert",
            film,
            "conflict: The command refers to entities that do not exist."
            " (data.genres[0]: no genre has the external id imdb/nope)",
        ),
        (
            "genre.upsert",
            genre_upsert("g3", "drama"),
            "conflict: A genre named 'drama' already exists. (name: a genre named 'drama' already exists)",
        ),
        (
            "genre.upsert",
            genre_upsert("g5", "Dra\x00ma"),
            "validation-failed: The body has invalid fields. (data.name: must not contain the NUL character (U+0000))",
        ),
        (
            "genre.upsert",
            genre_upsert("g\x006", "Noir"),
            "validation-failed: The body has invalid fields. (external_id: must not contain the NUL character",
        ),
    ]
    sent = {}
    for command, body, why in cases:
        sent[await send(amqp, topology, command, body, headers={"sender": "test"})] = (command, body, why)
    # A message id PostgreSQL cannot store (it records every applied one): this was a command_failed bug.
    nul_id = "m-\x00"
    await send(
        amqp, topology, "genre.upsert", genre_upsert("g7", "Heist"), message_id=nul_id, headers={"sender": "test"}
    )
    sent[nul_id] = ("genre.upsert", genre_upsert("g7", "Heist"), "bad-request: The message_id cannot be stored.")
    dead = await amqp.declare_queue(topology.dead, durable=True)
    letters = {m.message_id: m for m in await take(dead, len(sent))}
    assert set(letters) == set(sent)
    for message_id, (command, body, why) in sent.items():
        letter = letters[message_id]
        assert letter.headers["x-cinema-error"].startswith(why)
        # The message as it was sent, with the reason added.
        assert letter.routing_key == command
        assert letter.body == (body if isinstance(body, bytes) else orjson.dumps(body))
        assert letter.headers["sender"] == "test"
        assert letter.content_type == "application/json"
        assert letter.delivery_mode == aio_pika.DeliveryMode.PERSISTENT

    # And the consumer carried on.
    await send(amqp, topology, "genre.upsert", genre_upsert("g4", "Western"))
    await eventually(lambda: consumer.applied == 1)
    assert await db.fetchval("SELECT count(*) FROM genres") == 2
    assert consumer.rejected == 9


async def test_a_database_that_cannot_take_a_command_now_delays_it_and_loses_nothing(
    start_consumer, amqp, topology, db
):
    attempts = 0

    async def insert_when_the_database_is_back(conn, items):
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise Unavailable("The database is not reachable right now; retry shortly.")
        return await genres.insert_genres(conn, items)

    flaky = Upsert("genre", GenreCreate, insert_when_the_database_is_back, genres.replace_genre)
    consumer = await start_consumer({"genre.upsert": flaky})
    replies = await reply_queue(amqp)
    await send(amqp, topology, "genre.upsert", genre_upsert("g1", "Drama"), reply_to=replies.name)
    [reply] = await take(replies, 1)
    assert json.loads(reply.body)["ok"] is True
    assert attempts == 4
    assert await db.fetchval("SELECT count(*) FROM genres") == 1
    dead = await amqp.declare_queue(topology.dead, durable=True)
    assert dead.declaration_result.message_count == 0
    assert consumer.rejected == 0


async def test_commands_sent_while_the_service_is_away_are_applied_when_it_is_back(start_consumer, amqp, topology, db):
    consumer = await start_consumer()
    await consumer.stop()  # a service that is down: commands wait in the durable queue
    for n in range(20):
        await send(amqp, topology, "genre.upsert", genre_upsert(f"g{n}", f"Genre {n}"))
    await start_consumer()
    await eventually(lambda: db.fetchval("SELECT count(*) = 20 FROM genres"))
    assert await db.fetchval("SELECT count(*) FROM processed_commands") == 20


async def test_a_command_that_meets_a_bug_is_dead_lettered_and_the_others_apply(start_consumer, amqp, topology, db):
    async def insert_unless_boom(conn, items):
        if any(item.name == "Boom" for item in items):
            raise RuntimeError("a bug")
        return await genres.insert_genres(conn, items)

    await start_consumer({"genre.upsert": Upsert("genre", GenreCreate, insert_unless_boom, genres.replace_genre)})
    replies = await reply_queue(amqp)
    for n, name in enumerate(["Drama", "Boom", "Comedy"]):
        await send(
            amqp, topology, "genre.upsert", genre_upsert(f"g{n}", name), reply_to=replies.name, correlation_id=name
        )
    answers = {m.correlation_id: json.loads(m.body) for m in await take(replies, 3)}
    assert (answers["Drama"]["ok"], answers["Comedy"]["ok"]) == (True, True)
    assert answers["Boom"]["problem"]["type"] == "/problems/internal-error"
    [letter] = await take(await amqp.declare_queue(topology.dead, durable=True), 1)
    assert letter.headers["x-cinema-error"].startswith("internal-error: Applying the command failed unexpectedly")
    assert await db.fetchval("SELECT array_agg(name ORDER BY name) FROM genres") == ["Comedy", "Drama"]


async def test_each_command_applies_once_through_a_cut_connection(start_consumer, amqp_server, amqp, topology, db):
    broker = URL(amqp_server)
    proxy = await Proxy(broker.host or "127.0.0.1", broker.port or 5672).start()
    try:
        consumer = await start_consumer(prefetch=16, url=str(broker.with_port(proxy.port)))
        for n in range(300):
            await send(amqp, topology, "genre.upsert", genre_upsert(f"g{n}", f"Genre {n}"))
            if n in (100, 200):
                # Deliveries not yet acknowledged come again on the next connection.
                connections = n // 100
                await eventually(lambda: consumer.applied > 0 and proxy.connections == connections)  # noqa: B023
                proxy.cut()
        await eventually(lambda: db.fetchval("SELECT count(*) = 300 FROM processed_commands"), timeout=30)
        assert await db.fetchval("SELECT count(*) FROM genres") == 300
        assert await db.fetchval("SELECT count(*) FROM outbox") == 300
        assert proxy.connections >= 3
    finally:
        await proxy.close()


async def test_every_kind_of_command_through_the_broker(service, amqp, topology, db):
    """country, person, genre and movie upserts referring to each other by external id, then deletes."""
    replies = await reply_queue(amqp)

    async def command(name, body, correlation_id):
        await send(amqp, topology, name, body, reply_to=replies.name, correlation_id=correlation_id)
        [reply] = await take(replies, 1)
        assert reply.correlation_id == correlation_id
        return json.loads(reply.body)

    def ref(external_id):
        return {"source": "imdb", "external_id": external_id}

    assert (await command("country.upsert", {**ref("fr"), "data": {"code": "FR", "name": "France"}}, "c"))["ok"]
    assert (await command("genre.upsert", genre_upsert("g1", "Drama"), "g"))["ok"]
    assert (await command("person.upsert", {**ref("nm1"), "data": {"full_name": "Jean Gabin"}}, "p"))["ok"]
    movie = {
        **ref("tt1"),
        "data": {
            "title": "Le Jour se lève",
            "release_year": 1939,
            "genres": [ref("g1")],
            "countries": [ref("fr")],
            "credits": [{"person": ref("nm1"), "role": "actor", "character": "François"}],
        },
    }
    created = await command("movie.upsert", movie, "m1")
    assert created["ok"]
    detail = await (await service.get(f"/api/v1/movies/{created['entity_id']}")).json()
    assert [g["name"] for g in detail["genres"]] == ["Drama"]
    assert [c["code"] for c in detail["countries"]] == ["FR"]
    assert detail["credits"][0]["person"]["full_name"] == "Jean Gabin"

    # The same key again replaces the movie's fields as the source knows them.
    movie["data"] = {**movie["data"], "title": "Daybreak", "genres": []}
    replaced = await command("movie.upsert", movie, "m2")
    assert replaced == created
    detail = await (await service.get(f"/api/v1/movies/{created['entity_id']}")).json()
    assert (detail["title"], detail["genres"]) == ("Daybreak", [])

    # A person with credits cannot go; once the movie is gone, they can.
    refused = await command("person.delete", ref("nm1"), "d1")
    assert refused["ok"] is False
    assert refused["problem"]["status"] == 409
    assert (await command("movie.delete", ref("tt1"), "d2"))["ok"]
    assert (await service.get(f"/api/v1/movies/{created['entity_id']}")).status == 404
    assert (await command("person.delete", ref("nm1"), "d3"))["ok"]
    assert await db.fetchval("SELECT count(*) FROM persons") == 0
    assert await db.fetchval("SELECT count(*) FROM external_ids WHERE kind IN ('movie', 'person')") == 0
