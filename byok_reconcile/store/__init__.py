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
from urllib.parse import unquote, urlsplit

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


# A query parameter whose name contains one of these may hold a credential.
SENSITIVE_PARAMS = ("pass", "secret", "token", "key")
REDACTED = "***"
# The drivers byok ships with; "postgresql" alone means psycopg 3.
DRIVERS = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg")}


def redact_url(url: str) -> str:
    """``url`` without its password or any credential in its query string.

    Works on URLs that ``urlsplit`` would reject (a bad port), so an error
    about such a URL can still be shown.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _redact_query(url)
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#"))
               if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{hostport}"
    return f"{scheme}://{netloc}{_redact_query(tail)}"


def _redact_query(text: str) -> str:
    head, q, query = text.partition("?")
    if not q:
        return text
    query, hash_, fragment = query.partition("#")
    items = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        if eq and _sensitive(name):
            item = f"{name}={REDACTED}"
        items.append(item)
    return f"{head}?{'&'.join(items)}{hash_}{fragment}"


def _sensitive(name: str) -> bool:
    name = unquote(name).lower()
    return any(word in name for word in SENSITIVE_PARAMS)


def url_secrets(url: str) -> list[str]:
    """Every credential in ``url`` (password, sensitive query values), both
    as written and percent-decoded, longest first, for scrubbing messages."""
    found: set[str] = set()
    _, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0] if sep else ""
    userinfo, at, _ = netloc.rpartition("@")
    if at and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    query = url.partition("?")[2].partition("#")[0]
    for item in query.split("&") if query else ():
        name, eq, value = item.partition("=")
        if eq and _sensitive(name):
            found.add(value)
    found |= {unquote(v) for v in found}
    return sorted((v for v in found if v), key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """``text`` with every credential of ``url`` replaced by ``***``."""
    for value in url_secrets(url) if url else ():
        text = text.replace(value, REDACTED)
    return text


def check_target(url: str) -> str:
    """The scheme of ``url`` (``sqlite``, ``postgresql`` or ``file``).

    Raises :class:`UsageError` (exit 2) for a URL byok cannot use, with the
    accepted forms; nothing is opened.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        why = "a bad port" if "port" in str(exc).lower() else "a malformed host"
        raise _usage(f"the target {shown!r} is not a valid URL: it has {why}"
                     ) from None
    scheme, _, driver = parts.scheme.lower().partition("+")
    if "://" not in url or scheme not in SCHEMES:
        what = "has no scheme" if "://" not in url else f"has scheme {scheme!r}"
        raise _usage(f"the target {shown!r} {what}; byok cannot use it")
    scheme = "postgresql" if scheme == "postgres" else scheme
    if driver not in DRIVERS.get(scheme, ("",)):
        raise _usage(
            f"the target {shown!r} asks for the driver {driver!r}, which byok "
            f"does not use; " + ("write postgresql:// (byok uses psycopg 3)"
                                 if scheme == "postgresql" else
                                 f"write {scheme}:// without a driver")
        )
    if scheme == "sqlite":
        _check_sqlite(shown, parts.hostname or "", parts.path, url)
    elif scheme == "file":
        _check_file(shown, parts.netloc, parts.path, parts.query)
    return scheme


def _check_sqlite(shown: str, host: str, path: str, url: str) -> None:
    if host or "@" in url.partition("://")[2].split("/", 1)[0]:
        raise _usage(
            f"the target {shown!r} names a host: sqlite URLs have three "
            f"slashes, sqlite:///{host}{path} for a path relative to this "
            f"folder, four for an absolute path"
        )
    if sqlite_path(url) is None or "mode=memory" in url.lower():
        raise _usage(
            f"the target {shown!r} names no database file (an in-memory "
            f"database would vanish when byok exits)"
        )


def _check_file(shown: str, netloc: str, path: str, query: str) -> None:
    if netloc and netloc.lower() != "localhost":
        raise _usage(
            f"the target {shown!r} names a host: file URLs take an absolute "
            f"path after three slashes, as in file:///srv/byok-store"
        )
    if not path.strip("/") or query:
        raise _usage(
            f"the target {shown!r} must be file:/// and an absolute folder "
            f"path, with nothing after it"
        )


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
        return f"file://{file_path(url)}"
    return redact_url(url)


def file_path(url: str) -> str:
    """The absolute folder a checked ``file://`` URL names."""
    return os.path.abspath(unquote(urlsplit(url).path))


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
