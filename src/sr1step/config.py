"""Typed dataclass configs: strict loading from dicts/TOML/JSON, dotted overrides, saving.

A config is a (nested) dataclass. Loading is strict: an unknown key is an error with a
"did you mean" hint, and values are checked against the field types. Overrides use dotted
paths and TOML literals: ``train.lr=1e-5``, ``model.unet.channel_mult=[1,2,2,4]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or key is wrong; the message names the dotted path."""


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3)
    initials = "".join(word[0] for word in name.split("_") if word)  # learning_rate -> lr
    close += [o for o in options if o == initials and o not in close]
    close = close or difflib.get_close_matches(name, options, n=3, cutoff=0.4)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def unknown_name_error(kind: str, name: str, options: list[str]) -> ConfigError:
    """The error for a name that is not in a registry or a dataclass, with suggestions."""
    return ConfigError(
        f"unknown {kind} {name!r}{_suggest(name, options)}; choose from: {', '.join(sorted(options))}"
    )


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{path}: {value!r} does not match {tp}: {'; '.join(errors)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            items = [_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")
    return value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in types_:
            raise ConfigError(f"unknown key {where!r}{_suggest(key, list(types_))}")
        kwargs[key] = _coerce(value, types_[key], where)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{path or cls.__name__}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Plain dict/list/scalars of a (nested) dataclass, ready for JSON or TOML."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_literal(text: str) -> Any:
    """A TOML literal (``1e-5``, ``true``, ``[1, 2]``, ``"x"``); anything else is a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def overrides_to_dict(overrides: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        keys = key.strip().split(".")
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = parse_literal(text.strip())
    return out


def apply_overrides(obj: T, overrides: list[str] | dict[str, Any]) -> T:
    """A copy of dataclass ``obj`` with dotted overrides applied and type-checked."""
    update = overrides_to_dict(overrides) if isinstance(overrides, list) else overrides
    return from_dict(type(obj), merge(to_dict(obj), update))


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON file into a dict."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return tomllib.loads(text)


def to_toml(data: dict[str, Any]) -> str:
    """Minimal TOML writer for config dicts (scalars, lists, nested tables)."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if v is None:
            raise ConfigError("TOML has no null; drop None fields before writing")
        raise ConfigError(f"cannot write {v!r} as TOML")

    lines: list[str] = []

    def table(d: dict[str, Any], prefix: str) -> None:
        plain = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
        nested = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and plain:
            lines.append(f"[{prefix}]")
        for k, v in plain.items():
            lines.append(f"{k} = {scalar(v)}")
        if plain:
            lines.append("")
        for k, v in nested.items():
            table(v, f"{prefix}.{k}" if prefix else k)

    table(data, "")
    return "\n".join(lines)
