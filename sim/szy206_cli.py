"""``meterlink sim szy206-meter``: simulated SZY206 meters on TCP and/or a pty until SIGINT/SIGTERM.

Each endpoint is announced on stdout in one flushed line that scripts can read::

    szy206 tcp listening on 127.0.0.1:5021 stations=530381:13,530381:14
    szy206 pty /dev/pts/7 stations=530381:13,530381:14

With ``--print-confirms``, each self-report the agent confirms is printed the moment the confirm
arrives, since from then on the meter no longer holds it (flow/volume per pair, ``-`` absent)::

    confirmed 530381:13 afn=C0 fcb=3 pairs=36.625/123456

Arguments are checked here rather than by argparse types, so that every mistake ends in one line
on stderr and exit code 2 (argparse would add a usage block).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from meterlink.drivers.szy206.meter import MAX_PAIRS
from meterlink.protocols.szy206 import INVALID, Address, Frame, SZY206Error, parse_flow_report

from .cliargs import UsageError, add_endpoint_arguments, check_endpoints, positive, until_signalled, whole_number
from .cliargs import faults as parse_faults
from .szy206_meter import Fault, SimSzy206Meter
from .szy206_meter_server import Szy206SimServer

log = logging.getLogger("meterlink.sim.szy206")

PROG = "meterlink sim szy206-meter"
DEFAULT_METER = "530381:13:1"
MAX_STATION = 65534  # 65535 is broadcast, 0 invalid


@dataclass(frozen=True, slots=True)
class MeterPlan:
    address: Address
    pairs: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The checked arguments."""

    tcp_port: int | None
    pty: bool
    host: str
    meters: list[MeterPlan]
    report_interval: float | None
    confirm_timeout: float
    tp_len: int
    faults: list[tuple[int | None, Fault]]  # None: every meter
    seed: int
    speed: float
    print_confirms: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``meterlink sim szy206-meter`` to ``parser``."""
    add_endpoint_arguments(
        parser,
        tcp_help="listen for the agent on TCP PORT",
        pty_help="serve on a new pty (a shared serial line)",
        faults=Fault,
        target="station",
    )
    parser.add_argument(
        "--meter",
        action="append",
        metavar="DIVISION:STATION[:PAIRS]",
        help=f"a simulated meter, repeatable (default {DEFAULT_METER}); PAIRS = flow/volume channels",
    )
    parser.add_argument(
        "--report-interval", metavar="S", help="self-report (C0H) every S seconds (default: only answer queries)"
    )
    parser.add_argument(
        "--confirm-timeout",
        default="3",
        metavar="S",
        help="resend a self-report after S seconds unconfirmed (default 3)",
    )
    parser.add_argument("--tp", default="5", metavar="0|5|7", help="time label bytes: 0 none, 5 SZY206, 7 SL/T 427")
    parser.add_argument(
        "--print-confirms",
        action="store_true",
        help="print a line for each self-report the agent confirms (the meter then drops its copy)",
    )


def _meters(specs: list[str]) -> list[MeterPlan]:
    out: list[MeterPlan] = []
    seen: set[Address] = set()
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise UsageError(f"--meter {spec}: expected DIVISION:STATION[:PAIRS]")
        division = parts[0].upper()
        station = whole_number(parts[1], f"--meter {spec}: station", 1, MAX_STATION)
        pairs = whole_number(parts[2], f"--meter {spec}: pairs", 1, MAX_PAIRS) if len(parts) == 3 else 1
        try:
            address = Address(division=division, station=station)
        except SZY206Error:
            raise UsageError(f"--meter {spec}: division {parts[0]!r} is not a 6-digit code") from None
        if address in seen:
            raise UsageError(f"--meter {spec}: {division}:{station} is already taken")
        seen.add(address)
        out.append(MeterPlan(address, pairs))
    return out


def check(args: argparse.Namespace) -> Plan:
    """Turn parsed arguments into a :class:`Plan`.

    Raises:
        UsageError: the first thing wrong, in one line.
    """
    where = check_endpoints(args)
    meters = _meters(args.meter or [DEFAULT_METER])
    interval = None if args.report_interval is None else positive(args.report_interval, "--report-interval")
    confirm_timeout = positive(args.confirm_timeout, "--confirm-timeout")
    tp_len = whole_number(args.tp, "--tp", 0, 7)
    if tp_len not in (0, 5, 7):
        raise UsageError(f"--tp: {tp_len} must be 0, 5 or 7")
    faults = parse_faults(args.fault or [], Fault, "station", MAX_STATION, {m.address.station for m in meters})
    return Plan(
        where.tcp_port,
        where.pty,
        where.host,
        meters,
        interval,
        confirm_timeout,
        tp_len,
        faults,
        where.seed,
        where.speed,
        args.print_confirms,
    )


def build_meters(plan: Plan) -> list[SimSzy206Meter]:
    """The meters a plan describes, faults switched on."""
    meters = [
        SimSzy206Meter(
            m.address,
            pairs=m.pairs,
            seed=plan.seed,
            speed=plan.speed,
            tp_len=plan.tp_len,
            report_interval=plan.report_interval,
        )
        for m in plan.meters
    ]
    for station, fault in plan.faults:
        for meter in meters:
            if station is None or meter.address.station == station:
                meter.set_fault(fault)
    return meters


def confirmed_line(meter: SimSzy206Meter, report: Frame) -> str:
    """``confirmed 530381:13 afn=C0 fcb=3 pairs=36.625/123456``: one confirmed report."""
    pairs = " ".join(
        "/".join("-" if v is None else "invalid" if v is INVALID else str(v) for v in pair)
        for pair in parse_flow_report(report).meters
    )
    return f"confirmed {meter.name} afn={report.afn:02X} fcb={report.fcb} pairs={pairs}"


def _print_confirmed(meter: SimSzy206Meter, report: Frame) -> None:
    print(confirmed_line(meter, report), flush=True)


def _fail(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM. Returns 0, 2 on a bad argument, 1 if an endpoint cannot open."""
    try:
        plan = check(args)
    except UsageError as exc:
        _fail(str(exc))
        return 2
    meters = build_meters(plan)
    server = Szy206SimServer(
        meters, confirm_timeout=plan.confirm_timeout, on_confirmed=_print_confirmed if plan.print_confirms else None
    )
    try:
        if plan.tcp_port is not None:
            try:
                port = await server.start_tcp(plan.host, plan.tcp_port)
            except OSError as exc:
                _fail(f"cannot listen on {plan.host}:{plan.tcp_port}: {exc.strerror or exc}")
                return 1
            print(f"szy206 tcp listening on {plan.host}:{port} stations={server.stations}", flush=True)
        if plan.pty:
            try:
                path = server.start_pty()
            except OSError as exc:
                _fail(f"cannot open a pty: {exc.strerror or exc}")
                return 1
            print(f"szy206 pty {path} stations={server.stations}", flush=True)
        await until_signalled()
    finally:
        await server.stop()
        for meter in meters:
            log.info(
                "event=sim_szy206_meter_stats station=%s queries=%d reports=%d resends=%d confirms=%d",
                meter.name,
                meter.queries_answered,
                meter.reports_sent,
                meter.report_resends,
                meter.confirms_received,
            )
    return 0
