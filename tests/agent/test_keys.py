"""The gateway's key files: PKCS#8 at mode 0600, SPKI beside it, and one clear line when one is wrong."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from meterlink.agent.errors import KeyFileError
from meterlink.agent.keys import generate_keypair, load_private_key, load_public_key
from meterlink.wire.jws import Signer, thumbprint


def test_keygen_writes_pkcs8_0600_and_spki(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert thumbprint(load_public_key(pub_path)) == Signer(load_private_key(key_path)).kid
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair(tmp_path / "k")


def test_a_private_key_readable_by_others_is_refused(keys: tuple[Path, Path]) -> None:
    key_path, _ = keys
    os.chmod(key_path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(key_path)


def test_missing_and_wrong_key_files_say_what_is_wrong(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "nope.key")
    _, pub_path = keys
    os.chmod(pub_path, 0o600)
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_private_key(pub_path)
