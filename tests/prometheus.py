"""Reading the Prometheus text format the way a scrape does, for tests."""

from __future__ import annotations

import re
from typing import Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Samples:
    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                assert name not in self.types, f"{name} declared twice"
                self.types[name] = kind
            elif line and not line.startswith("#"):
                match = _SAMPLE.match(line)
                assert match is not None, f"not a sample: {line!r}"
                name, labels, value = match.groups()
                self.samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))

    def get(self, name: str, **labels: Any) -> float | None:
        """The value of the one series of `name` whose labels include `labels`; None if there is none."""
        wanted = {k: str(v) for k, v in labels.items()}
        found = [v for n, ls, v in self.samples if n == name and wanted.items() <= ls.items()]
        assert len(found) <= 1, f"{name}{labels}: {len(found)} series"
        return found[0] if found else None

    def value(self, name: str, **labels: Any) -> float:
        found = self.get(name, **labels)
        assert found is not None, f"no series {name}{labels}"
        return found

    def sum(self, name: str, **labels: Any) -> float:
        wanted = {k: str(v) for k, v in labels.items()}
        return sum(v for n, ls, v in self.samples if n == name and wanted.items() <= ls.items())


async def scrape(client: Any, path: str = "/metrics") -> Samples:
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    return Samples(await resp.text())
