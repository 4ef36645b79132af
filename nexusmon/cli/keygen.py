"""`nexusmon keygen`: create an operator key pair."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from nexusmon.govern.keys import (
    default_key_path,
    generate_keypair,
    key_permission_warning,
    public_key_path,
)


@click.command()
@click.option("--name", help="Operator name, written as a label into the public key file.")
@click.option("--force", is_flag=True, help="Replace an existing key (its approvals stop matching policy).")
@click.option("--key", "key_file", type=click.Path(dir_okay=False),
              help="Write the private key here instead of $XDG_CONFIG_HOME/nexusmon/operator.key.")
def keygen(name: str | None, force: bool, key_file: str | None) -> int:
    """Create an Ed25519 operator key pair and print the public key (alone on stdout).

    The private key is written with mode 0600 and never leaves this machine;
    put the printed public key into a policy's `operators` list.

    \b
    Example:
      nexusmon keygen --name alice
    """
    path = Path(key_file) if key_file else default_key_path(os.environ)
    token = generate_keypair(path, name=name, force=force)
    click.echo(token)  # stdout holds the key alone: PUB=$(nexusmon keygen)
    click.echo(f"private key: {path}", err=True)
    click.echo(f"public key file: {public_key_path(path)}", err=True)
    # A JSON string is a YAML flow scalar: names like `ops: alice` or `#oncall` paste intact.
    label = json.dumps(name, ensure_ascii=False) if name else "<your name>"
    click.echo(f"declare it in a policy:  operators: [{{name: {label}, public_key: \"{token}\", "
               "may_approve: [A, S]}]", err=True)
    warning = key_permission_warning(path)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    return 0
