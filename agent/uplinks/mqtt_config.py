"""``[uplink.mqtt]``: the broker the agent publishes signed batches to, its TLS and its credentials.

The password never sits in the site file: it is read from a file or an environment variable when
the agent connects, and held as ``SecretStr`` so it appears in no repr, log line or error message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ..config_types import FilePath, Strict
from ..errors import ConfigError


class MqttConfig(Strict):
    broker: str
    client_id: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    ca: FilePath | None = None
    client_cert: FilePath | None = None
    client_key: FilePath | None = None
    username: str | None = None
    password_file: FilePath | None = None
    password_env: str | None = None
    topic_prefix: Annotated[str, Field(pattern=r"^[^#+\s]+$")] = "meterlink"
    upload_interval: Annotated[int, Field(ge=1, le=86400)] = 60
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 60
    publish_timeout: Annotated[float, Field(gt=0, le=300)] = 10
    compression: Literal["deflate", "none"] = "deflate"
    # After an outage the backlog drains oldest first at this many readings per second (0: as
    # fast as the link allows); live readings go out at every upload slot regardless.
    backfill_rate: Annotated[float, Field(ge=0, le=1_000_000)] = 2000
    # Application-level receipts: a batch counts as delivered only when the platform's receipt
    # arrives on <prefix>/<gateway>/receipts (signed with receipt_key, or trusted by broker ACL).
    receipts: bool = False
    receipt_key: FilePath | None = None
    receipt_timeout: Annotated[float, Field(gt=0, le=86400)] = 300
    # Photos of manual readings go out on <prefix>/<gateway>/evidence/<sha256> (off: only their digest).
    evidence: bool = False
    evidence_max_kb: Annotated[int, Field(ge=1, le=65_536)] = 4096

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("has no host name")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use username and password_file or password_env")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return v

    @model_validator(mode="after")
    def _tls_and_secrets(self) -> MqttConfig:
        tls = self.tls
        if not tls and (self.ca or self.client_cert or self.client_key):
            raise ValueError("ca/client_cert/client_key need an mqtts:// broker (TLS is never optional once set)")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        if self.password_file and self.password_env:
            raise ValueError("give password_file or password_env, not both")
        if (self.password_file or self.password_env) and not self.username:
            raise ValueError("a password needs a username")
        if self.receipt_key is not None and not self.receipts:
            raise ValueError("receipt_key is set but receipts = false")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.broker).port or (8883 if self.tls else 1883)

    def password(self) -> SecretStr | None:
        """Read the password now (a file can be rotated between restarts)."""
        if self.password_file is not None:
            return SecretStr(_read_password(self.password_file))
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"uplink.mqtt.password_env: environment variable {self.password_env} is not set")
            return SecretStr(value)
        return None


def _read_password(path: Path) -> str:
    """The file's text without its line ending; one ConfigError line when it cannot be used."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"uplink.mqtt.password_file: {path} is not UTF-8 text") from None
    except OSError as exc:  # removed or made unreadable since check-config
        raise ConfigError(f"uplink.mqtt.password_file: {path}: {exc.strerror or exc}") from None
