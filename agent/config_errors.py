"""Turning TOML and validation failures into ``path.to.key: reason`` lines a technician can act on."""

from __future__ import annotations

import tomllib
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


def format_validation_error(exc: Exception, data: dict[str, Any]) -> list[str]:
    """One line per problem. Meter entries are named by their id when they have one."""
    if not isinstance(exc, ValidationError):
        return [f"config: {exc}"]
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
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
