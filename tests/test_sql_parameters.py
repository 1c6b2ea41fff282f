"""SQL is built only from constants: values reach PostgreSQL as `$n` parameters, never as text.

Every call of a driver method that takes SQL (asyncpg's execute, fetch*, prepare, cursor,
copy_from_query; psycopg's execute) is checked: its SQL must be a literal, a module-level
constant, a call (SQL builders, which compose constants and cache the result), or a local
variable assigned one of those in the same function. Composing SQL text at the call site, with
an f-string, `+`, `%`, `.format()` or `.join()`, fails the test unless every piece is a literal
or a module-level UPPER_CASE constant (or a loop variable over one): runtime data must travel as
a parameter. psycopg's `sql.SQL(...).format(sql.Identifier(...))` quotes identifiers and passes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import cinema

PACKAGE = Path(cinema.__file__).parent
SQL_METHODS = frozenset(
    {"execute", "executemany", "fetch", "fetchrow", "fetchval", "prepare", "cursor", "copy_from_query"}
)


def _constants(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names.update(t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper())
    return names


def _composed(node: ast.expr) -> bool:
    """SQL text put together right here."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join")


def _safe_pieces(node: ast.expr, constants: set[str], loop_vars: set[str]) -> bool:
    """Every value composed into `node` is a literal or a constant (psycopg's sql composition is quoting)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        base = node.func.value
        if isinstance(base, ast.Call) and isinstance(base.func, ast.Attribute) and base.func.attr == "SQL":
            return True  # psycopg.sql.SQL(...).format(...): identifiers and literals are quoted by psycopg
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id not in constants and child.id not in loop_vars:
            return False
    return True


def _loop_vars(function: ast.AST, constants: set[str]) -> set[str]:
    """Names bound by `for` loops over module constants (`for live, staged in zip(LIVE, NEXT)`)."""
    found = set()
    for node in ast.walk(function):
        if isinstance(node, ast.For | ast.comprehension) and all(
            not isinstance(n, ast.Name) or n.id in constants or n.id in ("zip", "enumerate")
            for n in ast.walk(node.iter)
        ):
            found.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    return found


def violations_in(tree: ast.Module, label: str) -> Iterator[str]:
    constants = _constants(tree)
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        loop_vars = _loop_vars(function, constants)
        assigned: dict[str, ast.expr] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                assigned[node.targets[0].id] = node.value
        for node in ast.walk(function):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            if node.func.attr not in SQL_METHODS:
                continue
            sql = node.args[0]
            if isinstance(sql, ast.Name) and sql.id in assigned:
                sql = assigned[sql.id]
            if _composed(sql) and not _safe_pieces(sql, constants, loop_vars):
                yield f"{label}:{node.lineno}: SQL composed from runtime values: {ast.unparse(node.args[0])[:80]}"


def test_no_sql_is_built_from_runtime_values():
    found = [
        violation
        for path in sorted(PACKAGE.rglob("*.py"))
        for violation in violations_in(ast.parse(path.read_text(), str(path)), str(path.relative_to(PACKAGE.parent)))
    ]
    assert found == []


def test_the_check_catches_what_it_is_for():
    source = """
LIMIT = "LIMIT 10"
async def bad(conn, name):
    await conn.execute(f"DELETE FROM genres WHERE name = '{name}'")
    sql = "SELECT * FROM t WHERE a = " + name
    await conn.fetch(sql)
    await conn.fetchval("SELECT %s" % name)
    await conn.execute(", ".join(name))
async def good(conn, name):
    await conn.fetch("SELECT * FROM t WHERE a = $1 " + LIMIT, name)
    await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    await conn.execute(build_sql(name))
"""
    lines = [int(v.split(":")[1]) for v in violations_in(ast.parse(source), "example")]
    assert lines == [4, 6, 7, 8]
