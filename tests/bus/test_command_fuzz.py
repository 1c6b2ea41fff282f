"""Random command bodies never crash or stall the consumer: each is answered or dead-lettered,
and the consumer keeps consuming (a good command sent after them is applied)."""

from __future__ import annotations

import asyncio
import json
import random

import orjson

from cinema.http.keys import CATALOG, COMMAND_CONSUMER
from tests.bus.conftest import take
from tests.bus.test_commands import genre_upsert, reply_queue, send, service  # noqa: F401  (a fixture)

ROUTING_KEYS = ["movie.upsert", "movie.delete", "person.upsert", "person.delete", "genre.upsert", "country.upsert",
                "nothing.here", ""]  # fmt: skip
VALUES = [None, True, -1, 0, 2**70, 1.5, "", "x" * 300, "\u0000", [], {}, [1, "a"], {"source": None}]


def random_body(rng: random.Random) -> bytes:
    shape = rng.randrange(5)
    if shape == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
    if shape == 1:
        return json.dumps(rng.choice(VALUES)).encode()
    data = {
        key: rng.choice(VALUES)
        for key in rng.sample(
            ["name", "title", "code", "full_name", "genre_ids", "credits", "release_year", "slug", "genres"], 4
        )
    }
    body = {"source": rng.choice(["imdb", "", None, 7]), "external_id": rng.choice(["tt1", "", None, ["x"]]),
            "data": data if shape < 4 else rng.choice(VALUES)}  # fmt: skip
    return json.dumps(body).encode()


async def test_random_command_bodies_are_answered_and_never_stall_the_consumer(service, amqp, topology, db):  # noqa: F811
    rng = random.Random(7)
    replies = await reply_queue(amqp)
    count = 60
    for i in range(count):
        await send(amqp, topology, rng.choice(ROUTING_KEYS), random_body(rng), reply_to=replies.name,
                   correlation_id=f"junk-{i}")  # fmt: skip
    # Then a good command: answered only once the consumer got past every one of those.
    await send(amqp, topology, "genre.upsert", genre_upsert("fuzz-after", "After The Junk"), reply_to=replies.name,
               correlation_id="good")  # fmt: skip
    answers = {}
    async with asyncio.timeout(60):
        while "good" not in answers:
            for message in await take(replies, 1):
                answers[message.correlation_id] = orjson.loads(message.body)
    assert answers["good"]["ok"] is True
    assert all(not a["ok"] and a["problem"]["status"] < 500 for key, a in answers.items() if key != "good"), answers
    assert await db.fetchval("SELECT name FROM genres WHERE id = $1", answers["good"]["entity_id"]) == "After The Junk"
    consumer = service.app[COMMAND_CONSUMER]
    assert consumer.rejected >= len(answers) - 1 > 0
    assert consumer.consuming.is_set()
    assert service.app[CATALOG].stats().restarts == 0
