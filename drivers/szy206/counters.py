"""What an SZY206 link saw, counted for its log lines and for commissioning output."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LinkCounters:
    """What the link saw, for logs and commissioning output."""

    requests: int = 0  # queries (their first try)
    retries: int = 0  # queries sent again with a lower FCB
    answers: int = 0
    timeouts: int = 0  # queries that ended in MeterTimeout
    bad_answers: int = 0  # queries that ended in BadFrame
    frames_ok: int = 0  # valid frames found on the line
    bad_frames: int = 0  # candidates the reassembler refused (CRC, end byte, length, Tp)
    bytes_discarded: int = 0
    resyncs: int = 0  # partial frames given up after resync_after
    self_reports: int = 0  # reports of configured meters (resends included)
    duplicate_reports: int = 0
    confirms_sent: int = 0
    unconfirmed_reports: int = 0  # undecodable, or on_report failed
    link_checks: int = 0
    unknown_frames: int = 0  # valid frames from addresses not configured
    stray_frames: int = 0  # late answers, downlink frames
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    last_error: str = ""

    def summary(self) -> str:
        """``requests=3 retries=1 ...``: every count, for one log line."""
        return " ".join(f"{name}={getattr(self, name)}" for name in self.__slots__ if name != "last_error")
