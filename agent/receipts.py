"""Application-level receipts: a reading is delivered when the platform says it has it.

A PUBACK only says the broker has the message. With ``receipts = true`` the agent subscribes to
``<prefix>/<gateway>/receipts`` and marks a batch's readings sent only when the platform's receipt
for that batch arrives::

    {"gateway": "hn-430100-0007", "batch": 42, "first_seq": 1017, "last_seq": 1516}

Its body is the wire format's (meterlink.wire.receipts). A receipt must be authentic: signed as a
JWS by the platform's key (``receipt_key``, verified like the gateway's own messages), or, without
a key, accepted only because the broker lets nobody but the platform publish on that topic (an ACL
the platform team sets up; docs/wire-format.md).
Until ``receipt_timeout`` passes, readings awaiting a receipt are not sent again; after it, they go
out again (receivers drop duplicates by (gateway, seq)).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from meterlink.wire.errors import WireError
from meterlink.wire.jws import Verifier
from meterlink.wire.receipts import parse_receipt

log = logging.getLogger("meterlink.receipts")


@dataclass(slots=True)
class Awaited:
    first: int
    last: int
    deadline: int


class ReceiptBook:
    def __init__(self, gateway: str, timeout_ms: int, verifier: Verifier | None) -> None:
        self.gateway = gateway
        self.timeout_ms = timeout_ms
        self.verifier = verifier
        self._awaited: dict[int, Awaited] = {}
        self.accepted = 0
        self.refused = 0

    def expect(self, batch: int, first: int, last: int, now: int) -> None:
        self._awaited[batch] = Awaited(first, last, now + self.timeout_ms)

    def awaiting(self, seq: int, now: int) -> bool:
        """True while ``seq`` belongs to a batch whose receipt may still come."""
        expired = [b for b, a in self._awaited.items() if a.deadline < now]
        for batch in expired:
            del self._awaited[batch]
            log.warning("event=receipt_missing batch=%d action=send_again", batch)
        return any(a.first <= seq <= a.last for a in self._awaited.values())

    def parse(self, payload: bytes) -> tuple[int, int] | None:
        """The (first, last) seq a receipt confirms, or None (logged) when it must not be trusted."""
        try:
            body: Any = self.verifier.verify(payload).json() if self.verifier else json.loads(payload)
            receipt = parse_receipt(body, self.gateway)
        except (WireError, ValueError, RecursionError) as exc:  # ValueError, RecursionError: json.loads
            self.refused += 1
            log.warning("event=receipt_refused error=%r", str(exc))
            return None
        batch, first, last = receipt.batch, receipt.first_seq, receipt.last_seq
        self._awaited.pop(batch, None)
        self.accepted += 1
        return first, last
