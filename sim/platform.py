"""The platform side, simulated: subscribes to a gateway's topics and verifies every message.

It does what the provincial platform must do: verify the JWS with the gateway's public key, check
the payload's shape, drop duplicates by (gateway, seq), and notice when a duplicate carries
different content (which must never happen). The demo and the end-to-end tests use it as the
judge of what arrived.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from meterlink.wire.errors import PayloadError, VerifyError
from meterlink.wire.jws import Signer, Verifier
from meterlink.wire.payload import check_message
from meterlink.wire.receipts import receipt_message


@dataclass
class Received:
    """Everything the platform has seen, guarded by one lock (paho calls back from its thread)."""

    messages: int = 0
    verified: int = 0
    rejected: int = 0
    duplicates: int = 0
    conflicts: int = 0
    readings: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    backfilled: set[tuple[str, int]] = field(default_factory=set)  # arrived in "backfill": true messages
    events: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    batches: list[int] = field(default_factory=list)
    reject_reasons: list[str] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)  # day summaries, corrections included
    archive: dict[str, Any] | None = None  # the latest meter archive
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)  # manual readings' photos by sha256

    def seqs(self, gateway: str) -> list[int]:
        return sorted(seq for gw, seq in self.readings if gw == gateway)

    def meters(self) -> set[str]:
        return {r["meter"] for r in self.readings.values()}


class Platform:
    def __init__(
        self,
        host: str,
        port: int,
        verifier: Verifier,
        *,
        topic_prefix: str = "meterlink",
        gateway: str = "+",
        tls: Any = None,
        client_id: str | None = None,
        on_batch: Callable[[str, dict[str, Any], int], None] | None = None,
        on_reject: Callable[[str, str], None] | None = None,
        receipts: bool = False,
        receipt_signer: Signer | None = None,
    ) -> None:
        self.verifier = verifier
        self.prefix = topic_prefix
        self.gateway = gateway
        self.on_batch = on_batch
        self.on_reject = on_reject
        self.receipts = receipts or receipt_signer is not None
        self.receipt_signer = receipt_signer
        self.receipts_sent = 0
        self.received = Received()
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        persistent = client_id is not None  # a fixed id keeps the broker's queue across reconnects
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or "",
            protocol=paho.MQTTv311,
            clean_session=not persistent,
        )
        if tls is not None:
            self.client.tls_set_context(tls)
        self.host, self.port = host, port
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()

    def start(self, timeout: float = 10.0) -> None:
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            raise TimeoutError("platform did not subscribe in time")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        client.subscribe(f"{self.prefix}/{self.gateway}/#", qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind == "receipts":
            return  # its own receipts, heard back through the wildcard subscription
        if kind == "status":
            with self.lock:
                self.received.status[msg.topic] = msg.payload.decode("utf-8", "replace")
            return
        with self.lock:
            self.received.messages += 1
        try:
            payload = check_message(self.verifier.verify(msg.payload).json())
        except (VerifyError, PayloadError) as exc:
            with self.lock:
                self.received.rejected += 1
                self.received.reject_reasons.append(str(exc))
            if self.on_reject:
                self.on_reject(msg.topic, str(exc))
            return
        new = self._record(payload)
        if self.receipts and payload.get("readings"):
            self._send_receipt(payload)
        if self.on_batch:
            self.on_batch(kind, payload, new)

    def _send_receipt(self, payload: dict[str, Any]) -> None:
        """Tell the gateway this batch is stored: only then may it count the readings as delivered."""
        seqs = [r["seq"] for r in payload["readings"]]
        body = receipt_message(payload["gateway"], payload["batch"], min(seqs), max(seqs))
        message = self.receipt_signer.sign(body) if self.receipt_signer else body
        self.client.publish(f"{self.prefix}/{payload['gateway']}/receipts", message, qos=1)
        with self.lock:
            self.receipts_sent += 1

    def _record(self, payload: dict[str, Any]) -> int:
        gateway = payload["gateway"]
        new = 0
        with self.lock:
            r = self.received
            r.verified += 1
            r.batches.append(payload["batch"])
            for event in payload.get("events", []):
                r.events.append(event)
            r.daily += payload.get("daily", [])
            if "archive" in payload:
                r.archive = payload["archive"]
            if "evidence" in payload:
                r.evidence[payload["evidence"]["sha256"]] = payload["evidence"]
            for reading in payload.get("readings", []):
                key = (gateway, reading["seq"])
                if payload.get("backfill"):
                    r.backfilled.add(key)
                seen = r.readings.get(key)
                if seen is None:
                    r.readings[key] = reading
                    new += 1
                elif json.dumps(seen, sort_keys=True) == json.dumps(reading, sort_keys=True):
                    r.duplicates += 1
                else:
                    r.conflicts += 1
        return new

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self.received):
                    return True
            time.sleep(0.05)
        with self.lock:
            return predicate(self.received)
