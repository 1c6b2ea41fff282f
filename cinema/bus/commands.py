"""The command consumer: other systems change the catalog by publishing commands to RabbitMQ.

A command is a message on `<prefix>.commands` whose routing key names it (`genre.upsert`) and
whose body is `{"source", "external_id", "data"}` (`data` as the REST create body takes it;
deletes have none). `COMMANDS` maps each routing key to what it does; a resource joins by
adding one entry, with its REST create body and its aggregate's write functions:

    "movie.upsert": Upsert("movie", MovieCreate, movies.insert_movies, movies.replace_movie,
                           refs=(ExternalRef("genre", "genres", "genre_ids"), ...)),
    "movie.delete": Delete("movie", movies.delete_movie),

The consumer takes messages in queue order (the queue has a single active consumer, so one
process applies them at a time, the others stand by) and applies what is waiting as one
batch in one catalog transaction (cinema/db/commands.py): a batch costs one commit, which
is what makes thousands of commands a second possible when every commit waits for the disk.

Every message ends in exactly one of three ways:
- applied (or recognised as a redelivery of one applied before): acknowledged;
- rejected, when it can never succeed (bad JSON, unknown command, no message_id, invalid
  data, a reference to something that does not exist, a conflict): published to
  `<prefix>.commands.dead` with its body, its properties and the reason in `x-cinema-error`,
  then acknowledged;
- not yet, when a dependency is down (the database, the catalog actor): the batch is held
  and retried with back-off, in order, never acknowledged, rejected or dropped meanwhile.
With `reply_to`, the sender gets `{"ok": true, "entity_id": N}` or `{"ok": false, "problem"}`
with its `correlation_id`; a redelivery is answered with the first outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
import asyncpg
import attrs
import orjson
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from aiormq.exceptions import ChannelInvalidStateError
from opentelemetry.trace import Span, SpanKind

from cinema import telemetry
from cinema.actors.base import ActorError
from cinema.actors.catalog import DATABASE_DOWN, ApplyCommands, CatalogActor
from cinema.bus.amqp import BROKER_ERRORS, Broker, Topology, declare_commands
from cinema.bus.service import Reconnecting
from cinema.convert import NUL_MESSAGE, structure, unstorable
from cinema.db import countries, genres, movies, persons
from cinema.db.commands import (
    Action,
    Applied,
    Command,
    CommandRejected,
    Delete,
    DeleteBody,
    ExternalRef,
    Outcome,
    Rejected,
    Upsert,
    UpsertBody,
    inserting,
    replacing,
)
from cinema.errors import BadRequest, DomainError, FieldError, Unavailable, ValidationFailed, problem_document
from cinema.models import CountryCreate, CountryPatch, GenreCreate, MovieCreate, MoviePatch, PersonCreate, PersonPatch

log = structlog.get_logger("cinema.commands")

COMMANDS: dict[str, Action] = {
    "genre.upsert": Upsert("genre", GenreCreate, genres.insert_genres, genres.replace_genre),
    "country.upsert": Upsert(
        "country",
        CountryCreate,
        inserting(countries.create_countries),
        replacing(countries.patch_country, CountryPatch),
    ),
    "person.upsert": Upsert(
        "person", PersonCreate, inserting(persons.create_persons), replacing(persons.patch_person, PersonPatch)
    ),
    "person.delete": Delete("person", persons.delete_person),
    "movie.upsert": Upsert(
        "movie",
        MovieCreate,
        inserting(movies.create_movies),
        replacing(movies.patch_movie, MoviePatch),
        refs=(
            ExternalRef("genre", "genres", "genre_ids"),
            ExternalRef("country", "countries", "country_ids"),
            ExternalRef("person", "person", "person_id", within="credits"),
        ),
    ),
    "movie.delete": Delete("movie", movies.delete_movie),
}

# Failures that say "not now" rather than "never": the batch waits and is tried again.
TRANSIENT = (
    Unavailable,
    ActorError,
    asyncpg.TransactionRollbackError,  # deadlocks, serialization failures
    asyncpg.OperatorInterventionError,  # shutdown, statement cancelled
    asyncpg.InsufficientResourcesError,
    asyncpg.PostgresConnectionError,
    *DATABASE_DOWN,
)
REPLY_TIMEOUT = 10.0  # seconds for the broker to confirm a reply or a dead letter


class CommandFailed(DomainError):
    """A bug met while applying a command: dead-lettered (with the traceback in the log)."""

    status, slug, title = 500, "internal-error", "Internal server error"


def reason(error: DomainError) -> str:
    """The `x-cinema-error` header: the problem's kind, what went wrong, and the fields concerned."""
    fields = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in error.errors)
    return f"{error.slug}: {error.detail}" + (f" ({fields})" if fields else "")


@attrs.frozen
class _Outlets:
    """Where a consumer's channel sends what is not an acknowledgement."""

    dead: AbstractExchange  # <prefix>.commands.dead
    replies: AbstractExchange  # the default exchange: routing key = reply_to


class CommandConsumer(Reconnecting):
    name = "command_consumer"
    retry_on = BROKER_ERRORS

    def __init__(
        self,
        broker: Broker,
        catalog: CatalogActor,
        topology: Topology,
        *,
        prefetch: int = 256,
        commands: Mapping[str, Action] = COMMANDS,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        super().__init__(backoff)
        self.broker = broker
        self.catalog = catalog
        self.topology = topology
        self.prefetch = prefetch
        self.batch_size = max(1, prefetch // 2)  # the other half keeps arriving meanwhile
        self.commands = commands
        self.consuming = asyncio.Event()  # set once the consumer is registered with the broker
        self.applied = 0
        self.rejected = 0
        self.consumed = 0  # delivered by the broker (redeliveries included)
        self.acked = 0
        self.dead_lettered: dict[str, int] = {}  # by reason: the problem type's slug
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()  # bounded by the prefetch

    async def session(self) -> None:
        """Consume until stopped; on stop, what is unacknowledged goes back to the queue with the channel."""
        channel = await self.broker.channel()
        try:
            await channel.set_qos(prefetch_count=self.prefetch)
            queue, dead = await declare_commands(channel, self.topology, self.commands)
            outlets = _Outlets(dead, channel.default_exchange)
            # The channel is robust: after a reconnection aio-pika registers this consumer again.
            await queue.consume(self._receive)
            self.consuming.set()
            self.healthy()
            log.info("command_consumer_started", queue=queue.name)
            while True:
                await self._handle(await self._next_batch(), outlets)
        finally:
            self.consuming.clear()
            with contextlib.suppress(*BROKER_ERRORS):
                await channel.close()

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        self.consumed += 1
        self._inbox.put_nowait(message)

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        """What is waiting, in delivery order, at least one message; without stale deliveries."""
        batch = [await self._inbox.get()]
        while len(batch) < self.batch_size and not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        # A delivery from a channel that closed since can no longer be acknowledged; the broker
        # delivers it again on the new channel.
        return [m for m in batch if not _stale(m)]

    async def _handle(self, batch: Sequence[AbstractIncomingMessage], outlets: _Outlets) -> None:
        if not batch:
            return
        started = time.perf_counter()
        # With tracing on, each command continues its sender's trace; the batch is applied in
        # the first one's (its writes, events and their publication belong to that trace).
        spans = [] if telemetry.TRACER is None else [self._span(m) for m in batch]
        token = telemetry.activate(spans[0]) if spans else None
        try:
            parsed = [self._parse(m) for m in batch]
            commands = [p for p in parsed if isinstance(p, Command)]
            applied = iter(await self._apply(commands) if commands else [])
            outcomes = [next(applied) if isinstance(p, Command) else p for p in parsed]
            traces: list[str | None] = [telemetry.traceparent_of(span) for span in spans] or [None] * len(batch)
            settled = await asyncio.gather(
                *(self._settle(m, o, outlets, t) for m, o, t in zip(batch, outcomes, traces, strict=True))
            )
        finally:
            if token is not None:
                telemetry.deactivate(token)
            for span in spans:
                span.end()
        done = [m for m, ok in zip(batch, settled, strict=True) if ok]
        if done:
            # One acknowledgement for the batch: everything delivered before it is settled (the
            # batches run one after another), and a message handed back with nack is not pending.
            with contextlib.suppress(*BROKER_ERRORS):
                await done[-1].ack(multiple=True)
                self.acked += len(done)
        rejected = sum(isinstance(o, Rejected) for o in outcomes)
        self.applied += len(outcomes) - rejected
        self.rejected += rejected
        log.info(
            "commands_handled",
            count=len(outcomes),
            rejected=rejected,
            duplicates=sum(isinstance(o, Applied) and o.duplicate for o in outcomes),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    def _span(self, message: AbstractIncomingMessage) -> Span:
        assert telemetry.TRACER is not None
        return telemetry.TRACER.start_span(
            f"{self.topology.commands} process",
            context=telemetry.extract(message.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation": "process",
                "messaging.destination.name": self.topology.commands,
                "messaging.rabbitmq.destination.routing_key": message.routing_key or "",
                "messaging.message.id": message.message_id or "",
            },
        )

    def _parse(self, message: AbstractIncomingMessage) -> Command | Rejected:
        name = message.routing_key or ""
        action = self.commands.get(name)
        if action is None:
            known = ", ".join(sorted(self.commands))
            return Rejected(BadRequest(f"Unknown command {name!r} (the routing key); known: {known}."))
        if not message.message_id:
            return Rejected(BadRequest("The message has no message_id; a command needs one to be applied once."))
        if unstorable(message.message_id):  # it is stored, to recognise a redelivery
            error = FieldError("message_id", NUL_MESSAGE)
            return Rejected(BadRequest("The message_id cannot be stored.", errors=[error]))
        try:
            body = orjson.loads(message.body)
        except orjson.JSONDecodeError as exc:
            return Rejected(BadRequest(f"The body is not valid JSON: {exc}."))
        try:
            if isinstance(action, Upsert):
                upsert = structure(body, UpsertBody)
                return Command(message.message_id, name, action, upsert.source, upsert.external_id, upsert.data)
            delete = structure(body, DeleteBody)
            return Command(message.message_id, name, action, delete.source, delete.external_id)
        except ValidationFailed as exc:
            return Rejected(exc)

    async def _apply(self, commands: Sequence[Command]) -> list[Outcome]:
        """Apply in order; a transient failure holds the whole batch and tries again after a pause."""
        delay = self.backoff[0]
        while True:
            try:
                return await self._apply_once(commands)
            except TRANSIENT as exc:
                log.warning("commands_retried", error=repr(exc), count=len(commands), retry_in=delay)
            await self.pause(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _apply_once(self, commands: Sequence[Command]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        pending = list(range(len(commands)))
        grouped = True
        while pending:
            try:
                results = await self.catalog.ask(ApplyCommands(tuple(commands[i] for i in pending), grouped))
            except CommandRejected as exc:
                if exc.index is None:
                    grouped = False  # one of a group of creations: apply them one at a time to find it
                else:
                    outcomes[pending.pop(exc.index)] = Rejected(exc.error)
                continue
            except TRANSIENT:
                raise
            except Exception as exc:
                if len(pending) > 1:  # find the one that fails, and apply the others
                    log.exception("commands_isolated", count=len(pending))
                    for i in pending:
                        [outcomes[i]] = await self._apply_once([commands[i]])
                    break
                log.exception("command_failed", message_id=commands[pending[0]].message_id)
                # A poison message: dead-lettered below, and worth a look.
                telemetry.report(exc, command=commands[pending[0]].name, message_id=commands[pending[0]].message_id)
                error = CommandFailed("Applying the command failed unexpectedly; the service logged why.")
                outcomes[pending[0]] = Rejected(error)
                break
            outcomes.update(zip(pending, results, strict=True))
            break
        return [outcomes[i] for i in range(len(commands))]

    async def _settle(
        self, message: AbstractIncomingMessage, outcome: Outcome, outlets: _Outlets, trace: str | None = None
    ) -> bool:
        """Dead-letter and reply as the outcome says; False when the broker failed us half-way:
        the message is then handed back to the queue, and its redelivery finishes the job."""
        try:
            if isinstance(outcome, Rejected):
                log.warning(
                    "command_rejected",
                    message_id=message.message_id,
                    command=message.routing_key,
                    reason=reason(outcome.error),
                )
                await _dead_letter(outlets.dead, message, outcome.error)
                slug = outcome.error.slug
                self.dead_lettered[slug] = self.dead_lettered.get(slug, 0) + 1
            if message.reply_to:
                await _reply(outlets.replies, message, message.reply_to, outcome, trace)
        except BROKER_ERRORS as exc:
            log.warning("command_settle_failed", message_id=message.message_id, error=repr(exc))
            with contextlib.suppress(*BROKER_ERRORS):
                await message.nack(requeue=True)
            return False
        return True


def _stale(message: AbstractIncomingMessage) -> bool:
    try:
        message.channel  # noqa: B018 - raises once the channel is closed
    except ChannelInvalidStateError:
        return True
    return False


async def _dead_letter(dead: AbstractExchange, message: AbstractIncomingMessage, error: DomainError) -> None:
    """The message as it came (body and properties), with the reason it can never succeed."""
    headers = {**(message.headers or {}), "x-cinema-error": reason(error)}
    letter = aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )
    await dead.publish(letter, message.routing_key or "", mandatory=False, timeout=REPLY_TIMEOUT)


async def _reply(
    replies: AbstractExchange,
    message: AbstractIncomingMessage,
    reply_to: str,
    outcome: Outcome,
    trace: str | None = None,  # the command's span: the reply continues its trace
) -> None:
    body: dict[str, Any]
    if isinstance(outcome, Applied):
        body = {"ok": True, "entity_id": outcome.entity_id}
    else:
        error = outcome.error
        body = {
            "ok": False,
            "problem": problem_document(error.status, error.slug, error.title, error.detail, None, error.errors),
        }
    reply = aio_pika.Message(
        orjson.dumps(body),
        content_type="application/json",
        correlation_id=message.correlation_id,
        headers={"traceparent": trace} if trace else None,
    )
    await replies.publish(reply, reply_to, mandatory=False, timeout=REPLY_TIMEOUT)
