"""pyproject.toml lists every package (the migrations mapping needs the list spelled out)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_and_the_migrations_ship_inside():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "cinema").rglob("__init__.py")}
    assert set(config["packages"]) == found | {"cinema.migrations"}
    assert config["package-dir"]["cinema.migrations"] == "migrations"
    assert "*.sql" in config["package-data"]["cinema.migrations"]
