"""The MQTT connection: paho-mqtt driven by the asyncio event loop, with acknowledgements that mean it.

- paho runs without its own thread: its socket is watched by the event loop (``add_reader`` /
  ``add_writer``) and ``loop_misc`` runs once a second for keep-alive. Only the blocking part of
  ``connect`` (DNS, TCP connect, TLS handshake) runs in a worker thread.
- A fresh paho client is made for every connection. paho keeps unacknowledged QoS 1 messages in
  memory and re-sends them after a reconnect; with a fresh client nothing survives a connection
  except what is in the store, which stays the only queue.
- ``publish`` is refused while disconnected (nothing is handed to paho), returns only after a
  PUBACK whose reason code is a success, and raises on a negative reason code (MQTT 5: "not
  authorized" still arrives as a PUBACK), on a timeout, and on a lost connection.
- Reconnection runs forever with exponential backoff and full jitter (tenacity). TLS verifies the
  broker's certificate and host name by default and is never dropped on failure.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from .base import ConnectFailed, NotConnected, Publication, Rejected, TimedOut, UplinkError, keep_connected

log = logging.getLogger("meterlink.mqtt")


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    status_topic: str
    protocol: str = "5"  # "5" or "3.1.1"
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: SecretStr | None = None
    keepalive: int = 60
    connect_timeout: float = 10.0
    backoff_max: float = 60.0
    max_inflight: int = 16

    def __repr__(self) -> str:  # never print the password, not even masked by accident
        return f"MqttSettings(host={self.host!r}, port={self.port}, client_id={self.client_id!r})"


def make_tls_context(ca: str | None, client_cert: str | None, client_key: str | None) -> ssl.SSLContext:
    """Certificate and host name verified, against ``ca`` if given, else the system's CAs."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx


def describe_connect_error(exc: BaseException) -> str:
    """One line a technician can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: broker certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker down or wrong port?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "connection timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class MqttLink:
    """One logical connection to the broker, kept up forever by :meth:`run`."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self.connected = asyncio.Event()
        self.on_connected: list[Callable[[], Awaitable[None]]] = []
        self.on_message: Callable[[str, bytes], None] | None = None
        self.subscriptions: list[str] = []
        self.connections = 0
        self.last_error = ""
        self._client: paho.Client | None = None
        self._pending: dict[int, asyncio.Future[ReasonCode]] = {}
        self._lost: asyncio.Future[str] | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._misc_task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(settings.max_inflight)

    # -- connection lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, stay connected, reconnect after every loss, until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await keep_connected(
            self._connect_once,
            self._serve,
            backoff_max=self.settings.backoff_max,
            on_retry=self._log_retry,
            closing=lambda: self._closing,
        )

    async def _serve(self, _: None) -> None:
        reason = await self._wait_lost()
        if not self._closing:
            log.warning(
                "event=mqtt_disconnected broker=%s:%d reason=%r", self.settings.host, self.settings.port, reason
            )

    def _log_retry(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        self.last_error = str(exc)
        log.warning(
            "event=mqtt_connect_failed broker=%s:%d attempt=%d retry_in=%.1fs error=%r",
            self.settings.host,
            self.settings.port,
            state.attempt_number,
            wait,
            str(exc),
        )

    async def _wait_lost(self) -> str:
        assert self._lost is not None
        try:
            return await self._lost
        finally:
            self._drop_connection("connection lost")

    def _new_client(self) -> paho.Client:
        s = self.settings
        v5 = s.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.suppress_exceptions = True
        client.connect_timeout = s.connect_timeout
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(s.max_inflight)  # paho must never become a queue of its own
        if s.tls is not None:
            client.tls_set_context(s.tls)
        if s.username is not None:
            client.username_pw_set(s.username, s.password.get_secret_value() if s.password else None)
        client.will_set(s.status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        return client

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        client = self._new_client()
        self._client = client
        self._lost = loop.create_future()
        self._connack: asyncio.Future[ReasonCode] = loop.create_future()
        try:
            kwargs: dict[str, Any] = {"clean_start": True} if s.protocol == "5" else {}
            await loop.run_in_executor(None, lambda: client.connect(s.host, s.port, s.keepalive, **kwargs))
        except (OSError, ValueError) as exc:
            self._drop_connection("connect failed")
            raise ConnectFailed(describe_connect_error(exc)) from None
        misc = loop.create_task(self._misc_loop(client), name="meterlink.mqtt.misc")
        try:
            code = await asyncio.wait_for(asyncio.shield(self._connack), s.connect_timeout)
        except TimeoutError:
            misc.cancel()
            self._drop_connection("no CONNACK")
            raise ConnectFailed("no CONNACK from broker in time") from None
        except ConnectFailed:
            misc.cancel()
            self._drop_connection("connection closed during CONNECT")
            raise
        if code.is_failure:
            misc.cancel()
            self._drop_connection("CONNACK refused")
            raise ConnectFailed(f"broker refused the connection: {code.getName()}")
        self._misc_task = misc
        self.connections += 1
        self.last_error = ""
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()
        log.info(
            "event=mqtt_connected broker=%s:%d tls=%s protocol=%s", s.host, s.port, "yes" if s.tls else "no", s.protocol
        )
        try:
            await self.publish(s.status_topic, b"online", retain=True, timeout=s.connect_timeout)
            for callback in self.on_connected:
                await callback()
        except UplinkError as exc:
            self._drop_connection("lost right after connecting")
            raise ConnectFailed(f"connection lost right after CONNACK: {exc}") from None

    async def _misc_loop(self, client: paho.Client) -> None:
        # paho's housekeeping: PINGREQ at the keep-alive and the missing-PINGRESP check. A few
        # times per keep-alive period is plenty; every second would cost CPU on a small board.
        period = max(1.0, min(5.0, self.settings.keepalive / 6))
        while True:
            await asyncio.sleep(period)
            if client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return

    def _drop_connection(self, why: str) -> None:
        self.connected.clear()
        task = self._misc_task
        if task is not None:
            task.cancel()
            self._misc_task = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(NotConnected(why))
        self._pending.clear()
        client, self._client = self._client, None
        if client is None:
            return
        # Detach first: a late callback must not touch the next connection's state or sockets.
        for name in (
            "on_connect",
            "on_disconnect",
            "on_publish",
            "on_message",
            "on_socket_open",
            "on_socket_close",
            "on_socket_register_write",
            "on_socket_unregister_write",
        ):
            setattr(client, name, None)
        self._forget_socket(client.socket())
        try:
            client.disconnect()
            client.loop_write()
        except Exception:  # a dead socket: nothing left to say to the broker
            pass
        sock = client.socket()
        if sock is not None:
            self._forget_socket(sock)
            sock.close()

    async def close(self, timeout: float = 3.0) -> None:
        """Say offline (retained), disconnect cleanly, stop reconnecting."""
        self._closing = True
        if self.connected.is_set():
            try:
                await self.publish(self.settings.status_topic, b"offline", retain=True, timeout=timeout)
            except Exception as exc:  # the will says offline anyway
                log.info("event=mqtt_offline_not_sent error=%r", str(exc))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result("closed")
        self._drop_connection("closed")

    # -- publishing ------------------------------------------------------------------------------

    async def deliver(self, item: Publication) -> None:
        """The uplink's promise (:class:`~meterlink.agent.uplinks.base.Uplink`): :meth:`publish` it."""
        await self.publish(item.topic, item.payload, retain=item.retain, timeout=item.timeout)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0) -> None:
        """Publish at QoS 1 and return after a successful PUBACK.

        Raises:
            NotConnected: no connection now, or it was lost before the PUBACK.
            Rejected: the broker's reason code says failure (e.g. 0x87 not authorized).
            TimedOut: no PUBACK within ``timeout`` seconds.
        """
        async with self._slots:  # never more in flight than paho is allowed to hold
            return await self._publish(topic, payload, retain, timeout)

    async def _publish(self, topic: str, payload: bytes, retain: bool, timeout: float) -> None:
        client = self._client
        if client is None or not self.connected.is_set():
            raise NotConnected("not connected to the broker")
        info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnected(f"publish not accepted: {paho.error_string(info.rc)}")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ReasonCode] = loop.create_future()
        # Safe to register after publish(): the PUBACK can only be read by loop_read on this thread.
        self._pending[info.mid] = fut
        try:
            code = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimedOut(f"no PUBACK within {timeout:g} s") from None
        finally:
            if self._pending.get(info.mid) is fut:
                del self._pending[info.mid]
        if code.is_failure:
            raise Rejected(code.getName(), code.value)

    # -- paho callbacks (event-loop thread, except socket_open during connect) ----------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any) -> None:
        if client is self._client and not self._connack.done():
            self._connack.set_result(code)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any) -> None:
        if client is not self._client:
            return
        if not self._connack.done():
            self._connack.set_exception(ConnectFailed(f"connection closed by broker: {code.getName()}"))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(code.getName() if code.is_failure else "disconnected")

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, code: ReasonCode, props: Any) -> None:
        fut = self._pending.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(code)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self.on_message is not None:
            self.on_message(message.topic, bytes(message.payload))

    def _in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run on the event loop's thread: directly when already there, else scheduled."""
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch_socket, client, sock)

    def _watch_socket(self, client: paho.Client, sock: Any) -> None:
        if client is self._client and sock.fileno() != -1:
            assert self._loop is not None
            self._loop.add_reader(sock, client.loop_read)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._forget_socket, sock)

    def _forget_socket(self, sock: Any) -> None:
        if sock is not None and self._loop is not None and sock.fileno() != -1:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch_writes, client, sock)

    def _watch_writes(self, client: paho.Client, sock: Any) -> None:
        if client is self._client and sock.fileno() != -1:
            assert self._loop is not None
            self._loop.add_writer(sock, client.loop_write)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._stop_writes, sock)

    def _stop_writes(self, sock: Any) -> None:
        if self._loop is not None and sock.fileno() != -1:
            self._loop.remove_writer(sock)
