"""Building frozen slotted dataclasses on a hot path.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (its own
``__setattr__`` refuses); the slots' own descriptors set them about twice as fast. The decoders
build one :class:`~.frame.Frame` and one :class:`~.body.Body` per frame, so they use
:func:`slot_setters` instead of the constructor; everything else uses the constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any


def slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of ``cls`` for ``names``, which must be all its fields, in order: a field
    added to the class and not here would be left unset, so that fails at import."""
    declared = tuple(field.name for field in fields(cls))
    if declared != names:
        raise TypeError(f"{cls.__name__} has fields {declared}, the decoder sets {names}")
    return tuple(cls.__dict__[name].__set__ for name in names)
