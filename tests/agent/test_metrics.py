"""The metrics endpoint: served over HTTP, parsed by the Prometheus library's own parser."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from meterlink import __version__
from meterlink.agent.metrics import Metrics, serve
from meterlink.agent.metrics_text import Exposition, go_float, number


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def test_metrics_are_served_with_conventional_names_and_parse() -> None:
    metrics = Metrics("gw-1")
    metrics.polls.labels(bus="rs485", meter="m1").inc(3)
    metrics.poll_failures.labels(bus="rs485", meter="m1", error="MeterTimeout").inc()
    metrics.poll_duration.labels(bus="rs485").observe(0.02)
    metrics.readings_stored.inc(8)
    metrics.readings_pending.set(5)
    metrics.puback_latency.observe(0.004)
    metrics.uplink_connected.labels(uplink="mqtt").set(1)
    metrics.last_upload.set(1_780_000_000.5)
    server = serve(metrics, "127.0.0.1", 0)
    try:
        got = scrape(server.port)
    finally:
        server.stop()
    assert got["meterlink_polls_total"] == {(("bus", "rs485"), ("meter", "m1")): 3.0}
    assert got["meterlink_poll_failures_total"] == {(("bus", "rs485"), ("error", "MeterTimeout"), ("meter", "m1")): 1.0}
    assert got["meterlink_poll_duration_seconds_count"] == {(("bus", "rs485"),): 1.0}
    assert got["meterlink_poll_duration_seconds_bucket"][(("bus", "rs485"), ("le", "0.05"))] == 1.0
    assert got["meterlink_poll_duration_seconds_bucket"][(("bus", "rs485"), ("le", "0.01"))] == 0.0
    assert got["meterlink_readings_stored_total"] == {(): 8.0}
    assert got["meterlink_readings_pending"] == {(): 5.0}
    assert got["meterlink_puback_latency_seconds_count"] == {(): 1.0}
    assert got["meterlink_uplink_connected"] == {(("uplink", "mqtt"),): 1.0}
    assert got["meterlink_last_upload_timestamp_seconds"] == {(): 1_780_000_000.5}
    assert got["meterlink_build_info"] == {(("gateway", "gw-1"), ("version", __version__)): 1.0}
    # The agent's own registry: no process or platform metrics of the library's global one.
    assert not [name for name in got if not name.startswith("meterlink_")]


def test_a_stopped_endpoint_lets_go_of_its_thread_and_port() -> None:
    # The serving thread waits without a timeout; stop() must still end it and free the port.
    server = serve(Metrics("gw-1"), "127.0.0.1", 0)
    port = server.port
    scrape(port)
    server.stop()
    assert not server.thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_two_agents_in_one_process_keep_their_own_metrics() -> None:
    a, b = Metrics("a"), Metrics("b")
    a.readings_stored.inc()
    assert a.registry.get_sample_value("meterlink_readings_stored_total") == 1.0
    assert b.registry.get_sample_value("meterlink_readings_stored_total") == 0.0


def busy_metrics() -> Metrics:
    """Every kind of series the agent has, with values and labels that need care in the format."""
    metrics = Metrics('gw "north"\\1')
    for i in range(3):
        metrics.polls.labels(bus=f"tcp{i}", meter=f"m{i}").inc(i + 1)
        metrics.poll_duration.labels(bus=f"tcp{i}").observe(0.002 * (i + 1))
        metrics.poll_duration.labels(bus=f"tcp{i}").observe(7.5)
    metrics.poll_failures.labels(bus="rs485", meter='a "quoted"\nmeter\\id', error="MeterTimeout").inc()
    metrics.readings_stored.inc(1_234_567)  # 1e6 or more: Go's exponent form
    metrics.oldest_pending_age.set(0.000012)
    metrics.store_bytes.set(float("nan"))
    metrics.store_capacity.set(float("inf"))
    metrics.readings_pending.set(-3)
    metrics.last_upload.set(1_780_000_000.5)
    metrics.puback_latency.observe(0.004)
    return metrics


def test_the_scrape_is_the_librarys_exposition_byte_for_byte() -> None:
    metrics = busy_metrics()
    assert metrics.exposition.render().decode() == generate_latest(metrics.registry).decode()
    metrics.polls.labels(bus="tcp9", meter="m9").inc()  # a series that appears after the first scrape
    metrics.poll_duration.labels(bus="tcp0").observe(0.3)
    assert metrics.exposition.render().decode() == generate_latest(metrics.registry).decode()


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_numbers_are_written_as_the_library_writes_them(value: float) -> None:
    assert number(value) == go_float(value)


def test_a_library_laid_out_anew_falls_back_to_its_own_exposition(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = busy_metrics()

    def moved(*args: object) -> None:
        raise AttributeError("'Counter' object has no attribute '_value'")

    monkeypatch.setattr(Exposition, "_series", moved)
    assert metrics.exposition.render() == generate_latest(metrics.registry)
    assert metrics.exposition.render() == generate_latest(metrics.registry)
    assert [r.message for r in caplog.records].count(
        "event=metrics_slow_path error=AttributeError(\"'Counter' object has no attribute '_value'\")"
    ) == 1
