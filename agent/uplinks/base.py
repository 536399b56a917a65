"""What an uplink promises: ``deliver`` returns only when the far side confirmed, else it raises."""

from __future__ import annotations


class UplinkError(Exception):
    """Root of delivery failures. The readings stay pending in the store and go out again."""


class NotConnected(UplinkError):
    """There is no connection to the far side right now: nothing was handed over."""


class Rejected(UplinkError):
    """The far side answered, and said no (an MQTT 5 reason code >= 0x80, a negative confirm)."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(f"rejected: {reason} (0x{code:02X})")
        self.reason = reason
        self.code = code


class TimedOut(UplinkError):
    """No confirmation within the time allowed: counted as a failure, never as a success."""


class ConnectFailed(UplinkError):
    """One connection attempt failed (refused, DNS, TLS verification, bad credentials)."""
