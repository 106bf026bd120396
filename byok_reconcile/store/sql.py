"""The SQL store: SQLite and PostgreSQL through SQLAlchemy Core.

Locking: on SQLite a writing transaction starts with ``BEGIN IMMEDIATE``,
which takes the database's write lock before the first read; on PostgreSQL it
takes ``pg_advisory_xact_lock`` first, released at commit or rollback. Either
way the state an apply plans against is the state it writes over.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.engine import Connection, Engine, Row

from byok_reconcile.errors import StoreError, UsageError
from byok_reconcile.store import (
    ACCEPTED,
    missing,
    redact_url,
    schema,
    scrub,
    sqlite_path,
)
from byok_reconcile.store.crypto import Sealed
from byok_reconcile.store.rows import (
    ApplyRecord,
    FeatureRow,
    KeyRow,
    RowError,
    StoreState,
    WriteSet,
    canonical,
    checked_feature,
    checked_key,
    json_column,
    skip_row,
)

log = logging.getLogger("byok")

# Any constant works; it only has to be the same for every byok process.
ADVISORY_LOCK_ID = 0x6279_6F6B
SQLITE_BUSY_SECONDS = 60.0


class SqlStore:
    """A store in a SQL database. Open it with :meth:`open`."""

    def __init__(self, engine: Engine, display: str, url: str = "") -> None:
        self.engine = engine
        self.display = display
        # Kept only to scrub its credentials out of driver messages.
        self._url = url
        self.is_sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> SqlStore:
        """Open the database at ``url``; see :func:`.open_target`."""
        display = redact_url(url)
        path = sqlite_path(url) if url.startswith("sqlite") else None
        if not create and path is not None and not os.path.isfile(path):
            # Connecting would create the file: look before touching it.
            raise missing(display)
        with translate(display, url, connecting=True):
            store = cls(_engine_for(url, display), display, url)
            try:
                store._ensure_schema(create)
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def read(self) -> StoreState:
        guard = translate(self.display, self._url)
        with guard, self._connect(lock=False) as conn:
            return load_state(conn)

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        guard = translate(self.display, self._url)
        with guard, self._connect(lock=True) as conn:
            yield SqlTransaction(conn)

    @contextmanager
    def _connect(self, *, lock: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if not self.is_sqlite and not lock:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn = conn.execution_options(byok_lock=lock)
            with conn.begin():
                if lock and not self.is_sqlite:
                    conn.execute(
                        select(func.pg_advisory_xact_lock(ADVISORY_LOCK_ID))
                    )
                yield conn

    def _ensure_schema(self, create: bool) -> None:
        with self._connect(lock=False) as conn:
            version = schema.pending(conn)
        if version == schema.SCHEMA_VERSION:
            return
        if not create:
            if version == 0:
                raise missing(self.display)
            # An older schema is read as it is; apply migrates it.
            if version < schema.SCHEMA_VERSION:
                return
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{self.display} has schema version {version}, newer than this "
                f"byok knows ({schema.SCHEMA_VERSION})",
                hint="upgrade byok-reconcile",
            )
        with self._connect(lock=True) as conn:
            # Another process may have migrated while we waited for the lock.
            version = schema.pending(conn)
            if version < schema.SCHEMA_VERSION:
                target = schema.SCHEMA_VERSION
                log.info("migrating %s to schema %d", self.display, target)
                schema.migrate(conn, version)


class SqlTransaction:
    """A locked SQL transaction; see :class:`byok_reconcile.store.Transaction`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def state(self) -> StoreState:
        return load_state(self.conn)

    def write(self, writes: WriteSet) -> None:
        conn = self.conn
        _upsert(conn, schema.keys, [key_values(r) for r in writes.key_inserts], [])
        _upsert(conn, schema.keys, [], [key_values(r) for r in writes.key_updates])
        _delete(conn, schema.keys, writes.key_deletes)
        feats = schema.features
        _upsert(conn, feats, [feature_values(r) for r in writes.feature_inserts], [])
        _upsert(conn, feats, [], [feature_values(r) for r in writes.feature_updates])
        _delete(conn, feats, writes.feature_deletes)
        if writes.history is not None:
            conn.execute(schema.applies.insert(), [history_values(writes.history)])


def _upsert(
    conn: Connection, table: Any, inserts: list[dict[str, Any]], updates: list[dict]
) -> None:
    if inserts:
        conn.execute(table.insert(), inserts)
    if updates:
        stmt = table.update().where(table.c.name == bindparam("b_name"))
        conn.execute(stmt, [{**u, "b_name": u["name"]} for u in updates])


def _delete(conn: Connection, table: Any, names: list[str]) -> None:
    if names:
        stmt = table.delete().where(table.c.name == bindparam("b_name"))
        conn.execute(stmt, [{"b_name": n} for n in names])


def _engine_for(url: str, display: str) -> Engine:
    """The engine for ``url``; a URL SQLAlchemy cannot parse is a usage error."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return _make_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        # SQLAlchemy's message may quote the whole URL, password included.
        detail = scrub(_first_line(exc), url)
        raise UsageError(
            f"the target {display} is not a URL byok can open ({detail})",
            hint=f"use {ACCEPTED}",
        ) from None


def _make_engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        _sqlite_locking(engine)
    else:
        engine = create_engine(url, pool_pre_ping=False)
    _log_statements(engine)
    return engine


def _log_statements(engine: Engine) -> None:
    """With -vv, one DEBUG line per statement: its SQL and row count only.

    Parameters are never logged: they hold ciphertext and fingerprints.
    """
    from byok_reconcile.output.logs import log_call

    if not logging.getLogger("byok.store").isEnabledFor(logging.DEBUG):
        return

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sql = " ".join(statement.split())
        log_call("store", "sql", statement=sql[:160], rows=cursor.rowcount)


def _sqlite_locking(engine: Engine) -> None:
    # pysqlite's own transaction handling cannot start BEGIN IMMEDIATE, so we
    # take it over, as the SQLAlchemy documentation recommends.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        lock = conn.get_execution_options().get("byok_lock", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if lock else "BEGIN")


@contextmanager
def translate(
    display: str, url: str | None = None, *, connecting: bool = False
) -> Iterator[None]:
    """Turn driver errors into :class:`StoreError`, with no password in them.

    Only a connection failure gets the "check the URL" hint: a data error
    (a value too long, a broken constraint) says what the store refused.
    """
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    try:
        yield
    except DBAPIError as exc:
        detail = _first_line(exc.orig) if exc.orig else type(exc).__name__
        detail = scrub(detail, url)
        if connecting or isinstance(exc, (OperationalError, InterfaceError)):
            hint = "check the target URL, that the server is up, and its credentials"
        else:
            hint = "the store refused the data; nothing was changed"
        raise StoreError(
            f"cannot use the store {display}: {detail}", hint=hint
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- rows <-> records ---------------------------------------------------------


def load_state(conn: Connection) -> StoreState:
    """Read the whole store: one SELECT per table.

    An unmanaged row byok cannot read is left out with a warning; a managed
    one is a :class:`StoreError`, since apply would otherwise recreate it.
    """
    meta = schema.read_meta(conn)
    version = int(meta.get("schema_version", "0"))
    skipped: list[str] = []
    rows: Any = conn.execute(select(*schema.key_columns(version)))
    keys = _read_rows(rows, "key", key_row, skipped)
    rows = conn.execute(select(schema.features))
    feats = _read_rows(rows, "feature", feature_row, skipped)
    return StoreState(
        store_id=meta["store_id"],
        schema_version=version,
        keys=keys,
        features=feats,
        last_applies=_last_applies(conn),
        skipped=tuple(skipped),
    )


def _read_rows(
    rows: Any, kind: str, build: Callable[..., Any], skipped: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    memo: dict[Any, Any] = {}
    for r in rows:
        try:
            out[r.name] = build(r, memo)
        except (RowError, TypeError, ValueError) as exc:
            skip_row(kind, r.name, r.source, str(exc), skipped)
    return out


def _last_applies(conn: Connection) -> dict[str, ApplyRecord]:
    a = schema.applies
    latest = select(func.max(a.c.id)).group_by(a.c.source).scalar_subquery()
    rows = conn.execute(select(a).where(a.c.id.in_(latest)))
    return {r.source: history_row(r) for r in rows}


def key_row(r: Row[Any], memo: dict[Any, Any] | None = None) -> KeyRow:
    """A ``byok_keys`` row as a checked :class:`KeyRow`."""
    sealed = None
    if r.ciphertext is not None:
        sealed = Sealed(bytes(r.ciphertext), bytes(r.nonce or b""), r.store_key_id)
    return checked_key(KeyRow(
        name=r.name,
        source=r.source,
        provider=r.provider,
        settings=json_column(r.settings, "settings", dict, memo),
        models=tuple(json_column(r.models, "models", list, memo)),
        deployments=json_column(r.deployments, "deployments", dict, memo),
        description=r.description,
        labels=json_column(r.labels, "labels", dict, memo),
        fingerprint=r.fingerprint,
        last4=r.last4,
        sealed=sealed,
        verdict=r.verdict,
        created_at=r.created_at,
        updated_at=r.updated_at,
        revision=r.revision,
        content_hash=r.content_hash,
        secret_digest=r._mapping.get("secret_digest"),
    ))


def key_values(k: KeyRow) -> dict[str, Any]:
    s = k.sealed
    return {
        "name": k.name,
        "source": k.source,
        "provider": k.provider,
        "settings": canonical(k.settings),
        "models": canonical(list(k.models)),
        "deployments": canonical(k.deployments),
        "description": k.description,
        "labels": canonical(k.labels),
        "fingerprint": k.fingerprint,
        "last4": k.last4,
        "ciphertext": s.ciphertext if s else None,
        "nonce": s.nonce if s else None,
        "store_key_id": s.key_id if s else None,
        "verdict": k.verdict,
        "created_at": k.created_at,
        "updated_at": k.updated_at,
        "revision": k.revision,
        "content_hash": k.content_hash,
        "secret_digest": k.secret_digest,
    }


def feature_row(r: Row[Any], memo: dict[Any, Any] | None = None) -> FeatureRow:
    """A ``byok_features`` row as a checked :class:`FeatureRow`."""
    return checked_feature(FeatureRow(
        name=r.name,
        source=r.source,
        key=r.key_name,
        model=r.model,
        deployment=r.deployment,
        settings=json_column(r.settings, "settings", dict, memo),
        created_at=r.created_at,
        updated_at=r.updated_at,
        revision=r.revision,
        content_hash=r.content_hash,
    ))


def feature_values(f: FeatureRow) -> dict[str, Any]:
    return {
        "name": f.name,
        "source": f.source,
        "key_name": f.key,
        "model": f.model,
        "deployment": f.deployment,
        "settings": canonical(f.settings),
        "created_at": f.created_at,
        "updated_at": f.updated_at,
        "revision": f.revision,
        "content_hash": f.content_hash,
    }


def history_row(r: Row[Any]) -> ApplyRecord:
    return ApplyRecord(
        applied_at=r.applied_at,
        source=r.source,
        git_revision=r.git_revision,
        created=r.created,
        updated=r.updated,
        deleted=r.deleted,
        plan_digest=r.plan_digest,
        config_digest=r.config_digest,
        actor=r.actor,
        id=r.id,
    )


def history_values(h: ApplyRecord) -> dict[str, Any]:
    return {
        "applied_at": h.applied_at,
        "source": h.source,
        "git_revision": h.git_revision,
        "created": h.created,
        "updated": h.updated,
        "deleted": h.deleted,
        "plan_digest": h.plan_digest,
        "config_digest": h.config_digest,
        "actor": h.actor,
    }
