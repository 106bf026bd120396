"""The SQL schema and its migrations.

``byok_meta`` holds the schema version and the store's random id (bound
into every ciphertext). Migrations are numbered and run in order, each in
the same locked transaction that opens the store, so two processes opening
a new store at once do not race.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

meta = Table(
    "byok_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

keys = Table(
    "byok_keys",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("source", Text, nullable=True, index=True),
    Column("provider", String(32), nullable=False),
    Column("settings", Text, nullable=False),
    Column("models", Text, nullable=False),
    Column("deployments", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("labels", Text, nullable=False),
    Column("fingerprint", String(32), nullable=True),
    Column("last4", String(4), nullable=True),
    Column("ciphertext", LargeBinary, nullable=True),
    Column("nonce", LargeBinary, nullable=True),
    Column("store_key_id", String(16), nullable=True),
    Column("verdict", String(32), nullable=True),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("content_hash", String(80), nullable=True),
    # v2: a digest of the secret's ciphertext in git, so plan can tell
    # without decrypting whether the encrypted value changed since apply.
    Column("secret_digest", String(80), nullable=True),
)

features = Table(
    "byok_features",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("source", Text, nullable=True, index=True),
    Column("key_name", String(63), nullable=False),
    Column("model", Text, nullable=True),
    Column("deployment", Text, nullable=True),
    Column("settings", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("content_hash", String(80), nullable=True),
)

applies = Table(
    "byok_applies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("applied_at", String(40), nullable=False),
    Column("source", Text, nullable=False, index=True),
    Column("git_revision", Text, nullable=True),
    Column("created", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("plan_digest", String(80), nullable=False),
    Column("config_digest", String(80), nullable=False),
    Column("actor", Text, nullable=False),
)


def _v1(conn: Connection) -> None:
    # A new store gets today's tables at once; _v2 then finds nothing to add.
    metadata.create_all(conn, tables=[keys, features, applies], checkfirst=True)
    conn.execute(meta.insert().values(name="store_id", value=uuid.uuid4().hex))


def _v2(conn: Connection) -> None:
    have = {c["name"] for c in inspect(conn).get_columns("byok_keys")}
    if "secret_digest" not in have:
        conn.exec_driver_sql(
            "ALTER TABLE byok_keys ADD COLUMN secret_digest VARCHAR(80)"
        )


# v3: free-text columns had lengths that only PostgreSQL enforced, so a long
# source or model name failed there alone; they are TEXT now everywhere.
WIDENED = {
    "byok_keys": ("source",),
    "byok_features": ("source", "model", "deployment"),
    "byok_applies": ("source", "git_revision", "actor"),
}


def _v3(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite never enforced the lengths
    for table, columns in WIDENED.items():
        for column in columns:
            conn.exec_driver_sql(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT"
            )


V2_KEY_COLUMNS = frozenset({"secret_digest"})
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_v1, _v2, _v3)
SCHEMA_VERSION = len(MIGRATIONS)


def key_columns(version: int) -> list[Column[object]]:
    """The columns of ``byok_keys`` that a store of ``version`` has.

    Read-only commands do not migrate, so they read an older store with
    the columns it has.
    """
    if version >= 2:
        return list(keys.columns)
    return [c for c in keys.columns if c.name not in V2_KEY_COLUMNS]


def read_meta(conn: Connection) -> dict[str, str]:
    rows = conn.execute(select(meta.c.name, meta.c.value)).all()
    return {name: value for name, value in rows}


def pending(conn: Connection) -> int:
    """The schema version the store has now (0 for an empty database)."""
    if not conn.dialect.has_table(conn, "byok_meta"):
        return 0
    return int(read_meta(conn).get("schema_version", "0"))


def migrate(conn: Connection, current: int) -> None:
    """Run every migration after ``current``, in order, on ``conn``."""
    meta.create(conn, checkfirst=True)
    for number, step in enumerate(MIGRATIONS, start=1):
        if number > current:
            step(conn)
    conn.execute(meta.delete().where(meta.c.name == "schema_version"))
    conn.execute(meta.insert().values(name="schema_version", value=str(SCHEMA_VERSION)))
