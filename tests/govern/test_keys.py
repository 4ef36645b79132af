from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from nexusmon.govern.keys import (
    OperatorKeyError,
    canonical_token,
    default_key_path,
    generate_keypair,
    key_permission_warning,
    load_private_key,
    parse_public_token,
    public_key_path,
    public_token,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_key_path_prefers_xdg_config_home(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert default_key_path(env) == tmp_path / "xdg" / "nexusmon" / "operator.key"


def test_default_key_path_falls_back_to_home_config(tmp_path):
    assert default_key_path({"HOME": str(tmp_path)}) == tmp_path / ".config" / "nexusmon" / "operator.key"


def test_default_key_path_ignores_relative_xdg_config_home(tmp_path):
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "relative/config"}
    assert default_key_path(env) == tmp_path / ".config" / "nexusmon" / "operator.key"


@posix_only
def test_keygen_writes_private_key_0600_in_a_0700_directory(tmp_path):
    path = default_key_path({"HOME": str(tmp_path)})
    token = generate_keypair(path, name="alice")

    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_token(load_private_key(path)) == token
    assert key_permission_warning(path) is None
    assert {p.name for p in path.parent.iterdir()} == {"operator.key", "operator.pub"}


def test_public_file_holds_the_token_and_the_name(tmp_path):
    path = tmp_path / "keys" / "operator.key"
    token = generate_keypair(path, name="alice")

    pub = public_key_path(path)
    assert pub == tmp_path / "keys" / "operator.pub"
    lines = pub.read_text(encoding="utf-8").splitlines()
    assert token in lines
    assert any(line.startswith("#") and "alice" in line for line in lines)
    assert token.startswith("ed25519:")
    assert len(base64.b64decode(token[len("ed25519:"):])) == 32


def test_keygen_refuses_to_overwrite_an_existing_key(tmp_path):
    path = tmp_path / "operator.key"
    first = generate_keypair(path)
    before = path.read_bytes()

    with pytest.raises(OperatorKeyError, match=r"already exists at .*operator\.key.*--force"):
        generate_keypair(path)
    assert path.read_bytes() == before

    second = generate_keypair(path, force=True)
    assert second != first
    assert public_token(load_private_key(path)) == second
    assert second in public_key_path(path).read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_missing_key_tells_the_user_to_run_keygen(tmp_path):
    path = tmp_path / "nope" / "operator.key"
    with pytest.raises(OperatorKeyError) as info:
        load_private_key(path)
    assert str(info.value) == f"no operator key at {path}; run `nexusmon keygen`"


def test_a_directory_is_not_a_key(tmp_path):
    with pytest.raises(OperatorKeyError, match="is a directory"):
        load_private_key(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_key_is_a_clear_error(tmp_path):
    path = tmp_path / "operator.key"
    generate_keypair(path)
    path.chmod(0)
    try:
        with pytest.raises(OperatorKeyError, match="cannot read operator key .*Permission denied"):
            load_private_key(path)
    finally:
        path.chmod(0o600)


def test_garbage_file_is_not_a_private_key(tmp_path):
    path = tmp_path / "operator.key"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(OperatorKeyError, match="is not a PEM private key"):
        load_private_key(path)


def test_a_non_ed25519_key_is_refused(tmp_path):
    path = tmp_path / "operator.key"
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    with pytest.raises(OperatorKeyError, match="operator keys are Ed25519"):
        load_private_key(path)


def test_an_encrypted_key_is_refused(tmp_path):
    path = tmp_path / "operator.key"
    generate_keypair(path)
    key = load_private_key(path)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(OperatorKeyError, match="is encrypted"):
        load_private_key(path)


@posix_only
def test_too_open_key_still_loads_with_a_warning(tmp_path):
    path = tmp_path / "operator.key"
    token = generate_keypair(path)
    path.chmod(0o644)

    assert public_token(load_private_key(path)) == token
    warning = key_permission_warning(path)
    assert warning == (
        f"operator key {path} is accessible by other users (mode 0644); run `chmod 600 {path}`"
    )


def test_token_round_trip(tmp_path):
    token = generate_keypair(tmp_path / "operator.key")
    assert public_token(parse_public_token(token)) == token
    assert public_token(parse_public_token(f"  {token}\n")) == token


def test_url_safe_and_unpadded_tokens_name_the_same_key(tmp_path):
    token = generate_keypair(tmp_path / "operator.key")
    body = token[len("ed25519:"):]
    urlsafe = "ed25519:" + body.replace("+", "-").replace("/", "_").rstrip("=")
    assert canonical_token(urlsafe) == token


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "must start with 'ed25519:'"),
        ("ed25519:", "is not valid base64"),
        ("ed25519:not base64!!", "is not valid base64"),
        ("ed25519:" + base64.b64encode(b"x" * 31).decode(), "holds 31 bytes; an Ed25519 key has 32"),
        ("ed25519:" + base64.b64encode(b"x" * 64).decode(), "holds 64 bytes; an Ed25519 key has 32"),
    ],
)
def test_malformed_tokens_are_clear_errors(token, message):
    with pytest.raises(OperatorKeyError, match=message.replace("(", r"\(")):
        parse_public_token(token)
