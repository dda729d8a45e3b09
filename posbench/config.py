"""Strict configuration loading: a YAML mapping (or CLI flags) becomes a dataclass, checked against the dataclass.

Task files (posbench/tasks/schema.py), sweep files (posbench/harness/evaluation/sweep.py) and training files
(posbench/harness/training/config.py) are all read by `build`, so every one of them refuses the same things the same
way: unknown keys, missing required keys, wrong types, values out of range or not among the choices, non-finite
numbers. Every message names the file (or flag) and the dotted key, and shows the value.

A field's type annotation says what it accepts (int, float, str, bool, `X | None`, `list[X]`, `dict[K, V]`,
`Literal[...]`, a nested dataclass, or a union such as `int | str`); `spec(...)` adds ranges, choices and a parser
for values written as text (e.g. "4k" lengths). A dataclass may define `check(self)` for rules across fields: it
raises ConfigError("key ...: message") and the loader puts the file name in front.

This module imports nothing of posbench, so posbench.tasks (which may not import the harness) and the harness both
use it: it sits at the bottom of the dependency direction.
"""
import dataclasses
import math
import types
import typing
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file or flag, the key and the value."""


def spec(default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING, min=None, max=None, above=None,
         choices=None, parse=None, internal=False):
    """A dataclass field with checks: min/max (inclusive), above (exclusive lower bound), choices, and `parse`, a
    function applied to the raw value first (it raises ValueError with a message for a value it cannot read).
    An `internal` field is set by the program, never read from a file."""
    meta = {"min": min, "max": max, "above": above, "choices": choices, "parse": parse, "internal": internal}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def read_yaml(path, error=ConfigError):
    """The parsed YAML document of `path`; a missing, unreadable or invalid file raises `error` naming it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None


def build(cls, raw, where: str, error=ConfigError, flags: dict = None, key: str = ""):
    """An instance of dataclass `cls` from the mapping `raw`, or `error` naming `where` and the key. `flags` maps
    top-level keys to the command-line flags they came from, so that messages name the flag the user typed; `key`
    is where `raw` sits in its file (e.g. "data.sources[1]")."""
    try:
        return _build(cls, raw, key, flags or {})
    except ConfigError as err:
        raise error(f"{where}: {err}") from None


def override(obj, name: str, value, flag: str, error=ConfigError):
    """`obj` with field `name` set from a command-line flag, through the same checks as the file's key."""
    f = next(f for f in dataclasses.fields(obj) if f.name == name)
    try:
        checked = check_value(value, typing.get_type_hints(type(obj))[name], flag, f.metadata)
    except ConfigError as err:
        raise error(str(err)) from None
    obj = dataclasses.replace(obj, **{name: checked})
    try:
        getattr(obj, "check", lambda: None)()
    except ConfigError as err:
        raise error(f"{flag}: {err}") from None
    return obj


def describe_type(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _plural(tp) -> str:
    text = describe_type(tp)
    return {"an integer": "integers", "a number": "numbers", "a string": "strings", "a mapping": "mappings",
            "true or false": "booleans"}.get(text, text)


def _name(key: str) -> str:
    """How a message names a key: `key 'models[0].path'`, a flag as typed (`--samples`), or the whole file."""
    if not key:
        return "the file"
    return key if key.startswith("-") else f"key {key!r}"


def _build(cls, raw, key: str, flags=None):
    if not isinstance(raw, dict):
        raise ConfigError(f"{_name(key)} must be a mapping, got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    for name in raw:
        if name not in fields:
            raise ConfigError(f"unknown key {_join(key, name)!r}; allowed: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        path = (flags or {}).get(name) or _join(key, name)
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required {_name(path)}")
            continue
        values[name] = check_value(raw[name], hints[name], path, f.metadata)
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ConfigError as err:
            raise ConfigError(f"{key}: {err}" if key else str(err)) from None
    return obj


def _join(key: str, name) -> str:
    return f"{key}.{name}" if key else str(name)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_value(value, tp, key: str, meta=None):
    """`value` converted to `tp` and checked against the field's spec, or ConfigError naming `key`."""
    meta = meta or {}
    if meta.get("parse") is not None:
        try:
            value = meta["parse"](value)
        except ConfigError as err:
            raise ConfigError(f"{_name(key)}: {err}") from None
        except (ValueError, TypeError, OverflowError) as err:
            raise ConfigError(f"{_name(key)}: {err}, got {_show(value)}") from None
    value = _convert(value, tp, key)
    _check_range(value, key, meta)
    return value


def _check_range(value, key: str, meta: dict):
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if meta.get("choices") is not None and item not in meta["choices"]:
            raise ConfigError(f"{_name(key)} must be one of {', '.join(map(str, meta['choices']))}, got {_show(item)}")
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        if meta.get("min") is not None and item < meta["min"]:
            raise ConfigError(f"{_name(key)} must be >= {meta['min']}, got {_show(item)}")
        if meta.get("max") is not None and item > meta["max"]:
            raise ConfigError(f"{_name(key)} must be <= {meta['max']}, got {_show(item)}")
        if meta.get("above") is not None and item <= meta["above"]:
            raise ConfigError(f"{_name(key)} must be > {meta['above']}, got {_show(item)}")


def _convert(value, tp, key: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:  # the first type that accepts the value wins (write `int | str`, not `str | int`)
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{_name(key)} must be {describe_type(tp)}, got {_show(value)}")
    if origin is typing.Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise ConfigError(f"{_name(key)} must be one of {', '.join(map(str, args))}, got {_show(value)}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{_name(key)} must be {describe_type(tp)}, got {_show(value)}")
        items = [_convert(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_name(key)} must be a mapping, got {_show(value)}")
        if not args:
            return dict(value)
        return {_convert(k, args[0], f"{key}.{k}"): _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{_name(key)} must be a finite number, got {_show(value)}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{_name(key)} must be {describe_type(tp)}, got {_show(value)}")
