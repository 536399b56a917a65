"""``meterlink verify``: what a platform does with every message, from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meterlink.agent.errors import MeterlinkError
from meterlink.agent.keys import load_public_key
from meterlink.wire.errors import PayloadError, VerifyError
from meterlink.wire.jws import Verifier
from meterlink.wire.payload import check_message


def split_messages(data: bytes) -> list[bytes]:
    """One JWS per line; a single pretty-printed JWS (spread over lines) is accepted too."""
    stripped = data.strip()
    if not stripped:
        return []
    try:
        json.loads(stripped)
    except (UnicodeDecodeError, ValueError, RecursionError):  # not one JSON document: one per line
        return [line for line in data.splitlines() if line.strip()]
    return [stripped]


def run_verify(pubkeys: list[Path], source: str) -> int:
    verifier = Verifier([load_public_key(p) for p in pubkeys])
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise MeterlinkError(f"{source}: {exc.strerror}") from None
    messages = split_messages(data)
    if not messages:
        raise MeterlinkError(f"{'stdin' if source == '-' else source}: no messages to verify")
    good = bad = 0
    for number, message in enumerate(messages, 1):
        try:
            verified = verifier.verify(message)
            payload = check_message(verified.json())
        except (VerifyError, PayloadError) as exc:
            bad += 1
            print(f"message {number}: REJECTED: {exc}", file=sys.stderr)
            continue
        good += 1
        print(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
    print(f"{good} verified, {bad} rejected", file=sys.stderr)
    return 1 if bad else 0
