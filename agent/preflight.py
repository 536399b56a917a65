"""Everything a config names that must be usable before the agent starts, as ``key: reason`` lines.

``check-config`` and ``run`` both go through :func:`problems`, so a config that check-config passed
does not then fail at start-up over a key, a certificate or a file mode.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import config as cfgmod
from . import signing
from .errors import ConfigError, KeyFileError


def problems(config: cfgmod.Config) -> list[str]:
    """One ``path.to.key: reason`` line per unusable file; empty when the agent can start."""
    found = cfgmod.check_files(config)
    if found:
        return found  # a missing file would only be reported again below
    try:
        signing.load_private_key(config.signing.key)
    except KeyFileError as exc:
        found.append(f"signing.key: {exc}")
    m = config.uplink.mqtt
    if m is None:
        return found
    if m.receipt_key is not None:
        try:
            signing.load_public_key(m.receipt_key)
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
        found += _tls_problem("uplink.mqtt.client_cert", m.client_cert,
                              lambda: ssl.create_default_context().load_cert_chain(cert, key))
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
