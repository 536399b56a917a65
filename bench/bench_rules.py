"""The platform's rules over a month of a site: events expected vs raised, report rates vs the truth.

    .venv/bin/python bench/bench_rules.py [--scenario NAME|FILE] [--dir DIR]

Replays replay/scenarios/month-of-anomalies.toml (30 days, three meters, every anomaly the rules
know, across a new year) through the agent's store and rulebook at accelerated time, and compares
the events in the store with the scenario's truth, event by event (misses and false alarms must be
0), and each meter's report rate per day, as the day summaries give it, with the share of its
slots the simulated meter answered. The store runs without an fsync per poll (durability is not
what this measures).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from _common import figure, header

from meterlink.replay.run import check_rates, compare, replay_in, worst_rate_difference
from meterlink.replay.scenario import FOLDER, load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="month-of-anomalies", help="a name in replay/scenarios/, or a file")
    parser.add_argument("--dir", type=Path, help="where the store goes (default: a temporary folder)")
    args = parser.parse_args()
    logging.getLogger("meterlink.rules").setLevel(logging.ERROR)  # the events are compared, not logged
    path = Path(args.scenario) if args.scenario.endswith(".toml") else FOLDER / f"{args.scenario}.toml"
    scenario = load(path)
    meters = scenario.spec.meters
    header(f"rules: {scenario.name}, {len(scenario.days)} days, {len(meters)} meters, replayed at accelerated time")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = replay_in(scenario, Path(tmp))
    found = compare(scenario, result.events)
    check_rates(result, found)
    readings = sum(len(batch) for _, batch in result.run.batches)
    figure("events expected (raises, escalations, clears)", found.expected, "events")
    figure("events raised", found.raised, "events")
    figure("misses (target 0)", len(found.misses), "events")
    figure("false alarms (target 0)", len(found.false_alarms), "events")
    figure("meter-days of report rate compared", len(meters) * len(scenario.days), "days")
    # Printed in full: a difference of one slot in 288 would round to 0.003.
    print(f"   {'report rate, largest |computed - true|':<52} {worst_rate_difference(result):>14.2e}", flush=True)
    figure("report rates stated in the scenario, not matched", len(found.rate_misses), "days")
    figure("readings replayed", readings, "readings")
    figure("replay time", result.seconds, "s")
    figure("simulated days per second", len(scenario.days) / result.seconds, "days/s")
    for line in found.misses:
        print(f"   miss: {line}")
    for line in found.false_alarms:
        print(f"   false alarm: {line}")
    for line in found.rate_misses:
        print(f"   rate: {line}")


if __name__ == "__main__":
    main()
