"""Commands from other systems: applied once each, keyed by external ids, a batch per transaction.

A command names its entity by `(source, external_id)` (the `external_ids` table), never by
our id, and may refer to other entities the same way inside its data. A batch of commands
is applied in one transaction (the catalog's `ApplyCommands`), in order:

1. the batch's keys are locked (transaction advisory locks, taken in sorted order), so two
   processes applying commands for the same entity take turns instead of both inserting;
2. one query finds which message ids were already processed and which keys have an entity;
3. each command resolves the external ids its data refers to, is validated exactly like the
   REST body, then inserts, updates or deletes through the aggregate's own write functions,
   which produce the events;
4. every applied message id is recorded with its outcome, so a redelivery is recognised.

A command that can never succeed is `Rejected`. When only the database finds that out (a
name already taken), the transaction is aborted: `CommandRejected` says which command it
was, and the caller applies the batch again without it.
"""

from __future__ import annotations

import copy
import typing
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
import attrs

from cinema.convert import structure
from cinema.db.outbox import NewEvent
from cinema.errors import Conflict, DomainError, FieldError, Unavailable, ValidationFailed
from cinema.etags import IfMatch
from cinema.models import UNSET, meta

KINDS = ("movie", "person", "genre", "country")

# Write functions of an aggregate: a bulk insert (ids in the items' order), an update, a delete.
Insert = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[tuple[Sequence[int], Sequence[NewEvent]]]]
Update = Callable[[asyncpg.Connection, int, Any], Awaitable[tuple[Any, Sequence[NewEvent]]]]
Remove = Callable[[asyncpg.Connection, int, IfMatch | None], Awaitable[tuple[Any, Sequence[NewEvent]]]]


@attrs.frozen
class ExternalId:
    """`{"source": "imdb", "external_id": "tt0111161"}`: an entity as another system names it."""

    source: str = attrs.field(metadata=meta(minLength=1, maxLength=100))
    external_id: str = attrs.field(metadata=meta(minLength=1, maxLength=200))


@attrs.frozen
class UpsertBody:
    source: str = attrs.field(metadata=meta(minLength=1, maxLength=100))
    external_id: str = attrs.field(metadata=meta(minLength=1, maxLength=200))
    data: dict[str, Any]


@attrs.frozen
class DeleteBody:
    source: str = attrs.field(metadata=meta(minLength=1, maxLength=100))
    external_id: str = attrs.field(metadata=meta(minLength=1, maxLength=200))


@attrs.frozen
class ExternalRef:
    """Where a command's data may name entities of `kind` by external id, and what they become.

    `field` holds a list of external ids (their ids are appended to the list `target`) or one
    (its id goes into `target`). With `within`, the field sits in each item of that list:
    `ExternalRef("person", "person", "person_id", within="credits")`.
    """

    kind: str
    field: str
    target: str
    within: str | None = None


@attrs.frozen
class Upsert:
    """Create the entity the first time its external id is seen, replace its fields afterwards.

    `body` is the REST create body the data is validated as; `insert` is the aggregate's bulk
    insert (as `POST .../bulk` uses it) and `update` its update of one entity, which gets the same
    body: the fields as the source knows them.
    """

    kind: str
    body: type
    insert: Insert
    update: Update
    refs: tuple[ExternalRef, ...] = ()


@attrs.frozen
class Delete:
    """Delete the entity behind the external id; a key that names nothing is already done."""

    kind: str
    delete: Remove


Action = Upsert | Delete


Create = Callable[
    [asyncpg.Connection, Sequence[Any], bool], Awaitable[tuple[Sequence[tuple[int, str]], Sequence[NewEvent]]]
]
Patch = Callable[[asyncpg.Connection, int, Any, IfMatch | None], Awaitable[tuple[Any, Sequence[NewEvent]]]]


def inserting(create: Create) -> Insert:
    """An aggregate's REST create (`create_<kind>s`) as a command's insert: ids, in the items' order."""

    async def insert(conn: asyncpg.Connection, items: Sequence[Any]) -> tuple[Sequence[int], Sequence[NewEvent]]:
        created, events = await create(conn, items, False)
        return [entity_id for entity_id, _ in created], events

    return insert


def replacing(patch: Patch, patch_body: type) -> Update:
    """An aggregate's REST patch as a command's update: every field of the create body, as the
    source knows it, replaces the stored one; a body without a slug keeps the current slug."""

    async def update(conn: asyncpg.Connection, entity_id: int, item: Any) -> tuple[Any, Sequence[NewEvent]]:
        fields = attrs.asdict(item, recurse=False)
        if fields.get("slug", UNSET) is None:
            fields["slug"] = UNSET
        return await patch(conn, entity_id, patch_body(**fields), None)

    return update


@attrs.frozen(eq=False)
class Command:
    message_id: str
    name: str  # "genre.upsert": the routing key
    action: Action
    source: str
    external_id: str
    data: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.action.kind, self.source, self.external_id


@attrs.frozen
class Applied:
    entity_id: int | None  # None: a delete of something that did not exist
    duplicate: bool = False  # this message id had been applied before; nothing was done now


@attrs.frozen
class Rejected:
    error: DomainError


Outcome = Applied | Rejected


class CommandRejected(Exception):
    """Command `index` of the batch failed in the database, so the transaction is lost; `index`
    is None when a group of creations failed together (apply the batch again ungrouped)."""

    def __init__(self, index: int | None, error: DomainError) -> None:
        super().__init__(f"command {index} rejected: {error.detail}")
        self.index = index
        self.error = error


# The two-key form of the advisory lock functions: its own key space, apart from the
# outbox's and the relay's single-key locks.
LOCK_CLASS = 0x636D64  # "cmd"
LOCK_KEYS = "SELECT count(pg_advisory_xact_lock($1::int, k)) FROM unnest($2::int[]) AS k"

ENTITY_ID = "coalesce(e.movie_id, e.person_id, e.genre_id, e.country_id)"

FIND = f"""
SELECT p.message_id IS NOT NULL AS done, p.entity_id AS done_entity_id, {ENTITY_ID} AS entity_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    WITH ORDINALITY AS c(message_id, kind, source, external_id, n)
LEFT JOIN processed_commands p ON p.message_id = c.message_id
LEFT JOIN external_ids e ON e.source = c.source AND e.kind = c.kind AND e.external_id = c.external_id
ORDER BY c.n
"""

RECORD = """
INSERT INTO processed_commands (message_id, command, entity_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
"""


async def apply_commands(
    conn: asyncpg.Connection, commands: Sequence[Command], grouped: bool = True
) -> tuple[list[Outcome], list[NewEvent]]:
    """Apply the batch in order; returns one outcome per command and the events of those applied.

    With `grouped`, consecutive upserts that create entities of one kind are inserted together,
    in one statement of their aggregate's bulk insert: the same result as one at a time, in a
    few round trips instead of a few per command. When such a group fails in the database,
    `CommandRejected` cannot name the command (`index` None): apply the batch again ungrouped.
    """
    await conn.fetchval(LOCK_KEYS, LOCK_CLASS, sorted({_lock_key(c.key) for c in commands}))
    found = await conn.fetch(
        FIND,
        [c.message_id for c in commands],
        [c.action.kind for c in commands],
        [c.source for c in commands],
        [c.external_id for c in commands],
    )
    batch = _Batch(conn, len(commands))
    for command, row in zip(commands, found, strict=True):
        batch.entities.setdefault(command.key, row["entity_id"])
    for index, (command, row) in enumerate(zip(commands, found, strict=True)):
        if row["done"]:
            batch.outcomes[index] = Applied(row["done_entity_id"], duplicate=True)
        else:
            await batch.add(index, command, grouped)
    await batch.flush()
    if batch.applied:
        applied = batch.applied.values()
        await conn.execute(RECORD, list(batch.applied), [name for name, _ in applied], [i for _, i in applied])
    # Once the last group is flushed every command has its outcome.
    return typing.cast(list[Outcome], batch.outcomes), batch.events


def _lock_key(key: tuple[str, str, str]) -> int:
    # A stable signed 32-bit hash: every process locks the same key for the same entity.
    return zlib.crc32("\x1f".join(key).encode()) - 2**31


LINK = {
    kind: f"""
    INSERT INTO external_ids (source, kind, external_id, {kind}_id)
    SELECT source, '{kind}', external_id, id
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS l(source, external_id, id)
    """
    for kind in KINDS
}


class _Batch:
    """A batch being applied: outcomes by index, entities by key, and the group of creations
    waiting to be inserted together."""

    def __init__(self, conn: asyncpg.Connection, size: int) -> None:
        self.conn = conn
        self.entities: dict[tuple[str, str, str], int | None] = {}
        self.applied: dict[str, tuple[str, int | None]] = {}  # message id -> (command, entity id)
        self.outcomes: list[Outcome | None] = [None] * size
        self.events: list[NewEvent] = []
        self.group: list[tuple[int, Command, Any]] = []  # (index, command, validated item)
        self.in_group: set[object] = set()  # the group's message ids and keys

    async def add(self, index: int, command: Command, grouped: bool) -> None:
        if command.message_id in self.in_group or command.key in self.in_group:
            await self.flush()  # this command depends on the group's outcome
        if command.message_id in self.applied:
            self.outcomes[index] = Applied(self.applied[command.message_id][1], duplicate=True)
            return
        action = command.action
        creates = isinstance(action, Upsert) and self.entities[command.key] is None
        groupable = grouped and isinstance(action, Upsert) and creates and not action.refs
        if not groupable:
            await self.flush()  # earlier creations first: this command may refer to them
        try:
            item = await _prepare(self.conn, command)
        except Unavailable:
            raise  # not the command's fault: the whole batch waits
        except DomainError as exc:  # found before anything was written: the transaction goes on
            self.outcomes[index] = Rejected(exc)
            return
        if groupable:
            if self.group and self.group[0][1].action is not action:
                await self.flush()
            self.group.append((index, command, item))
            self.in_group |= {command.message_id, command.key}
            return
        entity_id = self.entities[command.key]
        try:
            if creates:
                [entity_id], events = await self._insert([(index, command, item)])
            else:
                entity_id, events = await _change(self.conn, command, item, entity_id)
        except Unavailable:
            raise
        except DomainError as exc:
            raise CommandRejected(index, exc) from None
        self._done(index, command, entity_id)
        self.events += events

    async def flush(self) -> None:
        if not self.group:
            return
        group, self.group = self.group, []
        self.in_group.clear()
        try:
            ids, events = await self._insert(group)
        except Unavailable:
            raise
        except DomainError as exc:
            raise CommandRejected(group[0][0] if len(group) == 1 else None, exc) from None
        for (index, command, _), entity_id in zip(group, ids, strict=True):
            self._done(index, command, entity_id)
        self.events += events

    async def _insert(self, group: Sequence[tuple[int, Command, Any]]) -> tuple[Sequence[int], Sequence[NewEvent]]:
        action = group[0][1].action
        if not isinstance(action, Upsert):
            raise TypeError(f"{action!r} creates nothing")
        ids, events = await action.insert(self.conn, [item for _, _, item in group])
        sources, external_ids = [c.source for _, c, _ in group], [c.external_id for _, c, _ in group]
        await self.conn.execute(LINK[action.kind], sources, external_ids, ids)
        return ids, events

    def _done(self, index: int, command: Command, entity_id: int | None) -> None:
        self.entities[command.key] = entity_id if isinstance(command.action, Upsert) else None
        self.applied[command.message_id] = (command.name, entity_id)
        self.outcomes[index] = Applied(entity_id)


async def _change(
    conn: asyncpg.Connection, command: Command, item: Any, entity_id: int | None
) -> tuple[int | None, Sequence[NewEvent]]:
    """Update or delete an entity that may exist (a delete of nothing is done already)."""
    match command.action:
        case Upsert(update=update) if entity_id is not None:
            _, events = await update(conn, entity_id, item)
            return entity_id, events
        case Delete(delete=delete):
            if entity_id is None:
                return None, []
            _, events = await delete(conn, entity_id, None)  # its external ids go with it (cascade)
            return entity_id, events
    raise TypeError(f"cannot change {command.action!r} of {entity_id}")


# -- validation and references ---------------------------------------------------------


@attrs.define
class _Slot:
    """Where the id of one referenced entity goes once it is known."""

    path: str  # for errors: "data.genres[1]"
    kind: str
    ref: ExternalId
    container: dict[str, Any] | list[Any]  # a list gets the id appended
    key: str  # a dict's key


async def _prepare(conn: asyncpg.Connection, command: Command) -> Any:
    """The command's data as its validated body, with external references turned into ids."""
    action = command.action
    if not isinstance(action, Upsert):
        return None
    data: Any = command.data
    if action.refs:
        data = copy.deepcopy(data)  # a batch may run twice: the command itself stays untouched
        slots = _take_refs(action.refs, data)
        await _resolve(conn, slots)
    try:
        return structure(data, action.body)
    except ValidationFailed as exc:
        raise exc.prefixed("data") from None


def _take_refs(refs: Sequence[ExternalRef], data: dict[str, Any]) -> list[_Slot]:
    slots: list[_Slot] = []
    errors: list[FieldError] = []
    for ref in refs:
        if ref.within is None:
            holders: list[tuple[str, dict[str, Any]]] = [("data", data)]
        else:
            items = data.get(ref.within)
            if not isinstance(items, list):
                continue  # absent, or a wrong type that validation reports
            holders = [(f"data.{ref.within}[{n}]", item) for n, item in enumerate(items) if isinstance(item, dict)]
        for path, holder in holders:
            if ref.field in holder:
                _take_ref(ref, holder, f"{path}.{ref.field}", slots, errors)
    if errors:
        raise ValidationFailed("The command has invalid references.", errors=errors)
    return slots


def _take_ref(
    ref: ExternalRef, holder: dict[str, Any], path: str, slots: list[_Slot], errors: list[FieldError]
) -> None:
    value = holder.pop(ref.field)
    if isinstance(value, list):
        target = holder.setdefault(ref.target, [])
        if not isinstance(target, list):
            return  # validation reports the target's type
        for n, one in enumerate(value):
            _add_slot(ref.kind, one, f"{path}[{n}]", target, "", slots, errors)
    elif ref.target in holder:
        errors.append(FieldError(path, f"give {ref.field} or {ref.target}, not both"))
    else:
        _add_slot(ref.kind, value, path, holder, ref.target, slots, errors)


def _add_slot(
    kind: str,
    value: Any,
    path: str,
    container: dict[str, Any] | list[Any],
    key: str,
    slots: list[_Slot],
    errors: list[FieldError],
) -> None:
    try:
        ref = structure(value, ExternalId)
    except ValidationFailed as exc:
        errors += exc.prefixed(path).errors
        return
    slots.append(_Slot(path, kind, ref, container, key))


RESOLVE = f"""
SELECT {ENTITY_ID} AS id
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(kind, source, external_id, n)
LEFT JOIN external_ids e ON e.source = r.source AND e.kind = r.kind AND e.external_id = r.external_id
ORDER BY r.n
"""


async def _resolve(conn: asyncpg.Connection, slots: Sequence[_Slot]) -> None:
    if not slots:
        return
    rows = await conn.fetch(
        RESOLVE, [s.kind for s in slots], [s.ref.source for s in slots], [s.ref.external_id for s in slots]
    )
    missing = [
        FieldError(s.path, f"no {s.kind} has the external id {s.ref.source}/{s.ref.external_id}")
        for s, row in zip(slots, rows, strict=True)
        if row["id"] is None
    ]
    if missing:
        raise Conflict("The command refers to entities that do not exist.", errors=missing)
    for slot, row in zip(slots, rows, strict=True):
        if isinstance(slot.container, list):
            slot.container.append(row["id"])
        else:
            slot.container[slot.key] = row["id"]


# -- housekeeping ----------------------------------------------------------------------

PRUNE_PROCESSED = """
DELETE FROM processed_commands WHERE message_id IN (
    SELECT message_id FROM processed_commands
    WHERE processed_at < now() - make_interval(secs => $1)
    LIMIT $2
)
"""


async def prune_processed(conn: asyncpg.Connection, older_than_seconds: float, limit: int) -> int:
    """Forget up to `limit` message ids processed more than `older_than_seconds` ago; returns how many."""
    return int((await conn.execute(PRUNE_PROCESSED, older_than_seconds, limit)).split()[-1])
