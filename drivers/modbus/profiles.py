"""Built-in meter profiles, kept as JSON data files in ``profile_data/`` and shipped in the wheel."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from .registermap import Profile

_PACKAGE = "meterlink.drivers.modbus.profile_data"


def names() -> list[str]:
    """The names of the built-in profiles, sorted."""
    folder = resources.files(_PACKAGE)
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


@cache
def load(name: str) -> Profile:
    """One built-in profile, validated.

    Raises:
        KeyError: no profile of that name.
    """
    if name not in names():
        raise KeyError(name)
    text = resources.files(_PACKAGE).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return Profile.model_validate(json.loads(text))
