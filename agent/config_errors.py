"""Turning TOML and validation failures into ``path.to.key: reason`` lines a technician can act on."""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import ConfigError
from .osuser import effective_user


class ConfigLines(ValueError):
    """Several ``path.to.key: reason`` lines from one validator, each printed as a line of its own."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def read_toml(file: Path) -> dict[str, Any]:
    """Parse the file, or raise ConfigError with one line naming the file and the syntax problem."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{file}: not readable by user {effective_user()}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")  # the byte order mark older Windows Notepad writes: not TOML
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid TOML: nested too deeply") from None


# A bus is a tagged union (``type``): pydantic then puts the tag in an error's location and words a
# missing key or one of the other type's keys in its own way. The lines stay as they read when the
# bus was one model whose validator named them: "a serial bus needs device", "host do(es) not apply".
BUS_KEYS = {"serial": {"device", "baudrate", "parity", "stopbits", "bytesize"}, "tcp": {"host", "port"}}
BUS_NEEDS = {
    "serial": ("device", "a serial bus needs device (e.g. /dev/ttyUSB0)"),
    "tcp": ("host", "a tcp bus needs host"),
}


def _bus_errors(errors: list[Any]) -> list[Any]:
    """The errors with the bus's tag taken out of their location and bus lines worded as before."""
    out: list[Any] = []
    per_bus: dict[tuple[Any, ...], list[Any]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        if loc[:1] != ("buses",) or len(loc) < 2:
            out.append(err)
        elif err["type"] == "union_tag_invalid":
            tags = str(err.get("ctx", {}).get("expected_tags", "")).split(", ")
            out.append({**err, "loc": (*loc, "type"), "msg": f"Input should be {' or '.join(tags)}"})
        elif err["type"] == "union_tag_not_found":
            out.append({**err, "loc": (*loc, "type"), "type": "missing"})
        elif err["type"] == "model_attributes_type" and len(loc) == 2:  # not a table: as the one model said
            out.append({**err, "msg": "Input should be a valid dictionary or instance of BusConfig"})
        elif len(loc) >= 3 and loc[2] in BUS_KEYS:
            per_bus.setdefault(loc[:3], []).append(err)
        else:
            out.append(err)
    for (*at, tag), errs in per_bus.items():
        out += _bus_lines(tuple(at), str(tag), errs)
    return out


def _bus_lines(at: tuple[Any, ...], tag: str, errors: list[Any]) -> list[Any]:
    """One bus's errors: field errors first; else the key it needs; else the other type's keys."""
    needed, needs = BUS_NEEDS[tag]
    other = set().union(*(keys for t, keys in BUS_KEYS.items() if t != tag))
    missing, stray, rest = [], [], []
    for err in errors:
        key = err["loc"][3] if len(err["loc"]) > 3 else None
        if key == needed and err["type"] in ("missing", "string_too_short"):
            missing.append(err)
        elif key in other and err["type"] == "extra_forbidden":
            stray.append(str(key))
        else:
            rest.append({**err, "loc": (*at, *err["loc"][3:])})
    if rest:
        return rest
    if missing:
        return [{"type": "bus", "loc": at, "msg": needs}]
    return [{"type": "bus", "loc": at, "msg": f"{', '.join(sorted(stray))} do(es) not apply to a {tag} bus"}]


# A meter is a tagged union too (agent/config_meters.py meter_kind): the tag comes out of an error's location,
# and a key of another kind, forbidden there, says which kinds it is for and what made this one its kind.
METER_KIND_NAMES = {"modbus": "Modbus meters", "szy206": "SZY206 meters", "manual": "meters read by hand"}
METER_KIND_BECAUSE = {
    "modbus": "this one has a bus and no address: Modbus",
    "szy206": "this one has an address: SZY206",
    "manual": "this one has no bus, so it is read by hand; give it a bus to poll it",
}


def _meter_errors(errors: list[Any], meter_keys: Mapping[str, Collection[str]]) -> list[Any]:
    """The errors with the meter's kind taken out of their location, another kind's keys worded so."""
    out: list[Any] = []
    for err in errors:
        loc = tuple(err["loc"])
        if loc[:1] != ("meters",) or len(loc) < 3 or loc[2] not in meter_keys:
            out.append(err)
            continue
        kind, rest = str(loc[2]), loc[3:]
        err = {**err, "loc": (*loc[:2], *rest)}
        owners = [k for k, keys in meter_keys.items() if rest and rest[0] in keys]
        if err["type"] == "extra_forbidden" and len(rest) == 1 and owners:
            polled = {"modbus", "szy206"} == set(owners)
            named = "meters on a bus" if polled else " and ".join(METER_KIND_NAMES[k] for k in owners)
            err = {**err, "type": "meter_kind", "msg": f"only for {named} ({METER_KIND_BECAUSE[kind]})"}
        out.append(err)
    return out


def format_validation_error(
    exc: Exception, data: dict[str, Any], meter_keys: Mapping[str, Collection[str]] | None = None
) -> list[str]:
    """One line per problem. Meter entries are named by their id when they have one.

    ``meter_keys``: each kind of meter's keys, when the model has meters of several kinds.
    """
    if not isinstance(exc, ValidationError):
        return [f"config: {exc}"]
    lines = []
    errors = _bus_errors(list(exc.errors(include_url=False, include_input=False)))
    for err in _meter_errors(errors, meter_keys or {}):
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, ConfigLines):
            lines += cause.lines
            continue
        path = _path(err["loc"], data)
        reason = " ".join(_reason(err).split())  # one line, whatever the message held
        lines.append(f"{path}: {reason}" if path else reason)
    # pydantic may report one cause on several branches; keep the first of each line.
    return list(dict.fromkeys(lines))


def _label(text: str) -> str:
    """A key or an id as one printable token: a line break in it must not split the error line."""
    if text and text.isprintable():
        return text
    return repr(text)


def _path(loc: tuple[int | str, ...], data: Any) -> str:
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"#{part + 1}"
            if isinstance(node, list) and 0 <= part < len(node):
                item = node[part]
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    label = _label(item["id"])
                node = item
            else:
                node = None
            out += f"[{label}]"
            continue
        node = node.get(part) if isinstance(node, dict) else None
        out += f".{_label(str(part))}" if out else _label(str(part))
    return out


def _reason(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        return "unknown key (misspelt? it would be ignored, so it is an error)"
    if kind == "missing":
        return "required, missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    return msg
