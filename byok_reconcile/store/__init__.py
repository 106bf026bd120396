"""Target stores: where apply writes keys and feature mappings.

One small interface, :class:`Store`, with two backends: SQL (SQLite and
PostgreSQL through SQLAlchemy Core, in ``store.sql``) and a folder of JSON
files (``store.filestore``). :func:`open_target` picks one from a URL:

- ``sqlite:///path/to/byok.db``
- ``postgresql://user@host:5432/db``
- ``file:///path/to/dir``

Readers call :meth:`Store.read`; writers run inside :meth:`Store.transaction`,
which holds the store's lock for its whole life and either commits every
write or none.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from byok_reconcile.errors import StoreError
from byok_reconcile.store.rows import StoreState, WriteSet

ENV_TARGET = "BYOK_TARGET"
SCHEMES = ("sqlite", "postgresql", "file")


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
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def open_target(url: str) -> Store:
    """Open the store at ``url``, creating or migrating its schema.

    Raises :class:`StoreError` (exit 3) when the store cannot be reached.
    """
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme not in SCHEMES:
        raise StoreError(
            f"unknown target {redact_url(url)!r}",
            hint="use sqlite:///path, postgresql://user@host:port/db or file:///dir",
        )
    if scheme == "file":
        from byok_reconcile.store.filestore import FileStore

        return FileStore.open(url)
    from byok_reconcile.store.sql import SqlStore

    return SqlStore.open(url)
