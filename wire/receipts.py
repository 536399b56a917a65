"""The platform's receipt for a readings message: it has stored that batch's readings.

    {"gateway": "hn-430100-0007", "batch": 42, "first_seq": 1017, "last_seq": 1516}

The platform publishes it on ``<prefix>/<gateway>/receipts``, as plain JSON or as a JWS signed with
its own key like the gateway's messages (jws.py); docs/wire-format.md section 1 says when each is
trusted. ``first_seq`` and ``last_seq`` are the lowest and highest ``seq`` of that batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import PayloadError


@dataclass(frozen=True, slots=True)
class Receipt:
    """What one receipt confirms: the readings ``first_seq`` to ``last_seq`` of ``batch``."""

    gateway: str
    batch: int
    first_seq: int
    last_seq: int


def receipt_message(gateway: str, batch: int, first_seq: int, last_seq: int) -> bytes:
    """The receipt's JSON, compact, as the platform publishes it (before any signature)."""
    body = {"gateway": gateway, "batch": batch, "first_seq": first_seq, "last_seq": last_seq}
    return json.dumps(body, separators=(",", ":")).encode()


def parse_receipt(body: Any, gateway: str) -> Receipt:
    """The receipt in ``body`` (a parsed JSON document) addressed to ``gateway``.

    Raises:
        PayloadError: not an object, another gateway's, a member missing or not an integer, or
            seqs that are not ``1 <= first_seq <= last_seq``.
    """
    if not isinstance(body, dict):
        raise PayloadError("receipt is not a JSON object")
    if body.get("gateway") != gateway:
        raise PayloadError(f"receipt for gateway {body.get('gateway')!r}")
    for key in ("batch", "first_seq", "last_seq"):
        if key not in body:
            raise PayloadError(f"receipt has no {key}")
        # JSON integers only: int() would take "12", truncate 12.7 and overflow on Infinity.
        if not isinstance(body[key], int) or isinstance(body[key], bool):
            raise PayloadError(f"receipt's {key} is not an integer")
    batch, first, last = body["batch"], body["first_seq"], body["last_seq"]
    if not 1 <= first <= last:
        raise PayloadError("bad seq range")
    return Receipt(gateway, batch, first, last)
