"""The ``meterlink`` command: the agent, commissioning tools, the simulators and the demo.

Every user error ends in one clear line on stderr and a non-zero exit, never a traceback:
1 for a check that failed (bad config, bad signature), 2 for a command line that is wrong.

This module builds the parser (one ``_add_*`` per command) and maps errors to exit codes in
``main``; what each command does is in cli/commands.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from meterlink import __version__
from meterlink.agent.errors import ConfigError, MeterlinkError

from . import commands

Handler = Callable[[argparse.Namespace], int]


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the agent (poll, store, sign, upload)")
    p.add_argument("-c", "--config", required=True, type=Path, help="the site's TOML file")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides [log] level")
    p.set_defaults(handler=commands.cmd_run)


def _add_check_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a config file: OK, or one line per problem")
    p.add_argument("config", type=Path)
    p.set_defaults(handler=commands.cmd_check_config)


def _add_keygen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keygen", help="make the gateway's Ed25519 signing key pair")
    p.add_argument("--out", required=True, type=Path, help="folder for gateway.key and gateway.pub")
    p.add_argument("--force", action="store_true", help="replace an existing key (a new gateway identity)")
    p.set_defaults(handler=commands.cmd_keygen)


def _add_verify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="check signed messages and print their payloads")
    p.add_argument(
        "--pubkey",
        required=True,
        action="append",
        type=Path,
        help="gateway public key (PEM); repeat for old and new keys during a rotation",
    )
    p.add_argument("input", nargs="?", default="-", help="file of messages, one JSON per line, or - for stdin")
    p.set_defaults(handler=commands.cmd_verify)


def _add_read(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "read",
        help="commissioning: poll meters once and print their values, store nothing",
        description="-c FILE: poll the config's meters once. Without a config, one unit: --port DEVICE or\n"
        "--tcp HOST:PORT, --unit N, and --profile NAME (its values) or --registers START:COUNT (the raw\n"
        "registers, each pair decoded as float32, uint32 and int32 in the four word orders).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", type=Path, help="the site's TOML file: read its meters")
    p.add_argument("--meter", action="append", help="with -c: only this meter id (repeatable)")
    p.add_argument("--port", metavar="DEVICE", help="without a config: a serial port")
    p.add_argument("--tcp", metavar="HOST:PORT", help="without a config: a Modbus TCP endpoint")
    p.add_argument("--unit", metavar="N", help="the unit id to read")
    p.add_argument("--profile", metavar="NAME", help="read this built-in profile's values (meterlink profiles)")
    p.add_argument("--registers", metavar="START:COUNT", help="read raw registers (wire addresses, from 0)")
    p.add_argument("--function", metavar="3|4", help="with --registers: 3 holding (default) or 4 input registers")
    p.add_argument("--baud", metavar="RATE", help="serial speed (default: the profile's, else 9600)")
    p.add_argument("--parity", metavar="N|E|O", help="serial parity (default: the profile's, else N)")
    p.add_argument("--timeout", metavar="S", help="seconds to wait for an answer (default 1)")
    p.set_defaults(handler=commands.cmd_read)


def _add_scan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan",
        help="find the Modbus devices on a bus: unit ids, line settings, what each answers",
        description="Ask every unit id for register 0 (FC 03, then FC 04 of those that answer) at each line\n"
        "setting in turn, 9600 8N1 first, until one setting answers. Prints the expected duration first.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", metavar="DEVICE", help="a serial port (RS-485 adapter)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="a Modbus TCP device or gateway")
    p.add_argument("--baud", metavar="RATE,...", help="baud rates to try, in order (default 9600,19200,4800,...)")
    p.add_argument("--parity", metavar="N,E,O", help="parities to try at each rate (default N,E,O)")
    p.add_argument("--units", metavar="1-247", help="unit ids to ask: ranges and lists, 1-10,100 (default 1-247)")
    p.add_argument("--timeout", default="0.2", metavar="S", help="seconds to wait for each unit (default 0.2)")
    p.add_argument("--json", action="store_true", help="print a JSON array of the devices found")
    p.set_defaults(handler=commands.cmd_scan)


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="each meter's health, what the store holds and what waits for delivery, intakes and warnings",
        description="Read-only, never asks a meter: safe while the agent runs, and says so when it does not.",
    )
    p.add_argument("-c", "--config", required=True, type=Path)
    p.add_argument("--json", action="store_true", help="one JSON object (agent, store, meters, warnings)")
    p.set_defaults(handler=commands.cmd_status)


REPORT_JSON = """\
--json prints one array of objects, each with a "record" key:
  "meter": a meter's day (key "day") or, for a month or quarter, its period (key "period", with
    "first", "last", "days", "days_kept", "days_computed"); both carry "volume", "unit",
    "start_total", "end_total", "flow_min", "flow_max", "slots_expected", "slots_filled",
    "report_rate" (filled / expected), "readings", "negative_steps", "flags" and "partial" (a day
    not over yet); a day also "flow_mean", "source" ("kept" by the agent, "computed" now from the
    readings, null: no figures) and "version" (the kept version);
  "intake": "intake", "permit", "source", "meters" (id -> +1, or -1 for a return flow), "volume" (the
    period's), "ytd" to "ytd_through" ("ytd_days" of "year_days" with figures), "annual_permit",
    "permit_share", "permit_reached_on", "permit_projected" (at this year's pace), the same for
    "plan", "daily_max", "permit_expires", "expires_in_days";
  "warning": an open condition: "kind", "subject", "level", "id", "since" (the day, or the local
    time, it started), "detail".
Volumes are in the meters' units (m3); null where there is no figure."""


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="daily volumes, report rates, permits and warnings from the store (safe while running)",
        description="A period's daily volumes, report rates and flags per meter, the intakes against their\n"
        "permit and plan, and the open warnings: from the store alone, as the agent kept each day, else\n"
        "computed now from the readings. Default period: yesterday, in the site's time zone.",
        epilog=REPORT_JSON,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", required=True, type=Path, help="the site's TOML file")
    p.add_argument("--day", metavar="YYYY-MM-DD", help="one local day")
    p.add_argument("--month", metavar="YYYY-MM", help="a month: one row per meter")
    p.add_argument("--quarter", metavar="YYYYQN", help="a quarter (2026Q3): one row per meter")
    p.add_argument("--days", action="store_true", help="with --month or --quarter: each meter's days too")
    p.add_argument("--meter", action="append", metavar="ID", help="only this meter (repeatable)")
    p.add_argument("--json", action="store_true", help="a JSON array instead of the table (see below)")
    p.set_defaults(handler=commands.cmd_report)


def _add_manual_reading(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("manual-reading", help="store a reading taken by hand, with a photo as evidence")
    p.add_argument("-c", "--config", required=True, type=Path)
    p.add_argument("--meter", required=True, help="the meter's id in the config")
    p.add_argument("--value", required=True, help="what its display shows (the totalizer, m3, by default)")
    p.add_argument("--evidence", required=True, type=Path, metavar="PHOTO", help="a photo of the display")
    p.add_argument("--at", help="when it was read: YYYY-MM-DDTHH:MM, site time (default: now)")
    p.add_argument("--by", help="who read it (default: the user running this)")
    p.add_argument(
        "--replacement",
        action="store_true",
        help="the meter was replaced or reset: its totalizer starts again at this value",
    )
    p.add_argument("--quantity", default="volume_total", help="what was read (default volume_total)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a running agent (default 30)")
    p.set_defaults(handler=commands.cmd_manual_reading)


def _add_profiles(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("profiles", help="list the built-in meter profiles, or show one")
    p.add_argument("name", nargs="?")
    p.set_defaults(handler=commands.cmd_profiles)


def _add_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The simulators' own options are parsed by their modules, imported only when used: the agent
    # (`meterlink run`) never loads simulator code.
    kinds = "; ".join(f"{k}: {v}" for k, (_, v) in commands.SIMULATORS.items())
    p = sub.add_parser("sim", help="simulators: meters and platform side", description=kinds)
    p.add_argument("kind", choices=sorted(commands.SIMULATORS), help="which simulator")
    p.add_argument("options", nargs=argparse.REMAINDER, help="its options (meterlink sim KIND --help)")
    p.set_defaults(handler=commands.cmd_sim)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="simulated meters, the agent and a verifying platform, in one command")
    p.add_argument("--broker", help="use this broker (mqtt://HOST:PORT) instead of starting a private mosquitto")
    # Parsed by the demo, so a bad value is one line and exit 1 like its other options.
    p.add_argument("--duration", metavar="SECONDS", help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--dir", type=Path, help="keep config, keys and store here (default: a temporary folder)")
    p.add_argument(
        "--szy206-station",
        metavar="HOST:PORT",
        help="also report as an SZY206 site terminal to this central station, every 5 s",
    )
    p.add_argument(
        "--sl651-center",
        metavar="HOST:PORT",
        help="also report as an SL651 station to this centre (scheduled reports every 10 s)",
    )
    p.set_defaults(handler=commands.cmd_demo)


def _add_decode(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("decode", help="decode a protocol frame to JSON (commissioning, support)")
    p.add_argument("protocol", choices=["szy206", "sl651"], help="the frame's protocol")
    # A "*" positional is used up before a following option, so `szy206 --tp 5 HEX` would leave
    # HEX unparsed: take the rest as is and let cmd_decode read it with options anywhere.
    p.add_argument(
        "hex",
        nargs=argparse.REMAINDER,
        metavar="HEX",
        help="the frame in hex, with or without spaces (--file and --tp may follow)",
    )
    commands.decode_options(p)
    p.set_defaults(handler=commands.cmd_decode)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterlink",
        description="Edge agent for water-abstraction sites: reads flowmeters, keeps every reading "
        "until the platform has it, signs and uploads it.",
    )
    parser.add_argument("--version", action="version", version=f"meterlink {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_run,
        _add_check_config,
        _add_keygen,
        _add_verify,
        _add_read,
        _add_scan,
        _add_status,
        _add_report,
        _add_manual_reading,
        _add_profiles,
        _add_decode,
        _add_sim,
        _add_demo,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    except MeterlinkError as exc:
        print(f"meterlink: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug, not a user error: one line, the traceback only on request
        if os.environ.get("METERLINK_DEBUG"):
            raise
        print(
            f"meterlink: unexpected error: {type(exc).__name__}: {exc} (METERLINK_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    raise SystemExit(main())
