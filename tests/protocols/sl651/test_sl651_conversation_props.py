"""Two conversations, a station and a centre, over a simulated line: the protocol's promises hold.

The station sends its reports, at most two awaiting their acknowledgements at a time, and answers
the centre's clock queries; the centre keeps each new report, acknowledges every copy at once, and
now and then queries. Between them a line that loses, duplicates, delays and reorders frames,
cuts their bytes into pieces and puts noise before them. Time is virtual (ms), so a run of many
timeouts takes a blink.

What must hold on any line:
- every request ends exactly once (acknowledged or answered, or given up after its last try),
  within tries x timeout of its first send, and nothing about it comes after;
- a report is sent again only as the same frame, same serial number, and at most ``tries`` times
  in all; an acknowledgement carries the report's function and serial number;
- the centre calls a copy a repeat exactly when it acknowledged that report (same station,
  function, serial and send time) before the read that brought the copy; and every report the
  station saw acknowledged is kept. (Two copies in one read, before any acknowledgement, are
  both new reports: the caller that keeps reports must tell them apart.)

On a perfect line: every report and query is answered at its first try.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocols.sl651 import NEED_DATA, Body, Conversation, Direction, Frame, Role, encode, parse_body
from meterlink.protocols.sl651.codes import Function
from meterlink.protocols.sl651.events import (
    Acknowledged,
    Answered,
    GaveUp,
    Misdirected,
    QueryReceived,
    Refused,
    ReportReceived,
    ReportRepeated,
    Request,
    Resend,
)
from meterlink.protocols.sl651.messages import build_query, build_report, number_element, report_body

TIMEOUT = 1000
TRIES = 4
IDLE = 250
REPORTS = 8
WINDOW = 2  # reports awaiting their acknowledgements at once
STEPS = 20_000  # a run that has not ended by then is a livelock: fail
STATION = bytes.fromhex("0012345678")
T0 = datetime(2026, 3, 1, 8, 0)
Content = tuple[int, int, datetime | None]  # function, serial, send time


@dataclass
class Line:
    """One direction of the line."""

    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    delay: tuple[int, int] = (1, 200)
    noise: float = 0.0
    _queue: list[tuple[int, int, bytes]] = field(default_factory=list)
    _order: int = 0

    def send(self, frame: Frame, now: int) -> None:
        rng = self.rng
        if rng.random() < self.loss:
            return
        for _ in range(2 if rng.random() < self.duplicate else 1):
            raw = encode(frame)
            if rng.random() < self.noise:
                raw = bytes(rng.choice((0x7E, 0x01, rng.randrange(256))) for _ in range(rng.randint(1, 8))) + raw
            at = now + rng.randint(*self.delay)  # delays beyond a timeout reorder frames
            cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(0, 2)))
            for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True):
                self._order += 1
                heapq.heappush(self._queue, (at, self._order, raw[a:b]))

    def due(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def arrived(self, now: int) -> list[bytes]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            out.append(heapq.heappop(self._queue)[2])
        return out


@dataclass
class Requests:
    """One side's requests, as its conversation reports them; checks every rule about them."""

    first: dict[Request, int] = field(default_factory=dict)  # first send time
    sent: dict[Request, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    ended: dict[Request, str] = field(default_factory=dict)

    def start(self, request: Request, now: int) -> Frame:
        self.first[request] = now
        self.sent[request].append(encode(request.frame))
        return request.frame

    def event(self, event: Acknowledged | Answered | Resend | GaveUp) -> None:
        request = event.request
        assert request in self.first, "an event about a request never made"
        assert request not in self.ended, f"{type(event).__name__} after the request ended {self.ended[request]}"
        if isinstance(event, Resend):
            self.sent[request].append(encode(event.frame))
            return
        assert event.at <= self.first[request] + request.tries * TIMEOUT, "a request outlived its tries"
        self.ended[request] = "gave up" if isinstance(event, GaveUp) else "answered"
        if isinstance(event, Acknowledged):
            ack = event.frame
            assert (ack.direction, ack.function, ack.station) == (Direction.DOWN, request.function, STATION)
            assert parse_body(ack).serial == request.serial, "an acknowledgement of another serial"
        if isinstance(event, Answered):
            assert (event.frame.direction, event.frame.function) == (Direction.UP, request.function)

    def check_all_ended(self) -> None:
        for request, frames in self.sent.items():
            assert request in self.ended, "a request never ended"
            assert len(frames) <= request.tries, f"sent {len(frames)} times, {request.tries} tries"
            assert set(frames) == {encode(request.frame)}, "a resend that is not the same frame"


def content(frame: Frame, body: Body) -> Content:
    return frame.function, -1 if body.serial is None else body.serial, body.send_time


class Run:
    """A station reporting to a centre over two Lines; ghost state for the promises."""

    def __init__(self, rng: random.Random, up: Line, down: Line, *, queries: float) -> None:
        self.rng, self.up, self.down, self.queries = rng, up, down, queries
        self.term = Conversation(Role.STATION, timeout_ms=TIMEOUT, tries=TRIES, idle_ms=IDLE)
        self.cent = Conversation(Role.CENTRE, timeout_ms=TIMEOUT, tries=TRIES, idle_ms=IDLE)
        self.term_requests, self.cent_requests = Requests(), Requests()
        self.report_of: dict[Request, Content] = {}
        self.started = 0
        self.query: Request | None = None
        self.kept: Counter[Content] = Counter()  # reports the centre kept (ReportReceived)
        self.acked: set[Content] = set()  # reports the centre acknowledged
        self.acked_at_station: list[Content] = []
        self.now = 0

    def run(self) -> None:
        self._next_reports()
        for _ in range(STEPS):
            times = [self.up.due(), self.down.due(), self.term.next_deadline(), self.cent.next_deadline()]
            due = [t for t in times if t is not None]
            if not due:
                break
            self.now = now = max(self.now, min(due))
            # The centre acknowledges what one read brought before the next read: a copy is a
            # repeat if its report was acknowledged before the read that brought it.
            for chunk in self.up.arrived(now):
                acked = set(self.acked)
                self.cent.receive_data(chunk, now)
                self._centre_events(acked)
            for chunk in self.down.arrived(now):
                self.term.receive_data(chunk, now)
            acked = set(self.acked)
            self.term.tick(now)
            self.cent.tick(now)
            self._station_events()
            self._centre_events(acked)
            self._maybe_query()
        else:
            raise AssertionError("the conversation did not settle")
        assert self.started == REPORTS, "reports left unsent"
        self.term_requests.check_all_ended()
        self.cent_requests.check_all_ended()
        missing = [c for c in self.acked_at_station if c not in self.kept]
        assert not missing, f"acknowledged at the station, never kept by the centre: {missing}"

    # -- station -------------------------------------------------------------------------------

    def _next_reports(self) -> None:
        awaiting = len(self.term_requests.first) - len(self.term_requests.ended)
        while self.started < REPORTS and awaiting < WINDOW:
            serial = self.term.next_serial()
            body = report_body(
                serial=serial,
                send_time=T0 + timedelta(minutes=serial),
                station=STATION,
                station_type=0x48,
                observed=T0,
                elements=[number_element(0x39, serial / 10)],
            )
            frame = build_report(Function.SCHEDULED, center=1, station=STATION, password=0x1234, body=body)
            request = self.term.request(frame, self.now)
            self.report_of[request] = content(frame, body)
            self.up.send(self.term_requests.start(request, self.now), self.now)
            self.started += 1
            awaiting += 1

    def _station_events(self) -> None:
        while (event := self.term.next_event()) is not NEED_DATA:
            assert not isinstance(event, Misdirected | Refused), event
            if isinstance(event, Acknowledged | Resend | GaveUp):
                self.term_requests.event(event)
                if isinstance(event, Resend):
                    self.up.send(event.frame, self.now)
                    continue
                if isinstance(event, Acknowledged):
                    self.acked_at_station.append(self.report_of[event.request])
                self._next_reports()
            elif isinstance(event, QueryReceived):
                answer = self.term.answer(event.frame, Body(self.term.next_serial(), T0))
                self.up.send(answer, self.now)

    # -- centre --------------------------------------------------------------------------------

    def _centre_events(self, acked: set[Content]) -> None:
        """The centre's events since a read, ``acked`` the reports acknowledged before it."""
        while (event := self.cent.next_event()) is not NEED_DATA:
            assert not isinstance(event, Misdirected | Refused), event
            if isinstance(event, Answered | Resend | GaveUp):
                self.cent_requests.event(event)
                if isinstance(event, Resend):
                    self.down.send(event.frame, self.now)
                elif self.query is event.request:
                    self.query = None
            elif isinstance(event, ReportReceived | ReportRepeated):
                seen = content(event.frame, event.body)
                if isinstance(event, ReportReceived):
                    assert seen not in acked, "a copy of an acknowledged report taken as new"
                    self.kept[seen] += 1
                else:
                    assert seen in acked, "called a repeat, but not acknowledged before"
                self.acked.add(seen)
                self.down.send(self.cent.acknowledge(event.frame, event.body, T0), self.now)

    def _maybe_query(self) -> None:
        reporting = len(self.term_requests.ended) < REPORTS
        if reporting and self.query is None and self.rng.random() < self.queries:
            query = build_query(
                Function.CLOCK_QUERY,
                center=1,
                station=STATION,
                password=0x1234,
                serial=self.cent.next_serial(),
                send_time=T0,
            )
            self.query = self.cent.request(query, self.now)
            self.down.send(self.cent_requests.start(self.query, self.now), self.now)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    loss=st.floats(0.0, 0.6),
    duplicate=st.floats(0.0, 0.5),
    noise=st.floats(0.0, 0.3),
)
def test_on_any_line_requests_end_once_resends_are_the_same_and_repeats_are_known(
    seed: int, loss: float, duplicate: float, noise: float
) -> None:
    """Loss, duplicates, delays beyond the timeout (so reordering), noise with fake starts."""
    rng = random.Random(seed)

    def messy() -> Line:
        return Line(rng, loss=loss, duplicate=duplicate, delay=(1, 3 * TIMEOUT), noise=noise)

    Run(rng, messy(), messy(), queries=0.3).run()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_on_a_perfect_line_everything_is_answered_at_its_first_try(seed: int) -> None:
    rng = random.Random(seed)
    run = Run(rng, Line(rng), Line(rng), queries=0.5)
    run.run()
    assert set(run.kept.values()) == {1} and len(run.kept) == REPORTS, "each report kept once"
    for requests in (run.term_requests, run.cent_requests):
        assert set(requests.ended.values()) <= {"answered"}
        assert all(len(frames) == 1 for frames in requests.sent.values())
    assert len(run.acked_at_station) == REPORTS
