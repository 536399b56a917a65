"""Replay a scenario through the agent's rules at accelerated time, and compare with its truth.

The parts are the agent's own: a :class:`~meterlink.agent.store.Store` in a folder, its
:class:`~meterlink.agent.outbox.Outbox`, a :class:`~meterlink.agent.rulebook.Rulebook` whose clock is
the replay's. In time order, each moment's readings are appended to the store and shown to the
rulebook, each confirmed upload slot is recorded, and the rulebook ticks every ``tick`` seconds of
simulated time (so also just after each local midnight plus its settle time). The events are then
read back from the store's events table, the day summaries from its daily table.

    python -m meterlink.replay FILE.toml [--keep DIR]

prints the events raised against the scenario's truth and exits 1 on a miss or a false alarm.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meterlink.agent.daybook import StoredDay
from meterlink.agent.outbox import Outbox
from meterlink.agent.rulebook import MeterRuleSettings, Rulebook
from meterlink.agent.rules.anomalies import AnomalySettings
from meterlink.agent.rules.permits import Intake
from meterlink.agent.store import Store
from meterlink.wire.payload import StoredEvent

from .readings import SiteRun, generate
from .scenario import RULE_KINDS, Scenario, ScenarioError, load

GATEWAY = "scenario-gw"
READINGS, UPLOAD, TICK = 0, 1, 2  # what happens first when two things share a moment


@dataclass(slots=True)
class Replay:
    """What a replay left in the store, and the site run it replayed."""

    scenario: Scenario
    run: SiteRun
    events: list[StoredEvent]  # the rules' events, in the order recorded
    days: list[StoredDay]
    seconds: float  # wall-clock time of the replay

    def rate(self, meter: str, day_index: int) -> float | None:
        """The report rate the rules computed for ``meter`` on the scenario's day ``day_index``."""
        day = self.scenario.days[day_index]
        for d in self.days:
            if d.meter == meter and d.day == day:
                filled, expected = d.summary["slots_filled"], d.summary["slots_expected"]
                return float(filled / expected) if expected else None
        return None


def rulebook_for(scenario: Scenario, outbox: Outbox, clock: list[int], run: SiteRun) -> Rulebook:
    """The rulebook the agent would build from a site config saying what the scenario says."""
    spec = scenario.spec
    meters = [
        MeterRuleSettings(
            id=m.id,
            interval_ms=m.poll_interval * 1000,
            max_flow=m.max_flow,
            one_directional=m.flow_direction == "forward",
            no_data_after_ms=(m.no_data_after or 0) * 1000,
            wrap_at=m.wraps_at,
            calibrated=m.calibrated,
            calibration_months=m.calibration_months,
        )
        for m in spec.meters
    ]
    intakes = [
        Intake(
            id=i.id,
            permit=i.permit,
            annual_permit=i.annual_permit,
            annual_plan=i.annual_plan,
            daily_max=i.daily_max,
            expires=i.permit_expires,
            meters={m.id: -1.0 if m.return_flow else 1.0 for m in spec.meters if m.intake == i.id},
        )
        for i in spec.intakes
    ]
    rules = spec.rules
    settings = AnomalySettings(
        zero_notice_days=rules.zero_notice_days,
        zero_alarm_days=rules.zero_alarm_days,
        large_factor=rules.large_factor,
        report_rate_target=rules.report_rate_target,
        clock_drift_s=rules.clock_drift_s,
    )
    return Rulebook(
        outbox,
        meters,
        zone=scenario.zone,
        intakes=intakes,
        settings=settings,
        upload_interval_ms=spec.site.upload_interval * 1000 if spec.site.upload_interval else None,
        clock_offset=lambda: (run.clock_offset(clock[0]), "kernel"),
        clock=lambda: clock[0],
    )


async def replay(scenario: Scenario, folder: Path) -> Replay:
    """Replay ``scenario`` with a new store in ``folder``."""
    started = time.perf_counter()
    run = generate(scenario)
    store = Store(folder / f"{scenario.name}.db", GATEWAY)
    # The replay judges the rules, not durability (tests/faults does): without an fsync per poll a
    # month replays in seconds instead of minutes.
    store.db.execute("PRAGMA synchronous=OFF")
    outbox = Outbox(store)
    clock = [scenario.start_ms]
    rulebook = rulebook_for(scenario, outbox, clock, run)
    try:
        await rulebook.start()
        daybook = rulebook.daybook
        assert daybook is not None
        moments: list[tuple[int, int, int]] = [(t, READINGS, n) for n, (t, _) in enumerate(run.batches)]
        moments += [(at, UPLOAD, slot) for slot, at in run.uploads]
        tick = scenario.spec.site.tick * 1000
        moments += [(t, TICK, 0) for t in range(scenario.start_ms, scenario.replay_end_ms + 1, tick)]
        moments.sort()
        for at, what, which in moments:
            clock[0] = at
            if what == READINGS:
                readings = run.batches[which][1]
                await outbox.call(store.append, readings)
                rulebook.observe(readings)
            elif what == UPLOAD:
                await outbox.call(daybook.upload_confirmed, which)
            else:
                await rulebook.tick()
        events = await outbox.call(store.pending_events, 1_000_000)
        days = await outbox.call(daybook.days, scenario.days[0], scenario.days[-1])
    finally:
        await outbox.close()
    rule_events = [e for e in events if e.kind in RULE_KINDS]
    return Replay(scenario, run, rule_events, days, time.perf_counter() - started)


def replay_in(scenario: Scenario, folder: Path | None = None) -> Replay:
    """:func:`replay` from synchronous code, in ``folder`` or a temporary one."""
    if folder is not None:
        return asyncio.run(replay(scenario, folder))
    with tempfile.TemporaryDirectory(prefix="meterlink-replay-") as tmp:
        return asyncio.run(replay(scenario, Path(tmp)))


# -- the truth ---------------------------------------------------------------------------------------


def subject_of(event: StoredEvent) -> str:
    """The condition's subject, from its id ``KIND/SUBJECT/STARTED`` (a start never holds a slash)."""
    ident = str(event.detail["id"])
    return ident[len(event.kind) + 1 : ident.rindex("/")]


@dataclass(frozen=True, slots=True)
class Wanted:
    """One event the truth expects: a raise, an escalation to alarm, or a clear."""

    kind: str
    subject: str
    what: str  # "raised", "escalated", "cleared"
    at: int  # ms
    level: str | None

    def describe(self, scenario: Scenario) -> str:
        return f"{self.kind} {self.subject} {self.what} at {_local(scenario, self.at)}" + (
            f" ({self.level})" if self.level else ""
        )


@dataclass(slots=True)
class Comparison:
    """Events expected against events raised, one to one."""

    expected: int = 0
    raised: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)
    rate_misses: list[str] = field(default_factory=list)  # ``[[expect_rate]]`` the rules did not compute


def compare(scenario: Scenario, events: Sequence[StoredEvent]) -> Comparison:
    """Match every expected raise, escalation and clear to one event of the same kind and subject,
    recorded at the time stated or within one tick after it; a condition's escalation and clear
    must carry the id of its raise. What matches nothing is a miss; an event nothing expected, a
    false alarm."""
    tolerance = scenario.spec.site.tick * 1000
    result = Comparison(raised=len(events))
    used: set[int] = set()

    def find(want: Wanted, ident: str | None) -> StoredEvent | None:
        for e in events:
            if e.seq in used or e.kind != want.kind or subject_of(e) != want.subject:
                continue
            if bool(e.detail.get("cleared")) != (want.what == "cleared"):
                continue
            if ident is not None and e.detail["id"] != ident:
                continue
            if want.level is not None and e.detail.get("level") != want.level:
                continue
            if want.at <= e.ts <= want.at + tolerance:
                used.add(e.seq)
                return e
        return None

    for x in scenario.spec.expect:
        wanted = [Wanted(x.kind, x.subject, "raised", scenario.ms(x.raised), x.level)]
        if x.escalated is not None:
            wanted.append(Wanted(x.kind, x.subject, "escalated", scenario.ms(x.escalated), "alarm"))
        if x.cleared is not None:
            wanted.append(Wanted(x.kind, x.subject, "cleared", scenario.ms(x.cleared), None))
        result.expected += len(wanted)
        ident: str | None = None
        for want in wanted:
            found = find(want, ident)
            if found is None:
                result.misses.append(want.describe(scenario))
            elif ident is None:
                ident = str(found.detail["id"])
    for e in events:
        if e.seq not in used:
            what = "cleared" if e.detail.get("cleared") else f"raised ({e.detail.get('level')})"
            result.false_alarms.append(f"{e.kind} {subject_of(e)} {what} at {_local(scenario, e.ts)}: {e.detail['id']}")
    return result


RATE_TOLERANCE = 5e-6  # a rate written with 6 decimals


def check_rates(result: Replay, found: Comparison) -> None:
    """Each ``[[expect_rate]]`` against the generated slots and the day summaries in the store."""
    scenario = result.scenario
    for want in scenario.spec.expect_rate:
        index = (want.day - scenario.days[0]).days
        true = result.run.rate(want.meter, want.day) if 0 <= index < len(scenario.days) else None
        got = result.rate(want.meter, index) if true is not None else None
        for what, value in (("generated", true), ("computed", got)):
            if value is None or abs(value - want.rate) > RATE_TOLERANCE:
                found.rate_misses.append(f"{want.meter} {want.day}: rate {want.rate}, {what} {value}")


def rate_differences(result: Replay) -> dict[tuple[str, int], tuple[float, float | None]]:
    """Per (meter, day index): (the true report rate, the rate the rules computed)."""
    out: dict[tuple[str, int], tuple[float, float | None]] = {}
    for meter in result.scenario.spec.meters:
        for n, day in enumerate(result.scenario.days):
            out[(meter.id, n)] = (result.run.rate(meter.id, day), result.rate(meter.id, n))
    return out


def worst_rate_difference(result: Replay) -> float:
    """The largest |computed - true| report rate over every meter and day (1.0 for a missing day)."""
    return max(abs(true - got) if got is not None else 1.0 for true, got in rate_differences(result).values())


def _local(scenario: Scenario, ms: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ms / 1000, scenario.zone).strftime("%Y-%m-%d %H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meterlink.replay", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", type=Path, help="a scenario file (TOML)")
    parser.add_argument("--keep", type=Path, help="keep the store in this folder (made if missing)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log each event as the agent does")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR, format="%(message)s")
    try:
        scenario = load(args.scenario)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
        result = replay_in(scenario, args.keep)
    except ScenarioError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or args.keep}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    found = compare(scenario, result.events)
    check_rates(result, found)
    print(f"{scenario.name}: {len(scenario.days)} days replayed in {result.seconds:.1f} s")
    print(
        f"events expected {found.expected}, raised {found.raised}, "
        f"misses {len(found.misses)}, false alarms {len(found.false_alarms)}"
    )
    print(f"report rate, largest difference computed vs true: {worst_rate_difference(result):.6f}")
    for line in found.misses:
        print(f"miss: {line}")
    for line in found.false_alarms:
        print(f"false alarm: {line}")
    for line in found.rate_misses:
        print(f"rate: {line}")
    return 1 if found.misses or found.false_alarms or found.rate_misses else 0
