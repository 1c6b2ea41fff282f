"""The one cattrs converter, and the translation of its failures into field errors.

Structuring is strict, unlike cattrs' defaults: a string field takes only a string (no
silent `str(42)`), an integer field only an integer (not `true`), and unknown keys are
rejected. Every problem in a body is reported at once, with its path (`name`,
`credits[2].role`), as a 422 `ValidationFailed`.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory, mapping_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from cinema.errors import FieldError, ValidationFailed
from cinema.models import Unset

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)


class _WrongType(TypeError):
    pass


def _strict(kind: type, name: str) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind:
            raise _WrongType(f"must be {name}")
        return value

    return structure


# PostgreSQL stores neither text with U+0000 nor integers past 64 bits: such values are a
# field error here, not a database error (a 500) later.
INT64 = (-(2**63), 2**63 - 1)
# The one check of text PostgreSQL can store, for bodies, query strings, frames and commands alike.
NUL_MESSAGE = "must not contain the NUL character (U+0000)"


def unstorable(text: str) -> bool:
    """Whether PostgreSQL refuses this text (it cannot hold U+0000)."""
    return "\x00" in text


def _text(value: Any, _: type) -> str:
    if type(value) is not str:
        raise _WrongType("must be a string")
    if unstorable(value):
        raise _WrongType(NUL_MESSAGE)
    return value


def _integer(value: Any, _: type) -> int:
    # JSON Schema counts 7.0 as an integer (a number with no fractional part), and so do we,
    # while the float holds it exactly (below 2**53; orjson reads larger literals as floats).
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if type(value) is not int:
        raise _WrongType("must be an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise _WrongType("must be a 64-bit integer")
    return value


def _number(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _WrongType("must be a number")
    return float(value)


# date.fromisoformat also takes "19700101" and "1970-W01-4" since Python 3.11; the API promises YYYY-MM-DD.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _date(value: Any, _: type) -> dt.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise _WrongType("must be a date (YYYY-MM-DD)")
    try:
        date = dt.date.fromisoformat(value)
    except ValueError:
        raise _WrongType("must be a date (YYYY-MM-DD)") from None
    # asyncpg sends date.min and date.max as -infinity and infinity: the client would read those back.
    if date in (dt.date.min, dt.date.max):
        raise _WrongType("must be a date after 0001-01-01 and before 9999-12-31")
    return date


converter.register_structure_hook(str, _text)
converter.register_structure_hook(int, _integer)
converter.register_structure_hook(bool, _strict(bool, "true or false"))
converter.register_structure_hook(float, _number)
converter.register_structure_hook(dt.date, _date)
converter.register_unstructure_hook(dt.date, dt.date.isoformat)


def _has_unset(tp: Any) -> bool:
    return isinstance(tp, types.UnionType | typing._UnionGenericAlias) and Unset in typing.get_args(tp)  # type: ignore[attr-defined]


def _structure_unset_union(tp: Any) -> Callable[[Any, Any], Any]:
    # A key present in a PATCH body is structured as the type without `Unset`
    # (absent keys never get here: they take the field's UNSET default).
    rest = tuple(arg for arg in typing.get_args(tp) if arg is not Unset)
    inner = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007
    return lambda value, _: converter.structure(value, typing.cast(type, inner))


converter.register_structure_hook_factory(_has_unset, _structure_unset_union)


def _object_only(cls: type) -> Callable[[Any, type], Any]:
    # cattrs would read attributes off anything; a nested body item must be a JSON object.
    structure_attrs: Callable[[Any, type], Any] = converter.gen_structure_attrs_fromdict(cls)

    def structure(value: Any, _: type) -> Any:
        if not isinstance(value, dict):
            raise _WrongType("must be an object")
        return structure_attrs(value, cls)

    return structure


converter.register_structure_hook_factory(attrs.has, _object_only)


def _is_array(tp: Any) -> bool:
    """list[X] and tuple[X, ...]: the types JSON arrays structure into."""
    args = typing.get_args(tp)
    return typing.get_origin(tp) is list or (typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is ...)


def _array_only(tp: Any) -> Callable[[Any, Any], Any]:
    # cattrs would iterate any iterable (a JSON object's keys, a string's characters).
    factory = list_structure_factory if typing.get_origin(tp) is list else homogenous_tuple_structure_factory
    return _only(list, "must be an array", factory(tp, converter), tp)


def _only(kind: type, message: str, structure_items: Callable[[Any, Any], Any], tp: Any) -> Callable[[Any, Any], Any]:
    """`structure_items`, for values of the JSON type `kind` only."""

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, kind):
            raise _WrongType(message)
        return structure_items(value, tp)

    return structure


converter.register_structure_hook_factory(_is_array, _array_only)


def _is_mapping(tp: Any) -> bool:
    return typing.get_origin(tp) is dict


def _object_mapping_only(tp: Any) -> Callable[[Any, Any], Any]:
    # cattrs would call .items() on anything (an AttributeError for a string: not a field error).
    return _only(dict, "must be an object", mapping_structure_factory(tp, converter), tp)


converter.register_structure_hook_factory(_is_mapping, _object_mapping_only)


def structure(data: Any, cls: type[T]) -> T:
    """Structure a decoded JSON body into `cls`, or raise `ValidationFailed` naming every bad field.

    Unknown keys, wrong types and constraint violations are all reported together.
    """
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.", errors=[FieldError("", "must be an object")])
    known = _field_names(cls)
    errors = [FieldError(key, "unknown field") for key in data if key not in known]
    if errors:
        data = {k: v for k, v in data.items() if k in known}
    try:
        obj = converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError) as exc:
        errors += _field_errors(exc, "")
        failed = {e.field.split(".")[0].split("[")[0] for e in errors}
        errors += [e for e in _check_values(cls, data, "") if e.field not in failed]
        raise ValidationFailed("The body has invalid fields.", errors=errors) from None
    errors += check_constraints(obj)
    if errors:
        raise ValidationFailed("The body has invalid fields.", errors=errors)
    return obj


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in attrs.fields(cls))
    return names


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _field_errors(exc: BaseException, path: str) -> list[FieldError]:
    if isinstance(exc, ClassValidationError):
        errors = []
        for sub, attribute in exc.group_exceptions()[0]:
            errors += _field_errors(sub, _join(path, attribute.name))
        for sub in exc.group_exceptions()[1]:
            errors += _field_errors(sub, path)
        return errors
    if isinstance(exc, IterableValidationError):
        errors = []
        for sub, item in exc.group_exceptions()[0]:
            errors += _field_errors(sub, _join(path, item.index))
        return errors
    if isinstance(exc, ForbiddenExtraKeysError):
        return [FieldError(_join(path, key), "unknown field") for key in sorted(exc.extra_fields)]
    if isinstance(exc, KeyError):
        return [FieldError(path, "is required")]
    if isinstance(exc, _WrongType):
        return [FieldError(path, str(exc))]
    if isinstance(exc, ValueError | TypeError):
        return [FieldError(path, "has the wrong type")]
    raise exc


_CHECKS: dict[type, tuple[tuple[str, dict[str, Any], re.Pattern[str] | None], ...]] = {}


def _checks(cls: type) -> tuple[tuple[str, dict[str, Any], re.Pattern[str] | None], ...]:
    if cls not in _CHECKS:
        checks = []
        for field in attrs.fields(cls):
            schema = field.metadata.get("schema")
            if schema:
                pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
                checks.append((field.name, schema, pattern))
        _CHECKS[cls] = tuple(checks)
    return _CHECKS[cls]


def check_constraints(obj: Any, path: str = "") -> list[FieldError]:
    """The field errors of an attrs instance (and those nested in it) against its metadata's JSON Schema keywords."""
    errors = _check_values(type(obj), {name: getattr(obj, name) for name in _field_names(type(obj))}, path)
    for name in _field_names(type(obj)):
        value = getattr(obj, name)
        if attrs.has(type(value)):
            errors += check_constraints(value, _join(path, name))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if attrs.has(type(item)):
                    errors += check_constraints(item, _join(_join(path, name), i))
    return errors


def _check_values(cls: type, values: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    for name, schema, pattern in _checks(cls):
        value = values.get(name)
        if value is None or isinstance(value, Unset):
            continue
        message = _violation(value, schema, pattern)
        if message:
            errors.append(FieldError(_join(path, name), message))
    return errors


def _violation(value: Any, schema: dict[str, Any], pattern: re.Pattern[str] | None) -> str | None:
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"must be at least {schema['minLength']} characters long"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"must be at most {schema['maxLength']} characters long"
        if pattern is not None and not pattern.search(value):
            return f"must match {schema['pattern']}"
    if "enum" in schema and value not in schema["enum"]:
        return "must be one of " + ", ".join(map(str, schema["enum"]))
    if isinstance(value, int | float):
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be at least {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"must be at most {schema['maximum']}"
    return None


MAX_BULK = 1000


def structure_bulk(data: Any, cls: type[T]) -> list[T]:
    """A bulk body: a JSON array of 1..MAX_BULK objects; errors are prefixed with the item index."""
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_BULK:
        raise ValidationFailed(
            f"The body must be a JSON array of 1 to {MAX_BULK} items.",
            errors=[FieldError("", f"must be an array of 1 to {MAX_BULK} items")],
        )
    items: list[T] = []
    errors: list[FieldError] = []
    for i, item in enumerate(data):
        try:
            items.append(structure(item, cls))
        except ValidationFailed as exc:
            errors += exc.prefixed(f"[{i}]").errors
    if errors:
        raise ValidationFailed("Some items are invalid; nothing was created.", errors=errors)
    return items
