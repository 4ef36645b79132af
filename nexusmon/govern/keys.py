"""Operator key pairs (Ed25519): where they live, how they are made, read and printed.

A public key travels as a token ``ed25519:<base64 of the 32 raw bytes>``; that
is what `nexusmon keygen` prints and what policies list under ``operators``.
The private key is a PEM (PKCS#8) file readable by its owner only. There is no
default key: nothing here invents one when the file is missing.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Union

from nexusmon.errors import NexusmonError
from nexusmon.util.atomic import write_atomic

TOKEN_PREFIX = "ed25519:"
KEY_FILE_NAME = "operator.key"
_RAW_KEY_BYTES = 32

if TYPE_CHECKING:  # cryptography is imported by the functions that use it: runs seldom need it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    AnyKey = Union[Ed25519PrivateKey, Ed25519PublicKey]


class OperatorKeyError(NexusmonError):
    """An operator key file or public key token is missing, unreadable or malformed."""


def default_key_path(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/nexusmon/operator.key``, else ``$HOME/.config/nexusmon/operator.key``."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "nexusmon" / KEY_FILE_NAME
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".config" / "nexusmon" / KEY_FILE_NAME


def public_key_path(key_path: Path) -> Path:
    """The public key file written beside a private key (``operator.key`` -> ``operator.pub``)."""
    return key_path.with_suffix(".pub")


def generate_keypair(path: Path, name: str | None = None, force: bool = False) -> str:
    """Write a new private key to ``path`` (mode 0600) and its ``.pub`` beside it; return the token."""
    if path.exists() and not force:
        raise OperatorKeyError(
            f"an operator key already exists at {path}; "
            "keep it, or pass --force to replace it (approvals signed with it stop matching policy)"
        )
    if path.is_dir():
        raise OperatorKeyError(f"cannot write operator key: {path} is a directory")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    token = public_token(key)
    try:
        _make_private_dir(path.parent)
        write_atomic(path, pem, 0o600)
        write_atomic(public_key_path(path), _public_file_text(token, name).encode("utf-8"), 0o644)
    except OSError as exc:
        raise OperatorKeyError(f"cannot write operator key {path}: {exc.strerror or exc}") from None
    return token


def _public_file_text(token: str, name: str | None) -> str:
    label = f" ({' '.join(name.split())})" if name and name.strip() else ""
    return f"# nexusmon operator public key{label}\n{token}\n"


def _make_private_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key from a PEM file, with errors a user can act on."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise OperatorKeyError(
            f"operator key {path} is encrypted; nexusmon needs an unencrypted key "
            "(run `nexusmon keygen` for a new one)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise OperatorKeyError(
            f"{path} is not a PEM private key (expected the file written by `nexusmon keygen`)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise OperatorKeyError(
            f"{path} holds a {type(key).__name__.lstrip('_')} key; operator keys are Ed25519"
        )
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise OperatorKeyError(f"no operator key at {path}; run `nexusmon keygen`") from None
    except IsADirectoryError:
        raise OperatorKeyError(f"operator key path {path} is a directory, not a key file") from None
    except OSError as exc:
        raise OperatorKeyError(f"cannot read operator key {path}: {exc.strerror or exc}") from None


def key_permission_warning(path: Path) -> str | None:
    """A one-line warning when group or others may read the private key, else None."""
    if os.name != "posix":
        return None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return f"operator key {path} is accessible by other users (mode {mode:04o}); run `chmod 600 {path}`"


def public_token(key: AnyKey) -> str:
    """``ed25519:<base64>`` for a private or public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TOKEN_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_token(token: str) -> Ed25519PublicKey:
    """The public key named by an ``ed25519:<base64>`` token (standard or URL-safe base64)."""
    raw = public_key_bytes(token)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_bytes(token: str) -> bytes:
    """The 32 raw bytes of an ``ed25519:<base64>`` token; :class:`OperatorKeyError` names what is wrong.

    Imports no cryptography: the policy checks every command runs stay cheap.
    """
    text = token.strip() if isinstance(token, str) else ""
    if not text.startswith(TOKEN_PREFIX):
        raise OperatorKeyError(
            f"public key {short_token(str(token))!r} must start with '{TOKEN_PREFIX}' "
            "(copy it from `nexusmon keygen` or operator.pub)"
        )
    raw = _decode_base64(text[len(TOKEN_PREFIX):])
    if raw is None:
        raise OperatorKeyError(f"public key {short_token(text)!r} is not valid base64")
    if len(raw) != _RAW_KEY_BYTES:
        raise OperatorKeyError(
            f"public key {short_token(text)!r} holds {len(raw)} bytes; an Ed25519 key has {_RAW_KEY_BYTES}"
        )
    return raw


def canonical_token(token: str) -> str:
    """The token in the form `public_token` prints, whatever base64 flavour it was written in."""
    return public_token(parse_public_token(token))


def _decode_base64(text: str) -> bytes | None:
    body = text.replace("-", "+").replace("_", "/").rstrip("=")
    if not body:
        return None
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def short_token(token: str) -> str:
    """A token cut to a recognisable prefix for one-line messages."""
    return token if len(token) <= 16 else token[:16] + "…"
