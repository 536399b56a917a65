"""Conditions that are raised once when they start and cleared once when they end.

A platform must be able to tell a repeat of an alarm from a new one, and pair each alarm with its
end. So every condition has a stable ``id``: its kind, its subject (a meter, an intake, the gateway),
and the moment or day it started, e.g. ``volume_zero/intake-1/2026-11-02``. The same data always
gives the same id, so a condition found again after a restart keeps its id.

An event is emitted when a condition starts (``cleared: false``), when its level changes (a notice
that becomes an alarm: same id, ``cleared: false``), and when it ends (``cleared: true``, with the
members of its last raise). Between those, evaluating it again emits nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RuleEvent:
    """An event for the ``/events`` topic: ``kind`` and its members (``id``, ``cleared``, ``level``, ...)."""

    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Condition:
    """An open condition, as the store keeps it across restarts."""

    kind: str
    subject: str
    id: str
    level: str
    detail: dict[str, Any] = field(default_factory=dict)


class Conditions:
    """The open conditions of one gateway, keyed by (kind, subject)."""

    def __init__(self, open_conditions: Iterable[Condition] = ()) -> None:
        self.open: dict[tuple[str, str], Condition] = {(c.kind, c.subject): c for c in open_conditions}
        self.changed: dict[tuple[str, str], Condition | None] = {}  # since the last take_changes()

    def update(
        self,
        kind: str,
        subject: str,
        active: bool,
        *,
        started: str,
        level: str = "alarm",
        detail: dict[str, Any] | None = None,
    ) -> RuleEvent | None:
        """Say whether the condition (kind, subject) holds now; returns the event this causes, if any.

        ``started`` names when it began (a day or a time: part of the id when it starts now);
        ``detail`` are the kind's own members, sent with the raise and, unchanged, with the clear.
        """
        key = (kind, subject)
        current = self.open.get(key)
        if active:
            if current is not None and current.level == level:
                return None
            ident = current.id if current is not None else f"{kind}/{subject}/{started}"
            condition = Condition(kind, subject, ident, level, dict(detail or {}))
            self.open[key] = self.changed[key] = condition
            return RuleEvent(kind, {"id": ident, "cleared": False, "level": level, **condition.detail})
        if current is None:
            return None
        del self.open[key]
        self.changed[key] = None
        return RuleEvent(kind, {"id": current.id, "cleared": True, "level": current.level, **current.detail})

    def is_open(self, kind: str, subject: str) -> bool:
        return (kind, subject) in self.open

    def take_changes(self) -> dict[tuple[str, str], Condition | None]:
        """What opened, changed (a Condition) or closed (None) since the last call, for the store."""
        changed, self.changed = self.changed, {}
        return changed
