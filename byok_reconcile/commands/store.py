"""``byok store rotate-key``: re-encrypt the store's secrets under a new key.

The old key comes from ``BYOK_STORE_KEY`` or ``--store-key-file``, the new
one from ``--new-key-file``. Every secret is re-encrypted in one
transaction: if one does not open with the old key, nothing changes.
"""

from __future__ import annotations

import click

from byok_reconcile.commands.common import fail, finish, output_options
from byok_reconcile.errors import ByokError
from byok_reconcile.results import Report


@click.group("store", help="Manage the target store.")
def command() -> None:
    """Store maintenance."""


@command.command("rotate-key", help="Re-encrypt every stored secret under a new key.")
@click.option("--target", envvar="BYOK_TARGET", required=True, metavar="URL",
              help="The store URL (or BYOK_TARGET).")
@click.option("--store-key-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding the current store key (else BYOK_STORE_KEY).")
@click.option("--new-key-file", type=click.Path(dir_okay=False), metavar="FILE",
              required=True, help="File holding the new store key.")
@output_options
def rotate_command(
    target: str,
    store_key_file: str | None,
    new_key_file: str,
    fmt: str,
    verbose: int,
    quiet: bool,
) -> None:
    from byok_reconcile.output.logs import configure

    configure(verbose, quiet)
    try:
        report = run_rotate(target, new_key_file, store_key_file=store_key_file)
    except ByokError as exc:
        fail(exc, "store rotate-key", fmt)
        return
    finish(report, fmt, quiet=quiet, verbose=verbose)


def run_rotate(
    target: str, new_key_file: str, *, store_key_file: str | None = None
) -> Report:
    """Re-encrypt every secret in ``target`` under the key in ``new_key_file``."""
    from byok_reconcile.store import open_target
    from byok_reconcile.store.crypto import load_key
    from byok_reconcile.store.rotate import rotate_key

    old = load_key(store_key_file)
    new = load_key(new_key_file)
    store = open_target(target)
    try:
        count = rotate_key(store, old, new)
    finally:
        store.close()
    return Report(
        "store rotate-key",
        data={"target": store.display, "reencrypted": count, "keyId": new.key_id},
        summary=f"{count} secrets re-encrypted under store key {new.key_id}.",
    )
