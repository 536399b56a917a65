"""How long ``meterlink scan`` takes for units 1-247 at one line setting, at the default timeout.

    .venv/bin/python bench/bench_scan.py [--timeout 0.2] [--no-pty]

Against the Modbus simulator with three meters (units 3, 17, 200):
- over TCP, where the simulator answers an absent unit at once with exception 0B, as a gateway does;
- over a pty (Modbus RTU), where an absent unit is silent and costs one timeout: the bound the scan
  announces before it starts (units x timeout).
Each is timed twice: the sweep alone (in this process), and the whole command (interpreter start-up,
opening the port, the sweep, the output).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time

from _common import figure, header
from support.procs import METERLINK, start_sim

from meterlink.drivers.modbus import scan
from meterlink.drivers.params import SerialParams, TcpParams

METERS = ["--meter", "tuf2000:3", "--meter", "emf_generic:17", "--meter", "xintai_water_meter:200"]
UNITS = list(range(1, 248))


def sweep_seconds(where: scan.Where, timeout: float) -> tuple[float, int]:
    started = time.perf_counter()
    found = asyncio.run(scan.sweep(where, UNITS, timeout, lambda *_: None))
    return time.perf_counter() - started, len(found)


def command_seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*METERLINK, "scan", *argv, "--json"], capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=scan.DEFAULT_TIMEOUT_S)
    parser.add_argument("--no-pty", action="store_true", help="skip the RTU sweep (about units x timeout)")
    args = parser.parse_args()
    header(f"meterlink scan: units 1-247 at one setting, timeout {args.timeout:g} s, 3 devices present")
    figure("announced bound (units x timeout + opening)", scan.sweep_seconds(len(UNITS), args.timeout), "s")
    sim = start_sim("--tcp", "0", "--pty", "--baud", "9600", *METERS)
    try:
        assert sim.tcp_port is not None and sim.pty is not None
        tcp = TcpParams("127.0.0.1", sim.tcp_port)
        seconds, found = sweep_seconds(tcp, args.timeout)
        figure(f"tcp sweep (absent units answer 0B), {found} found", seconds, "s")
        figure("tcp: whole command", command_seconds(["--tcp", f"127.0.0.1:{sim.tcp_port}"]), "s")
        if not args.no_pty:
            rtu = SerialParams(sim.pty, 9600, "N", 1, 8)
            seconds, found = sweep_seconds(rtu, args.timeout)
            figure(f"rtu 9600 8N1 sweep (absent units silent), {found} found", seconds, "s")
            argv = ["--port", sim.pty, "--baud", "9600", "--parity", "N", "--timeout", str(args.timeout)]
            figure("rtu: whole command", command_seconds(argv), "s")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
