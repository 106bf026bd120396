"""``byok init DIR --age-recipient AGE``: scaffold a configuration repository.

The scaffold validates as created: its sample Key reads the API key from an
environment variable, so nothing needs encrypting before the first commit.
An occupied folder or a malformed recipient is a usage error (exit 2) and
nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from byok_reconcile.commands.common import fail, finish, output_options
from byok_reconcile.errors import ByokError, UsageError
from byok_reconcile.results import Report

if TYPE_CHECKING:
    from importlib.abc import Traversable

TEMPLATE = "init"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def check_age_recipient(value: str) -> str:
    """``value`` if it is an age X25519 recipient, else :class:`UsageError`.

    A recipient is ``age1`` followed by bech32 data whose checksum holds and
    which decodes to a 32-byte public key.
    """
    hint = "give the public key from `age-keygen -y KEYFILE`: age1 + 58 characters"
    if value.startswith("AGE-SECRET-KEY-"):
        # Said plainly, without echoing the secret key back.
        raise UsageError("--age-recipient got an age secret key", hint=hint)
    shown = value if len(value) <= 80 else value[:77] + "..."
    if not _is_age_recipient(value):
        raise UsageError(f"{shown!r} is not an age recipient", hint=hint)
    return value


def _is_age_recipient(value: str) -> bool:
    if value != value.lower() or not value.startswith("age1") or len(value) != 62:
        return False
    data = value[4:]
    if any(c not in _BECH32 for c in data):
        return False
    values = [_BECH32.index(c) for c in data]
    return _bech32_polymod(_hrp_expand("age") + values) == 1


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            check ^= gen if (top >> i) & 1 else 0
    return check


def scaffold(target: Path, recipients: Sequence[str]) -> list[str]:
    """Write the scaffold into ``target`` (absent or empty); return its files.

    Raises :class:`UsageError` when ``target`` holds anything or is a file.
    """
    checked = [check_age_recipient(r) for r in recipients]
    _check_target(target)
    files = list(
        _template_files(resources.files("byok_reconcile") / "templates" / TEMPLATE)
    )
    written = []
    for rel, source in files:
        text = source.read_text(encoding="utf-8")
        text = text.replace("{{AGE_RECIPIENTS}}", ",".join(checked))
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(rel)
    return sorted(written)


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is a file", hint="give a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(
            f"{target} is not empty; byok init writes only into a new or empty folder",
            hint="choose another folder, or move its files away first",
        )


def _template_files(
    root: Traversable, prefix: str = ""
) -> Iterator[tuple[str, Traversable]]:
    # Templates store dotfiles as dot-NAME: packaging globs skip hidden files.
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(("__", ".")):
            continue
        name = "." + entry.name[4:] if entry.name.startswith("dot-") else entry.name
        rel = f"{prefix}{name}"
        if entry.is_dir():
            yield from _template_files(entry, rel + "/")
        else:
            yield rel, entry


def run(target: Path, recipients: Sequence[str]) -> Report:
    """Scaffold ``target`` and describe what was written."""
    files = scaffold(target, recipients)
    summary = (
        f"created {len(files)} files in {target}; next: "
        f"cd {target} && git init && byok validate config"
    )
    return Report(
        command="init", data={"directory": str(target), "files": files}, summary=summary
    )


@click.command(name="init")
@click.argument(
    "directory", type=click.Path(file_okay=True, dir_okay=True, path_type=Path)
)
@click.option(
    "--age-recipient",
    "recipients",
    multiple=True,
    required=True,
    help="age public key (age1...) that may decrypt the keys; repeatable.",
)
@output_options
def command(
    directory: Path, recipients: tuple[str, ...], fmt: str, verbose: int, quiet: bool
) -> None:
    """Scaffold a new configuration repository in DIRECTORY.

    DIRECTORY must be new or empty. The result validates as created.
    """
    try:
        report = run(directory, recipients)
    except ByokError as exc:
        fail(exc, "init", fmt)
    except OSError as exc:
        fail(UsageError(f"cannot write {exc.filename}: {exc.strerror}"), "init", fmt)
    finish(report, fmt, quiet=quiet, verbose=verbose)
