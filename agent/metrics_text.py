"""The Prometheus text format (0.0.4) of the agent's metrics, written for a cheap scrape.

The library's ``generate_latest`` builds a sample object per series and formats and validates every
label on every scrape: about 1.8 ms for the ~320 series of 32 buses here, as much CPU as half a
minute of polling at 32 meters every 10 s. The series change values, not shape, so this writer
makes each series' name-and-labels text once, when the series first appears, and a scrape only
formats numbers. The values are read from the library's metric objects (their children, value
cells and buckets); should a release of the library lay them out differently, the scrape falls
back to ``generate_latest`` and says so once. The output is byte for byte the library's (a test
compares the two), so anything that parses one parses the other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.utils import floatToGoString

log = logging.getLogger("meterlink.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

go_float = cast(Callable[[float], str], floatToGoString)  # the library's, untyped


def number(value: float) -> str:
    """The Go-style float the format wants (``floatToGoString``), by ``repr`` where they agree."""
    if -math.inf < value < 1e6:  # NaN fails this and goes the long way, as do +Inf and 1e6 or more
        return repr(value)
    return go_float(value)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: dict[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items())) + "}"


def _header(metric: Any) -> str:
    kind: str = metric._type
    name = metric._name + {"counter": "_total", "info": "_info"}.get(kind, "")
    doc = metric._documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {'gauge' if kind == 'info' else kind}\n"


class Exposition:
    """The scrape of a fixed set of metrics, in the order they were registered."""

    def __init__(self, registry: CollectorRegistry, metrics: Sequence[MetricWrapperBase]) -> None:
        self.registry, self.metrics = registry, tuple(metrics)
        self._headers = [_header(m) for m in self.metrics]
        self._prefixes: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}
        self._fell_back = False

    def render(self) -> bytes:
        try:
            return self._render()
        except (AttributeError, TypeError, KeyError, IndexError) as exc:  # a library laid out anew
            if not self._fell_back:
                log.warning("event=metrics_slow_path error=%r", exc)
                self._fell_back = True
            return generate_latest(self.registry)

    def _render(self) -> bytes:
        out: list[str] = []
        for metric, header in zip(self.metrics, self._headers, strict=True):
            out.append(header)
            m: Any = metric  # the library's own attributes, untyped: the parity test pins them
            children: list[tuple[tuple[str, ...], Any]]
            if m._labelnames:
                with m._lock:
                    children = list(m._metrics.items())
            else:
                children = [((), m)]
            for values, child in children:
                self._series(out, m, values, child)
        return "".join(out).encode()

    def _series(self, out: list[str], metric: Any, values: tuple[str, ...], child: Any) -> None:
        kind = metric._type
        if kind == "info":  # one series whose labels are its value: made each time, it is one line
            with child._lock:
                pairs = dict(zip(metric._labelnames, values, strict=True)) | child._value
            out.append(f"{metric._name}_info{_labels(pairs)} 1.0\n")
            return
        key = (id(metric), values)
        prefixes = self._prefixes.get(key)
        if prefixes is None:
            prefixes = self._prefixes[key] = self._make_prefixes(metric, values)
        if kind == "histogram":
            count = 0.0
            for prefix, bucket in zip(prefixes, child._buckets, strict=False):
                count += bucket.get()
                out.append(f"{prefix}{number(count)}\n")
            out.append(f"{prefixes[-2]}{number(count)}\n{prefixes[-1]}{number(child._sum.get())}\n")
        else:
            out.append(f"{prefixes[0]}{number(child._value.get())}\n")

    @staticmethod
    def _make_prefixes(metric: Any, values: tuple[str, ...]) -> tuple[str, ...]:
        labels = dict(zip(metric._labelnames, values, strict=True))
        name, kind = metric._name, metric._type
        if kind == "counter":
            return (f"{name}_total{_labels(labels)} ",)
        if kind == "gauge":
            return (f"{name}{_labels(labels)} ",)
        if kind == "histogram":
            buckets = tuple(
                f"{name}_bucket{_labels(labels | {'le': go_float(bound)})} " for bound in metric._upper_bounds
            )
            return (*buckets, f"{name}_count{_labels(labels)} ", f"{name}_sum{_labels(labels)} ")
        raise TypeError(f"no exposition for a {kind} here")
