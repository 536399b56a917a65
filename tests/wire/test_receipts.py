"""The platform's receipts: the body the platform writes, and what a gateway refuses to trust."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meterlink.agent.receipts import ReceiptBook
from meterlink.wire.errors import PayloadError
from meterlink.wire.jws import Signer, Verifier
from meterlink.wire.receipts import Receipt, parse_receipt, receipt_message


def test_a_receipt_reads_back_as_written() -> None:
    body = receipt_message("hn-430100-0007", 42, 1017, 1516)
    assert body == b'{"gateway":"hn-430100-0007","batch":42,"first_seq":1017,"last_seq":1516}'
    assert parse_receipt(json.loads(body), "hn-430100-0007") == Receipt("hn-430100-0007", 42, 1017, 1516)


GOOD = {"gateway": "gw", "batch": 3, "first_seq": 10, "last_seq": 19}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([GOOD], "not a JSON object"),
        ({**GOOD, "gateway": "other"}, "receipt for gateway 'other'"),
        ({k: v for k, v in GOOD.items() if k != "last_seq"}, "no last_seq"),
        ({**GOOD, "first_seq": "10"}, "first_seq is not an integer"),
        ({**GOOD, "last_seq": 19.5}, "last_seq is not an integer"),
        ({**GOOD, "batch": True}, "batch is not an integer"),
        ({**GOOD, "last_seq": float("inf")}, "last_seq is not an integer"),
        ({**GOOD, "first_seq": 0}, "bad seq range"),
        ({**GOOD, "first_seq": 20}, "bad seq range"),
    ],
)
def test_a_malformed_receipt_is_refused_with_its_reason(body: Any, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_receipt(body, "gw")


def test_the_book_refuses_and_counts_what_it_cannot_trust() -> None:
    """Every refusal is counted and logged, never raised into the MQTT callback; Infinity, which
    Python's json accepts, used to escape as an OverflowError from int()."""
    platform = Ed25519PrivateKey.generate()
    book = ReceiptBook("gw", 60_000, Verifier([platform.public_key()]))
    book.expect(3, 10, 19, now=0)
    impostor = Signer(Ed25519PrivateKey.generate()).sign(json.dumps(GOOD).encode())
    infinite = Signer(platform).sign(b'{"gateway":"gw","batch":3,"first_seq":10,"last_seq":Infinity}')
    unsigned = json.dumps(GOOD).encode()  # a receipt key is set: a plain JSON receipt is not trusted
    for bad in (impostor, infinite, b"not json", unsigned):
        assert book.parse(bad) is None
    assert (book.refused, book.accepted) == (4, 0)
    assert book.awaiting(12, now=1)
    assert book.parse(Signer(platform).sign(json.dumps(GOOD).encode())) == (10, 19)
    assert (book.refused, book.accepted) == (4, 1)
    assert not book.awaiting(12, now=1)
