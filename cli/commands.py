"""What each ``meterlink`` command does, given its parsed arguments (cli/main.py builds the parser).

Each handler imports its command's code when it runs, so ``meterlink run`` loads the agent and
nothing of the other commands, the simulators or the demo (tests/packaging/test_agent_modules.py).
A handler returns the exit code, or raises: ConfigError and MeterlinkError become one line on
stderr in cli/main.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from meterlink.agent.errors import ConfigError, MeterlinkError

# `meterlink sim KIND`: the module under meterlink.sim that runs it, and what it is.
SIMULATORS = {
    "modbus": ("modbus_cli", "simulated Modbus flowmeters over TCP and/or a pty"),
    "station": ("station_cli", "a simulated SZY206 central station that site terminals report to"),
    "sl651-center": ("sl651_center_cli", "a simulated SL651 centre that stations report to"),
    "szy206-meter": ("szy206_cli", "simulated flowmeters that speak SZY206, over TCP and/or a pty"),
}


def decode_options(p: argparse.ArgumentParser) -> None:
    """``decode``'s options: on the main parser, and again among the hex words (``_decode_rest``)."""
    p.add_argument("--file", type=Path, help="read the frame as raw bytes from this file instead")
    p.add_argument("--tp", type=int, choices=[0, 5, 7], help="time label length (default: inferred)")


def _decode_rest(args: argparse.Namespace) -> None:
    """Read the words after the protocol: hex digits with --file/--tp anywhere among them."""
    p = argparse.ArgumentParser(
        prog=f"meterlink decode {args.protocol}",
        description="decode a protocol frame to JSON",
        argument_default=argparse.SUPPRESS,
    )  # only what is given here
    p.add_argument("hex", nargs="*", metavar="HEX", help="the frame in hex, with or without spaces")
    decode_options(p)
    words, args.hex = args.hex, []
    vars(args).update(vars(p.parse_intermixed_args(words)))  # options given here override earlier ones


def cmd_check_config(args: argparse.Namespace) -> int:
    from meterlink.agent import config as cfgmod
    from meterlink.agent import preflight

    config = cfgmod.load(args.config)
    found = preflight.check(config)
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if found.errors:
        raise ConfigError(*found.errors)
    print(cfgmod.describe(config))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from meterlink.agent import keys
    from meterlink.wire.jws import thumbprint

    key_path, pub_path = keys.generate_keypair(args.out, force=args.force)
    kid = thumbprint(keys.load_public_key(pub_path))
    print(f"wrote {key_path} (private, mode 0600) and {pub_path} (public)")
    print(f"kid {kid}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import run_verify

    return run_verify(args.pubkey, args.input)


def cmd_run(args: argparse.Namespace) -> int:
    from meterlink.agent import config as cfgmod
    from meterlink.agent import logsetup, preflight
    from meterlink.agent.service import Agent

    config = cfgmod.load(args.config)
    found = preflight.check(config)  # what check-config checks, errors and warnings alike
    if found.errors:
        raise ConfigError(*found.errors)
    logsetup.from_config(config.log, args.log_level)
    for warning in found.warnings:
        logging.getLogger("meterlink.agent").warning("event=config_warning problem=%r", warning)
    agent = Agent(config, config_path=args.config)
    agent.build()  # key and store problems end here, as one line, before anything starts

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        loop.add_signal_handler(signal.SIGHUP, agent.reload)  # systemctl reload: the site file again
        await agent.run()

    asyncio.run(main())
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    import json

    from meterlink.protocols.szy206.describe import decode_report
    from meterlink.protocols.szy206.errors import SZY206Error

    _decode_rest(args)
    if args.file is not None and args.hex:
        raise MeterlinkError("give the frame as hex or as --file, not both")
    if args.file is not None:
        try:
            frame: bytes | str = args.file.read_bytes()
        except OSError as exc:
            raise MeterlinkError(f"{args.file}: {exc.strerror}") from None
    elif args.hex:
        frame = " ".join(args.hex)
    else:
        raise MeterlinkError("no frame given (hex on the command line, or --file FILE)")
    if args.protocol == "sl651":
        return _decode_sl651(frame)
    try:
        view = decode_report(frame, tp_len=args.tp)
    except SZY206Error as exc:
        detail = str(exc)
        reason = getattr(exc, "reason", "invalid frame")
        raise MeterlinkError(f"{reason}: {detail}" if detail and detail != reason else reason) from None
    print(json.dumps(view, ensure_ascii=False))
    return 0


def _decode_sl651(frame: bytes | str) -> int:
    import json

    from meterlink.protocols.sl651 import SL651Error, decode_input

    try:
        view = decode_input(frame)
    except SL651Error as exc:
        raise MeterlinkError(f"{exc.reason}: {exc}") from None
    print(json.dumps(view, ensure_ascii=False))
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    import importlib

    module_name, description = SIMULATORS[args.kind]
    module = importlib.import_module(f"meterlink.sim.{module_name}")
    parser = argparse.ArgumentParser(prog=f"meterlink sim {args.kind}", description=description)
    module.add_arguments(parser)
    code: int = asyncio.run(module.run(parser.parse_args(args.options)))
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def cmd_read(args: argparse.Namespace) -> int:
    from .read_raw import given, run_read_raw

    if args.config is None:
        if args.meter:
            print("meterlink read: --meter picks meters of a config: give -c FILE", file=sys.stderr)
            return 2
        return run_read_raw(args)
    if without := given(args):
        both = f"-c reads the config's meters; {' '.join(without)} reads one unit without one: not both"
        print(f"meterlink read: {both}", file=sys.stderr)
        return 2
    from meterlink.agent.commission import read_once

    return asyncio.run(read_once(args.config, args.meter))


def cmd_scan(args: argparse.Namespace) -> int:
    from .scan import run_scan

    return run_scan(args)


def cmd_status(args: argparse.Namespace) -> int:
    from meterlink.agent.status import show_status

    return show_status(args.config, as_json=args.json)


def cmd_report(args: argparse.Namespace) -> int:
    from meterlink.agent.report import period_of
    from meterlink.agent.report_view import run_report

    given = [(kind, text) for kind in ("day", "month", "quarter") if (text := getattr(args, kind)) is not None]
    try:
        if len(given) > 1:
            raise ValueError(f"give one of --day, --month, --quarter, not {' and '.join('--' + k for k, _ in given)}")
        period = period_of(*given[0]) if given else None
    except ValueError as exc:
        print(f"meterlink report: {exc}", file=sys.stderr)
        return 2
    return run_report(args.config, period, args.meter, as_json=args.json, per_day=args.days)


def cmd_manual_reading(args: argparse.Namespace) -> int:
    from meterlink.agent import config as cfgmod
    from meterlink.agent.manual_command import command

    return command(
        cfgmod.load(args.config),
        meter=args.meter,
        value=args.value,
        photo=args.evidence,
        at=args.at,
        by=args.by,
        replacement=args.replacement,
        quantity=args.quantity,
        wait=args.wait,
    )


def cmd_profiles(args: argparse.Namespace) -> int:
    from meterlink.agent.commission import show_profiles

    return show_profiles(args.name)
