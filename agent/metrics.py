"""Prometheus metrics of the running agent, served at ``/metrics`` when ``[metrics] listen`` is set.

Names follow Prometheus conventions: the ``meterlink_`` prefix, ``_total`` for counters, base units
(seconds, bytes). Counters and histograms are fed as things happen (a poll, a commit, a PUBACK);
what the store holds (pending readings, their age, the file's size) is set by the agent on its
status tick, so a scrape never touches the store, which a worker thread owns.

The registry is the agent's own (not the library's global one): nothing of the process or the
library leaks in unasked, and tests can run several agents in one interpreter.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from meterlink import __version__

from .metrics_text import CONTENT_TYPE, Exposition

# Poll durations: a Modbus TCP poll on a healthy network takes milliseconds, one on RS-485 tens of
# milliseconds, a timed-out one seconds. Five buckets tell these apart; every bucket is a series
# per bus, and a scrape's cost grows with the series (at 32 buses, 11 buckets made 83 % of it).
POLL_BUCKETS = (0.01, 0.05, 0.25, 1.0, 5.0)
PUBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# No `_created` series beside every counter: the process start time says the same, at a third of
# the scrape's size. (The library's switch is process-wide; meterlink's process is the agent.)
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric of one agent, in a registry of its own."""

    def __init__(self, gateway: str) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.build = Info("meterlink_build", "meterlink's version and the gateway it runs as", registry=r)
        self.build.info({"version": __version__, "gateway": gateway})
        self.polls = Counter("meterlink_polls", "Meter polls made", ["bus", "meter"], registry=r)
        self.poll_failures = Counter(
            "meterlink_poll_failures", "Meter polls that failed, by error", ["bus", "meter", "error"], registry=r
        )
        self.poll_duration = Histogram(
            "meterlink_poll_duration_seconds", "Time of one meter poll", ["bus"], buckets=POLL_BUCKETS, registry=r
        )
        self.readings_stored = Counter("meterlink_readings_stored", "Readings committed to the store", registry=r)
        self.readings_dropped = Counter(
            "meterlink_readings_dropped", "Pending readings a full store dropped", registry=r
        )
        self.readings_pending = Gauge(
            "meterlink_readings_pending", "Readings waiting for delivery over MQTT", registry=r
        )
        self.oldest_pending_age = Gauge(
            "meterlink_oldest_pending_age_seconds", "Age of the oldest reading waiting for delivery", registry=r
        )
        self.store_bytes = Gauge("meterlink_store_bytes", "Size of the store, its WAL included", registry=r)
        self.store_capacity = Gauge("meterlink_store_capacity_bytes", "The store's configured cap", registry=r)
        self.messages_published = Counter(
            "meterlink_messages_published", "Signed messages the broker confirmed", ["uplink"], registry=r
        )
        self.readings_published = Counter(
            "meterlink_readings_published", "Readings in messages the far side confirmed", ["uplink"], registry=r
        )
        self.puback_latency = Histogram(
            "meterlink_puback_latency_seconds",
            "Time from publishing a message to its PUBACK",
            buckets=PUBACK_BUCKETS,
            registry=r,
        )
        self.uplink_connected = Gauge(
            "meterlink_uplink_connected", "1 while the uplink is connected", ["uplink"], registry=r
        )
        self.szy206_confirmed = Counter(
            "meterlink_szy206_reports_confirmed", "SZY206 reports the central station confirmed", registry=r
        )
        self.szy206_resent = Counter(
            "meterlink_szy206_reports_resent", "SZY206 reports sent again for want of a confirm", registry=r
        )
        self.last_upload = Gauge(
            "meterlink_last_upload_timestamp_seconds", "When the far side last confirmed an upload", registry=r
        )
        # Every metric above, in the order registered (the library's order of exposition).
        kinds = Info | Counter | Gauge | Histogram
        self.exposition = Exposition(r, [m for m in vars(self).values() if isinstance(m, kinds)])


class _Scrape(BaseHTTPRequestHandler):
    """Any GET is a scrape (as the library's handler has it); the text format, uncompressed."""

    exposition: Exposition
    timeout = 10  # a client that stalls holds the one serving thread this long at most

    def do_GET(self) -> None:
        body = self.exposition.render()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged: one every 15 s would bury the agent's own lines."""


def _server(host: str, port: int, metrics: Metrics) -> socketserver.TCPServer:
    """A server of the address's family (an IPv6 listen address works) that answers one scrape at
    a time on the calling thread: no thread started per scrape, no host name looked up at bind."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(socketserver.TCPServer):
        address_family = family
        allow_reuse_address = True

    class Handler(_Scrape):
        exposition = metrics.exposition

    return Server((host, port), Handler)


class MetricsServer:
    """The HTTP endpoint, on a thread of its own (it only reads the metrics).

    The thread waits for a connection with no timeout: the library's ``serve_forever`` wakes
    twice a second to look for a shutdown, CPU spent for nothing between scrapes. To stop, the
    flag is set and one empty connection wakes the thread.
    """

    def __init__(self, host: str, port: int, metrics: Metrics) -> None:
        self.server = _server(host, port, metrics)
        self._stopping = False
        self.thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def _serve(self) -> None:
        while not self._stopping:
            self.server.handle_request()  # blocks until a scrape (or the wake-up) arrives

    def stop(self) -> None:
        self._stopping = True
        host = str(self.server.server_address[0])
        try:
            with socket.create_connection((host, self.port), timeout=1):
                pass
        except OSError:  # nothing to wake: the thread is gone or the socket closed
            pass
        self.thread.join(5)
        self.server.server_close()


def serve(metrics: Metrics, host: str, port: int) -> MetricsServer:
    """Start serving ``/metrics`` on ``host:port`` (port 0: a free one).

    Raises:
        OSError: the address cannot be bound (in use, not this host's).
    """
    return MetricsServer(host, port, metrics)
