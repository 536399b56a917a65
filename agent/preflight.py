"""Everything ``run`` opens or creates at start, tried beforehand, as ``path.to.key: reason`` lines.

``check-config`` and ``run`` both go through :func:`check`, so a config that check-config passed
does not then fail at start-up over a key, a certificate, a file mode, the store's folder or a
serial port; and what run would only put up with (an unplugged adapter, a small disk, a bus too
slow for its poll interval) is a warning in both.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterlink.drivers.serialport import diagnose

from . import config as cfgmod
from . import keys, pollcost, storecheck
from .errors import ConfigError, KeyFileError


@dataclass
class Findings:
    """``errors`` keep the agent from starting; ``warnings`` are said, and it starts."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(config: cfgmod.Config) -> Findings:
    """Try what the agent will open or create, as the user this process runs as."""
    found = Findings(_file_problems(config), cfgmod.warnings(config))
    store = storecheck.check_store(config.store.path, config.store_capacity_bytes())
    found.errors += store.errors
    found.warnings += store.warnings
    for name, bus in config.buses.items():
        if bus.type != "serial" or bus.device is None or not any(m.bus == name for m in config.enabled_meters):
            continue  # run opens only the buses it polls
        fault = diagnose(bus.device)
        if fault is not None:
            # An adapter comes back and another program ends: run starts and retries the port.
            (found.warnings if fault.passing else found.errors).append(f"buses.{name}.device: {fault.text}")
    found.warnings += pollcost.cycle_warnings(config)
    return found


def problems(config: cfgmod.Config) -> list[str]:
    """One ``path.to.key: reason`` line per problem that keeps the agent from starting; empty if none."""
    return check(config).errors


def _file_problems(config: cfgmod.Config) -> list[str]:
    """The keys, certificates and password file: found, readable, and loadable as run loads them."""
    found = cfgmod.check_files(config)
    if found:
        return found  # a missing file would only be reported again below
    try:
        keys.load_private_key(config.signing.key)
    except KeyFileError as exc:
        found.append(f"signing.key: {exc}")
    m = config.uplink.mqtt
    if m is None:
        return found
    if m.receipt_key is not None:
        try:
            keys.load_public_key(m.receipt_key)
        except KeyFileError as exc:
            found.append(f"uplink.mqtt.receipt_key: {exc}")
    if m.password_file is not None:
        try:
            m.password()  # read as run will read it: a file that is not UTF-8 fails here, not at start
        except ConfigError as exc:
            found += exc.lines
    if m.ca is not None:
        found += _tls_problem("uplink.mqtt.ca", m.ca, lambda: ssl.create_default_context(cafile=str(m.ca)))
    if m.client_cert is not None and m.client_key is not None:
        cert, key = str(m.client_cert), str(m.client_key)
        found += _tls_problem(
            "uplink.mqtt.client_cert", m.client_cert, lambda: ssl.create_default_context().load_cert_chain(cert, key)
        )
    return found


def _tls_problem(key: str, path: Path, load: Callable[[], Any]) -> list[str]:
    try:
        load()
    except ssl.SSLError as exc:
        # e.g. "[X509: NO_CERTIFICATE_OR_CRL_FOUND]" or "[SSL: KEY_VALUES_MISMATCH]": the reason says which
        return [f"{key}: {path} cannot be used for TLS ({exc.reason or exc})"]
    except (OSError, ValueError) as exc:
        return [f"{key}: {path} cannot be used for TLS ({getattr(exc, 'strerror', None) or exc})"]
    return []
