"""agent/rules/conditions: raised once, a level change under the same id, cleared once with the
members of its last raise; and, through the store (agent/daybook.py), the same after a restart."""

from __future__ import annotations

from pathlib import Path

from meterlink.agent.daybook import Daybook
from meterlink.agent.rules.conditions import Condition, Conditions
from meterlink.agent.store import Store


def test_raised_once_then_silent_while_it_holds() -> None:
    c = Conditions()
    first = c.update("no_data", "well-1", True, started="1000", detail={"meter": "well-1", "last_ts": 1000})
    assert first is not None
    assert (first.kind, first.detail) == (
        "no_data",
        {"id": "no_data/well-1/1000", "cleared": False, "level": "alarm", "meter": "well-1", "last_ts": 1000},
    )
    again = c.update("no_data", "well-1", True, started="2000", detail={"meter": "well-1", "last_ts": 2000})
    assert again is None and c.open[("no_data", "well-1")].id == "no_data/well-1/1000"


def test_a_level_change_is_raised_under_the_same_id_and_the_clear_carries_the_last_raise() -> None:
    c = Conditions()
    c.update("volume_zero", "m", True, started="2026-11-03", level="notice", detail={"days": 7})
    alarm = c.update("volume_zero", "m", True, started="2026-11-04", level="alarm", detail={"days": 30})
    assert alarm is not None
    assert alarm.detail == {"id": "volume_zero/m/2026-11-03", "cleared": False, "level": "alarm", "days": 30}
    cleared = c.update("volume_zero", "m", False, started="", level="notice", detail={"days": 0})
    assert cleared is not None
    assert cleared.detail == {"id": "volume_zero/m/2026-11-03", "cleared": True, "level": "alarm", "days": 30}
    assert c.update("volume_zero", "m", False, started="") is None  # cleared once
    assert not c.is_open("volume_zero", "m")


def test_subjects_and_kinds_are_separate_conditions() -> None:
    c = Conditions()
    assert c.update("volume_negative", "m", True, started="1") is not None
    assert c.update("volume_negative", "m/flow", True, started="1") is not None
    assert c.update("volume_large", "m", True, started="1") is not None
    assert c.update("volume_negative", "m", False, started="") is not None
    assert c.is_open("volume_negative", "m/flow") and c.is_open("volume_large", "m")


def test_changes_are_handed_over_once_for_the_store() -> None:
    c = Conditions()
    c.update("clock_drift", "gateway", True, started="5")
    c.update("no_data", "m", True, started="6")
    c.update("no_data", "m", False, started="")
    changes = c.take_changes()
    assert set(changes) == {("clock_drift", "gateway"), ("no_data", "m")}
    assert changes[("no_data", "m")] is None  # closed again: the store deletes it
    assert isinstance(changes[("clock_drift", "gateway")], Condition)
    assert c.take_changes() == {}


def test_open_conditions_survive_a_restart_through_the_store(tmp_path: Path) -> None:
    """Restarted, the agent neither raises an open condition again nor forgets to clear it."""
    store = Store(tmp_path / "s.db", "gw")
    daybook = Daybook(store)
    before = Conditions(daybook.open_conditions())
    raised = before.update("no_data", "well-1", True, started="1000", detail={"meter": "well-1"})
    assert raised is not None
    daybook.record([raised], before.take_changes(), now=1000)
    store.close()

    store = Store(tmp_path / "s.db", "gw")
    daybook = Daybook(store)
    after = Conditions(daybook.open_conditions())
    assert after.update("no_data", "well-1", True, started="9000", detail={"meter": "well-1"}) is None
    cleared = after.update("no_data", "well-1", False, started="")
    assert cleared is not None and cleared.detail["id"] == "no_data/well-1/1000"
    assert cleared.detail["meter"] == "well-1"
    daybook.record([cleared], after.take_changes(), now=2000)
    assert daybook.open_conditions() == []
    events = [(e.kind, e.detail["cleared"], e.detail["id"]) for e in store.pending_events(10)]
    assert events == [("no_data", False, "no_data/well-1/1000"), ("no_data", True, "no_data/well-1/1000")]
    store.close()
