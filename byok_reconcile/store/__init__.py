"""Target stores: where apply writes keys and feature mappings.

One small interface, :class:`Store`, with two backends: SQL (SQLite and
PostgreSQL through SQLAlchemy Core, in ``store.sql``) and a folder of JSON
files (``store.filestore``). :func:`open_target` picks one from a URL:

- ``sqlite:///relative/byok.db`` or ``sqlite:////absolute/byok.db``
- ``postgresql://user@host:5432/db``
- ``file:///path/to/dir``

Readers call :meth:`Store.read`; writers run inside :meth:`Store.transaction`,
which holds the store's lock for its whole life and either commits every
write or none. ``open_target(url, create=False)`` never writes: a store that
does not exist yet raises :class:`StoreMissingError` instead of appearing.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from byok_reconcile.errors import StoreError, UsageError
from byok_reconcile.store.rows import StoreState, WriteSet

ENV_TARGET = "BYOK_TARGET"
SCHEMES = ("sqlite", "postgresql", "postgres", "file")
ACCEPTED = (
    "sqlite:///relative/path.db (three slashes: relative to this folder), "
    "sqlite:////abs/path.db (four: absolute), "
    "postgresql://user@host:5432/db, file:///abs/dir"
)


class StoreMissingError(StoreError):
    """The store does not exist yet (and the caller asked not to create it)."""


class Transaction(Protocol):
    """An open, locked transaction on a store."""

    def state(self) -> StoreState:
        """The store as it is now, read under the lock."""

    def write(self, writes: WriteSet) -> None:
        """Queue or run ``writes``; they land only if the transaction commits."""


class Store(Protocol):
    """A target store. ``display`` is the URL without any password."""

    display: str

    def read(self) -> StoreState:
        """Everything the store holds, read without taking the write lock."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A locked transaction: committed on normal exit, else rolled back."""

    def close(self) -> None:
        """Release connections."""


def redact_url(url: str) -> str:
    """``url`` without its password, safe for messages and plans."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:
        return "(a malformed URL)"
    if password is None:
        return url
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def check_target(url: str) -> str:
    """The scheme of ``url`` (``sqlite``, ``postgresql`` or ``file``).

    Raises :class:`UsageError` (exit 2) for a URL byok cannot use, with the
    accepted forms; nothing is opened.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise _usage(f"the target {shown!r} is not a valid URL") from None
    scheme = parts.scheme.split("+")[0].lower()
    if "://" not in url or scheme not in SCHEMES:
        what = "has no scheme" if "://" not in url else f"has scheme {scheme!r}"
        raise _usage(f"the target {shown!r} {what}; byok cannot use it")
    if scheme in ("sqlite", "file"):
        _check_local(url, scheme, parts.netloc, parts.path)
    return "postgresql" if scheme == "postgres" else scheme


def _check_local(url: str, scheme: str, netloc: str, path: str) -> None:
    if netloc:
        raise _usage(
            f"the target {url!r} names a host ({netloc!r}): {scheme} URLs have "
            f"three slashes, {scheme}:///{netloc}{path} for a path relative to "
            f"this folder" + (", four for an absolute path" if scheme == "sqlite"
                              else "")
        )
    if not path.strip("/"):
        raise _usage(f"the target {url!r} has no path")
    if scheme == "file" and not path.startswith("/"):
        raise _usage(f"the target {url!r} must be an absolute path")


def _usage(message: str) -> UsageError:
    return UsageError(message, hint=f"use {ACCEPTED}")


def canonical_target(url: str) -> str:
    """``url`` without password, a relative SQLite path made absolute.

    Two spellings of the same store compare equal, so a saved plan can tell
    whether ``--target`` is the store it was made for.
    """
    scheme = check_target(url)
    if scheme == "sqlite":
        path = sqlite_path(url)
        return f"sqlite:///{os.path.abspath(path)}" if path else url
    if scheme == "file":
        return f"file://{os.path.abspath(unquote(urlsplit(url).path))}"
    return redact_url(url)


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite:///`` URL names (None for an in-memory database)."""
    path = unquote(urlsplit(url).path)
    # sqlite:///x.db has path "/x.db" and means the relative file "x.db".
    path = path[1:] if path.startswith("/") else path
    return path if path and path != ":memory:" else None


def open_target(url: str, *, create: bool = True) -> Store:
    """Open the store at ``url``.

    With ``create`` (apply, rotate-key) a missing store is created and an
    old schema migrated. Without it (plan, status, the read API) nothing is
    written: a store that does not exist yet raises
    :class:`StoreMissingError`. A URL byok cannot use raises
    :class:`UsageError`; an unreachable store :class:`StoreError` (exit 3).
    """
    scheme = check_target(url)
    if scheme == "file":
        from byok_reconcile.store.filestore import FileStore

        return FileStore.open(url, create=create)
    from byok_reconcile.store.sql import SqlStore

    return SqlStore.open(url, create=create)


def missing(display: str) -> StoreMissingError:
    """The error for a store that does not exist yet."""
    return StoreMissingError(
        f"no store at {display}",
        hint="check --target; `byok apply` creates the store on its first run",
    )
