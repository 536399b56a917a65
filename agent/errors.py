"""The agent's own errors. Each carries a message fit for one line on a technician's terminal."""

from __future__ import annotations


class MeterlinkError(Exception):
    """Root of the errors the CLI turns into one clear line and a non-zero exit."""


class ConfigError(MeterlinkError):
    """The config file is wrong. ``lines`` holds one ``path.to.key: reason`` per problem."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class KeyFileError(MeterlinkError):
    """The signing key cannot be used (missing, unreadable, too open, not Ed25519)."""


class StoreError(MeterlinkError):
    """The store cannot be opened or belongs to another gateway."""
