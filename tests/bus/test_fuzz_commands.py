"""Property-based fuzzing of the RabbitMQ command consumer (tests/fuzz.py says how).

Any routing key, body, message id, headers and properties, in batches, through a real broker
to the whole service. Every message must end applied or dead-lettered with a documented reason
(never an internal error), its reply (when it asked for one) a documented problem, and the
consumer must go on consuming on the same channel: then a normal command still applies.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from typing import Any

import aio_pika
import pytest
import pytest_asyncio
import structlog
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from cinema.app import create_app
from cinema.bus.amqp import Topology
from cinema.bus.commands import COMMANDS
from cinema.http.keys import ACTORS, COMMAND_CONSUMER
from cinema.http.problems import PROBLEM_JSON
from tests import fuzz
from tests.bus.conftest import running, take
from tests.conftest import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Events of a consumer that lost its channel, or met a bug.
TROUBLE = {"command_consumer_interrupted", "command_consumer_failed", "commands_isolated", "command_failed"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(database_url, amqp_server, topologies, tmp_path_factory):
    """The whole service consuming the module's own command queue, and a channel to the broker."""
    topology = Topology(f"cinema-fuzz-{secrets.token_hex(4)}")
    topologies.append(topology)
    data_dir = tmp_path_factory.mktemp("fuzz-bus")
    settings = fuzz.module_settings(
        database_url, data_dir, amqp_url=amqp_server, amqp_prefix=topology.prefix, relay_poll_interval=0.05
    )
    async with TestClient(TestServer(create_app(settings))) as client, await aio_pika.connect(amqp_server) as amqp:
        await running(client.app)
        channel = await amqp.channel()
        exchange = await channel.get_exchange(topology.commands)
        dead = await channel.declare_queue(topology.dead, durable=True)
        replies = await channel.declare_queue(exclusive=True)
        yield {"app": client.app, "exchange": exchange, "dead": dead, "replies": replies}


def _short(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """AMQP short strings: at most 255 bytes of UTF-8."""
    return strategy.filter(lambda value: len(value.encode()) <= 255)


SHORT = _short(fuzz.text(surrogates=False, huge=False))
FIELDS = st.sampled_from(["name", "slug", "code", "full_name", "title", "genre_ids", "genres", "credits", "person"])
BODIES = st.one_of(
    st.fixed_dictionaries(
        {
            "source": st.one_of(st.just("fuzz"), fuzz.json_values(huge=False)),
            "external_id": st.one_of(st.sampled_from(["e1", "e2", "e3"]), fuzz.json_values(huge=False)),
        },
        optional={"data": st.one_of(st.dictionaries(FIELDS, fuzz.json_values(), max_size=4), fuzz.json_values(FIELDS))},
    ),
    fuzz.json_values(st.sampled_from(["source", "external_id", "data"])),
).flatmap(fuzz.json_bytes) | st.binary(max_size=100)
HEADER_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False, width=32),  # AMQP floats are 32 bits
    SHORT,
    st.lists(st.integers(0, 100), max_size=3),
    st.dictionaries(SHORT, st.integers(0, 9), max_size=2),
)
MESSAGES = st.fixed_dictionaries(
    {
        "routing_key": st.one_of(st.sampled_from(sorted(COMMANDS)), SHORT),
        "body": BODIES,
        "message_id": st.one_of(st.none(), st.uuids().map(str), SHORT),
        "reply": st.sampled_from(["ours", "nobody's", None]),
    },
    optional={
        "headers": st.dictionaries(SHORT, HEADER_VALUES, max_size=4),
        "content_type": st.one_of(st.just("application/json"), SHORT),
        "correlation_id": SHORT,
        "priority": st.integers(0, 255),
        "type": SHORT,
        "app_id": SHORT,
        "timestamp": st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1)),
    },
)


@fuzz.fuzz_settings(examples=150)
@given(messages=st.lists(MESSAGES, min_size=1, max_size=5))
async def test_any_command_is_applied_or_dead_lettered_as_documented(bus, messages):
    consumer = bus["app"][COMMAND_CONSUMER]
    before = consumer.applied + consumer.rejected
    before_rejected = consumer.rejected
    ours = 0
    with structlog.testing.capture_logs() as logs:
        for message in messages:
            properties = dict(message)  # hypothesis may show the example afterwards: it stays whole
            reply = properties.pop("reply")
            reply_to = {"ours": bus["replies"].name, "nobody's": "nobody-" + uuid.uuid4().hex, None: None}[reply]
            ours += reply == "ours"
            routing_key = properties.pop("routing_key")
            await bus["exchange"].publish(aio_pika.Message(reply_to=reply_to, **properties), routing_key=routing_key)
        try:
            await eventually(lambda: consumer.applied + consumer.rejected == before + len(messages), timeout=10)
        except TimeoutError:
            pytest.fail(
                f"not all handled: {[e for e in logs if e['event'] != 'commands_handled'][-5:]} {messages!r:.2000}"[
                    :5000
                ]
            )
        assert not TROUBLE & {entry["event"] for entry in logs}, logs
        assert consumer.consuming.is_set()
        try:
            rejected = consumer.rejected - before_rejected
            letters = await take(bus["dead"], rejected, timeout=5) if rejected else []  # take(q, 0) takes one
            answers = await take(bus["replies"], ours, timeout=5) if ours else []
        except TimeoutError:
            pytest.fail(
                f"missing: {[e for e in logs if e['event'] != 'commands_handled'][-8:]} {messages!r:.2000}"[:5000]
            )
    for letter in letters:
        reason = letter.headers["x-cinema-error"]
        assert not reason.startswith("internal-error"), reason
    for answer in answers:
        body = json.loads(answer.body)
        if not body["ok"]:
            fuzz.assert_documented_problem(body["problem"]["status"], PROBLEM_JSON, body["problem"], {400, 409, 422})
    fuzz.assert_actors_alive(bus["app"][ACTORS])


async def test_after_any_commands_a_normal_command_still_applies(bus):
    body: dict[str, Any] = {"source": "fuzz", "external_id": "after", "data": {"name": "After the storm"}}
    await bus["exchange"].publish(
        aio_pika.Message(json.dumps(body).encode(), message_id=uuid.uuid4().hex, reply_to=bus["replies"].name),
        routing_key="genre.upsert",
    )
    [answer] = await take(bus["replies"], 1)
    assert json.loads(answer.body)["ok"] is True, answer.body
    fuzz.assert_actors_alive(bus["app"][ACTORS])
