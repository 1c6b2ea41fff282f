"""The in-process layer: an LRU of response bodies with their ETags, bounded by entries and bytes.

Owned by the cache actor. `get` is the one fast path other code may take: a handler reads a
hit directly, without a message to the actor. It never changes what a key maps to (it only
refreshes recency, counts the hit and forgets an expired entry); everything that stores or
invalidates runs in the actor.

A key is (kind, ident, generation of the kind). Bumping a collection bumps the generation of
every kind that lists it: their old keys become unreachable at once and age out of the LRU,
with no scan. An entity counter (`genre:5`) drops the one key of each kind keyed by it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from time import monotonic

import attrs

from cinema.cache.kinds import Kind

Key = tuple[str, str, int]  # kind name, ident, generation

# A rough per-entry cost besides the body (key tuple, entry, dict slot), for the byte bound.
OVERHEAD = 200


@attrs.frozen(slots=True)
class Entry:
    body: bytes  # the response body, ready to send
    etag: str


class LocalLayer:
    def __init__(self, kinds: Iterable[Kind], ttls: Mapping[str, float], max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self._ttls = dict(ttls)
        self._entries: OrderedDict[Key, tuple[Entry, float]] = OrderedDict()
        self._bytes = 0
        self._generations: dict[str, int] = {}
        self._by_collection: dict[str, list[str]] = {}
        self._by_entity: dict[str, list[str]] = {}
        for kind in kinds:
            self._generations[kind.name] = 0
            for collection in kind.collections:
                self._by_collection.setdefault(collection, []).append(kind.name)
            if kind.entity is not None:
                self._by_entity.setdefault(kind.entity, []).append(kind.name)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held, as counted for the bound."""
        return self._bytes

    def key(self, kind: Kind, ident: str) -> Key:
        return (kind.name, ident, self._generations[kind.name])

    def get(self, kind: Kind, ident: str) -> Entry | None:
        """The fresh entry for this key, or None (the read-only fast path)."""
        key = (kind.name, ident, self._generations[kind.name])
        item = self._entries.get(key)
        if item is None:
            return None
        if item[1] <= monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: Key, entry: Entry) -> bool:
        """Store unless the key's generation is gone (a list bumped while it was read)."""
        name, ident, generation = key
        if self.max_entries == 0 or self._generations.get(name) != generation:
            return False
        cost = len(entry.body) + len(ident) + OVERHEAD
        if cost > self.max_bytes:
            return False
        if key in self._entries:
            self._remove(key)
        self._entries[key] = (entry, monotonic() + self._ttls[name])
        self._bytes += cost
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))
        return True

    def invalidate(self, counters: Iterable[str]) -> list[Key]:
        """Drop what the counters cover; returns the entity keys dropped (collections bump instead)."""
        dropped = []
        for counter in counters:
            entity, _, ident = counter.partition(":")
            if not ident:
                for name in self._by_collection.get(counter, ()):
                    self._generations[name] += 1
                continue
            for name in self._by_entity.get(entity, ()):
                key = (name, ident, self._generations[name])
                self._remove(key)
                dropped.append(key)
        return dropped

    def clear(self) -> None:
        """Drop everything; in-flight reads can no longer store under the old generations."""
        self._entries.clear()
        self._bytes = 0
        for name in self._generations:
            self._generations[name] += 1

    def _remove(self, key: Key) -> None:
        item = self._entries.pop(key, None)
        if item is not None:
            self._bytes -= len(item[0].body) + len(key[1]) + OVERHEAD
