"""The wire format's errors: a message or payload that is not what docs/wire-format.md says."""

from __future__ import annotations


class WireError(Exception):
    """Root of the wire format's errors; each message is fit for one line of a receiver's log."""


class VerifyError(WireError):
    """A message that is not a valid JWS from a known gateway key."""


class PayloadError(WireError, ValueError):
    """A signed payload that does not have the documented shape."""
