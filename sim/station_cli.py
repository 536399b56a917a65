"""``meterlink sim station``: a simulated SZY206 central station until SIGINT/SIGTERM.

On start it prints one flushed line that scripts can read::

    szy206 station listening on 127.0.0.1:5021

then one JSON line per frame, in either direction, so a person or a script can follow the
conversation::

    {"dir": "in", "peer": "127.0.0.1:40112", "frame": {... describe() output ...}}

Arguments are checked here rather than by argparse types, so that every mistake ends in one line
on stderr and exit code 2 (argparse would add a usage block).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass

from .cliargs import UsageError, until_signalled, whole_number
from .station import FrameRecord, Station

log = logging.getLogger("meterlink.sim.station")

PROG = "meterlink sim station"


@dataclass(frozen=True, slots=True)
class Plan:
    """The checked arguments."""

    host: str
    port: int
    tp_len: int | None
    confirm_tp: bool
    confirm_mode: int | None
    drop_confirms: int
    query_interval: float | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``meterlink sim station`` to ``parser``."""
    parser.add_argument("--listen", metavar="PORT", help="TCP port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--tp", metavar="0|5|7", help="Tp length of terminal frames (default: infer per frame)")
    parser.add_argument("--no-confirm-tp", action="store_true", help="confirm reports without a Tp")
    parser.add_argument(
        "--confirm-mode", default="1", metavar="0|1|2|3|none", help="work-mode byte of confirms (default 1)"
    )
    parser.add_argument("--drop-confirms", default="0", metavar="N", help="drop the first N confirms (default 0)")
    parser.add_argument("--query-interval", metavar="S", help="query B0H of every terminal every S seconds")


def check(args: argparse.Namespace) -> Plan:
    """Turn parsed arguments into a :class:`Plan`.

    Raises:
        UsageError: the first thing wrong, in one line.
    """
    if args.listen is None:
        raise UsageError("give --listen PORT (0 = any free port)")
    port = whole_number(args.listen, "--listen", 0, 65535)
    tp_len = None
    if args.tp is not None:
        if args.tp not in ("0", "5", "7"):
            raise UsageError(f"--tp: {args.tp!r} is not 0, 5 or 7")
        tp_len = int(args.tp)
    mode_text = args.confirm_mode.lower()
    if mode_text not in ("0", "1", "2", "3", "none"):
        raise UsageError(f"--confirm-mode: {args.confirm_mode!r} is not 0, 1, 2, 3 or none")
    confirm_mode = None if mode_text == "none" else int(mode_text)
    drop = whole_number(args.drop_confirms, "--drop-confirms", 0, 2**31 - 1)
    interval = None
    if args.query_interval is not None:
        try:
            interval = float(args.query_interval)
        except ValueError:
            raise UsageError(f"--query-interval: {args.query_interval!r} is not a number") from None
        if not (math.isfinite(interval) and interval > 0):
            raise UsageError(f"--query-interval: {args.query_interval} must be a positive number")
    return Plan(args.host, port, tp_len, not args.no_confirm_tp, confirm_mode, drop, interval)


def _print_record(record: FrameRecord) -> None:
    print(json.dumps(record.to_json(), ensure_ascii=False), flush=True)


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM. Returns 0, 2 on a bad argument, 1 if the port cannot be bound."""
    try:
        plan = check(args)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return 2
    station = Station(
        host=plan.host,
        port=plan.port,
        tp_len=plan.tp_len,
        confirm_tp=plan.confirm_tp,
        confirm_mode=plan.confirm_mode,
        drop_confirms=plan.drop_confirms,
        query_interval=plan.query_interval,
        on_record=_print_record,
    )
    try:
        try:
            port = await station.start()
        except OSError as exc:
            print(
                f"{PROG}: cannot listen on {plan.host}:{plan.port}: {exc.strerror or exc}", file=sys.stderr, flush=True
            )
            return 1
        print(f"szy206 station listening on {plan.host}:{port}", flush=True)
        await until_signalled()
    finally:
        await station.stop()
        log.info(
            "event=station_stats connections=%d reports=%d confirms_sent=%d confirms_dropped=%d frames_rejected=%d",
            station.connections,
            len(station.reports),
            station.confirms_sent,
            station.confirms_dropped,
            station.frames_rejected,
        )
    return 0
