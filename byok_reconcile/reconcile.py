"""Desired state, plan and apply: make a store match a configuration.

The steps, in order:

1. :func:`desired_state`: the rows the configuration asks for, with secret
   fingerprints (or none, when secrets could not be decrypted);
2. :func:`make_plan`: diff those rows against the store's rows managed by
   the same source; rows of other sources and rows created by people
   (source NULL) are never touched, and a name clash with them is a conflict;
3. :func:`apply`: in one locked transaction, re-plan against the state
   read under the lock, check conflicts, prune safety and a saved plan's
   staleness, encrypt only the secrets that change, write, record history.

A second apply of the same input finds nothing to change and writes nothing.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from byok_reconcile.errors import ByokError, ConfigError, StoreConflictError
from byok_reconcile.model import Config, KeySpec, Location
from byok_reconcile.results import Change, FieldChange, Problem
from byok_reconcile.secret import Secret
from byok_reconcile.store import Store, Transaction
from byok_reconcile.store.crypto import StoreKey, row_aad
from byok_reconcile.store.rows import (
    ApplyRecord,
    FeatureRow,
    KeyRow,
    StoreState,
    WriteSet,
    canonical,
)

log = logging.getLogger("byok")

KEY_FIELDS = ("provider", "settings", "models", "deployments", "description", "labels")
FEATURE_FIELDS = ("key", "model", "deployment", "settings")
# Test hook: seconds to sleep inside the apply transaction after writing, so
# a test can kill the process mid-apply. Unset in normal use.
SLEEP_HOOK = "BYOK_TESTHOOK_SLEEP_IN_APPLY"


@dataclass(frozen=True)
class Desired:
    """What the configuration asks the store to hold for one source."""

    source: str
    keys: dict[str, KeyRow]
    features: dict[str, FeatureRow]
    secrets: dict[str, Secret]
    locations: dict[str, Location]
    config_digest: str


@dataclass(frozen=True)
class Plan:
    """The changes one apply would make, and what it saw to decide them.

    ``observed`` maps ``kind/name`` of every row in the plan's scope to the
    row's content hash (None: no row), so a saved plan can tell whether the
    store has changed since.
    """

    source: str
    prune: bool
    changes: tuple[Change, ...]
    would_prune: tuple[str, ...]
    conflicts: tuple[Problem, ...]
    observed: dict[str, str | None]
    config_digest: str
    managed: int = 0
    store_id: str = ""

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        return {
            a: sum(1 for c in self.changes if c.action == a)
            for a in ("create", "update", "delete")
        }

    def digest(self) -> str:
        """A digest of everything that decides what applying this plan does."""
        return self._digest

    @cached_property
    def _digest(self) -> str:
        return digest_plan_body(
            source=self.source,
            prune=self.prune,
            store_id=self.store_id or None,
            config_digest=self.config_digest,
            observed=self.observed,
            changes=[change_dict(c) for c in self.changes],
            would_prune=list(self.would_prune),
        )

    def state_digest(self) -> str:
        return observed_digest(self.observed)


def change_dict(c: Change) -> dict[str, Any]:
    """``c`` as the JSON a saved plan holds (built by hand: asdict is slow)."""
    return {
        "kind": c.kind,
        "name": c.name,
        "action": c.action,
        "fields": [
            {"field": f.field, "before": f.before, "after": f.after}
            for f in c.fields
        ],
        "secret": c.secret,
    }


def digest_plan_body(
    *,
    source: str,
    prune: bool,
    store_id: str | None,
    config_digest: str,
    observed: Mapping[str, str | None],
    changes: list[dict[str, Any]],
    would_prune: list[str],
) -> str:
    """The plan digest, from a plan's parts or a saved plan's fields alike."""
    body = {
        "source": source,
        "prune": prune,
        "storeId": store_id,
        "configDigest": config_digest,
        "observed": observed,
        "changes": changes,
        "wouldPrune": would_prune,
    }
    return "sha256:" + hashlib.sha256(canonical(body).encode()).hexdigest()


def observed_digest(observed: Mapping[str, str | None]) -> str:
    """The digest of the rows a plan looked at."""
    return "sha256:" + hashlib.sha256(canonical(observed).encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What an apply did. ``written`` is False when nothing changed."""

    plan: Plan
    written: bool
    record: ApplyRecord | None = None
    checked: tuple[str, ...] = field(default_factory=tuple)


# -- 1. desired state --------------------------------------------------------


def desired_state(
    config: Config,
    source: str,
    secrets: Mapping[str, Secret | ByokError] | None = None,
    verdicts: Mapping[str, str] | None = None,
) -> Desired:
    """The rows ``config`` asks for. A key whose secret is missing or failed
    to decrypt gets no fingerprint; plan then compares its ciphertext
    digest (:func:`ciphertext_digests`) or shows its secret as unknown."""
    secrets = secrets or {}
    verdicts = verdicts or {}
    digests = ciphertext_digests(config)
    keys: dict[str, KeyRow] = {}
    plain: dict[str, Secret] = {}
    for name, spec in config.keys.items():
        secret = secrets.get(name)
        if isinstance(secret, Secret):
            plain[name] = secret
        row = _key_row(spec, source, plain.get(name), verdicts.get(name))
        keys[name] = replace(row, secret_digest=digests.get(name))
    feats = {}
    for name, feat in config.features.items():
        owner = config.keys.get(feat.key)
        model = feat.model
        if owner is not None and feat.deployment:
            model = owner.deployments.get(feat.deployment, feat.model)
        provider = owner.provider if owner is not None else None
        feats[name] = FeatureRow(
            name=name,
            source=source,
            key=feat.key,
            model=feat.model,
            deployment=feat.deployment,
            settings={"provider": provider, "model": model},
        )
    locations = {f"key/{n}": k.location for n, k in config.keys.items()}
    locations.update({f"feature/{n}": f.location for n, f in config.features.items()})
    return Desired(source, keys, feats, plain, locations, config.digest())


def _key_row(
    spec: KeySpec, source: str, secret: Secret | None, verdict: str | None
) -> KeyRow:
    return KeyRow(
        name=spec.name,
        source=source,
        provider=spec.provider,
        settings=dict(spec.settings),
        models=tuple(spec.models),
        deployments=dict(spec.deployments),
        description=spec.description,
        labels=dict(spec.labels),
        fingerprint=secret.fingerprint if secret else None,
        last4=(secret.last4 or None) if secret else None,
        sealed=None,
        verdict=verdict,
    )


def ciphertext_digests(config: Config) -> dict[str, str | None]:
    """Per key, a digest of its secret's sops ciphertext, read without keys.

    Inline: the ``ENC[...]`` value of ``spec.apiKey``; ``fromFile``: the
    ``ENC[...]`` value the reference points at (a binary sops file: the
    whole file); ``fromEnv``: None, nothing is knowable. sops writes a fresh
    IV whenever it re-encrypts, so an equal digest proves the secret is the
    one applied, and a different one means it may have changed.
    """
    cache: dict[Path, bytes | None] = {}
    return {name: _digest_of(spec, cache) for name, spec in config.keys.items()}


def _digest_of(spec: KeySpec, cache: dict[Path, bytes | None]) -> str | None:
    from byok_reconcile import sopsmeta
    from byok_reconcile.keysource import source_path

    path = source_path(spec.secret)
    if path is None:
        return None
    if path not in cache:
        try:
            cache[path] = path.read_bytes()
        except OSError:
            cache[path] = None
    data = cache[path]
    if data is None:
        return None
    if spec.secret.kind == "file" and sopsmeta.format_for(path) == "binary":
        return "sha256:" + hashlib.sha256(data).hexdigest()
    value = _encrypted_value(spec, path, data)
    if not sopsmeta.is_enc_value(value):
        # Never digest a value that is not ciphertext: it could be the key.
        return None
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()


def _encrypted_value(spec: KeySpec, path: Path, data: bytes) -> object:
    # The lookup that finds the decrypted value in sops's output finds its
    # ciphertext in the encrypted file just the same.
    from byok_reconcile.keysource import extract_value

    try:
        return extract_value(spec, path, data)
    except ByokError:
        return None


# -- 2. plan -----------------------------------------------------------------

Differ = Callable[[Any, Any], "Change | None"]


def make_plan(desired: Desired, state: StoreState, *, prune: bool) -> Plan:
    """Diff ``desired`` against ``state`` for ``desired.source``."""
    src = desired.source
    changes: list[Change] = []
    conflicts: list[Problem] = []
    orphans: list[str] = []
    observed: dict[str, str | None] = {}
    tables: tuple[tuple[str, Mapping[str, Any], Mapping[str, Any], Differ], ...] = (
        ("key", desired.keys, state.keys, _diff_key),
        ("feature", desired.features, state.features, _diff_feature),
    )
    managed = 0
    for kind, wanted, stored, diff in tables:
        for name in sorted(wanted):
            ref = f"{kind}/{name}"
            row = stored.get(name)
            observed[ref] = row.compute_hash() if row is not None else None
            if row is None and ref in state.skipped:
                conflicts.append(_conflict(kind, name, None, desired))
                continue
            if row is not None and row.source != src:
                conflicts.append(_conflict(kind, name, row.source, desired))
                continue
            change = diff(wanted[name], row)
            if change is not None:
                changes.append(change)
        for name in sorted(n for n, r in stored.items() if r.source == src):
            managed += 1
            if name in wanted:
                continue
            observed[f"{kind}/{name}"] = stored[name].compute_hash()
            if prune:
                changes.append(Change(kind, name, "delete"))  # type: ignore[arg-type]
            else:
                orphans.append(f"{kind}/{name}")
    conflicts += _still_used(changes, state)
    return Plan(
        source=src,
        prune=prune,
        changes=tuple(changes),
        would_prune=tuple(orphans),
        conflicts=tuple(conflicts),
        observed=observed,
        config_digest=desired.config_digest,
        managed=managed,
        store_id=state.store_id,
    )


def _still_used(changes: list[Change], state: StoreState) -> list[Problem]:
    """A key the plan deletes that a feature it keeps still uses: deleting
    it would leave that feature (another source's, or unmanaged) dangling."""
    gone = {c.name for c in changes if c.kind == "key" and c.action == "delete"}
    if not gone:
        return []
    dropped = {c.name for c in changes if c.kind == "feature" and c.action == "delete"}
    found = []
    for feat in sorted(state.features.values(), key=lambda f: f.name):
        if feat.key in gone and feat.name not in dropped:
            who = f"source {feat.source!r}" if feat.source else "no source"
            found.append(Problem(
                file="", line=0, col=0,
                message=f"the prune would delete key {feat.key!r}, but feature "
                f"{feat.name!r} ({who}) still uses it",
                code="store-in-use",
                hint="move that feature to another key first, or keep the key",
            ))
    return found


def _field_value(row: Any, name: str) -> Any:
    value = getattr(row, name)
    return list(value) if isinstance(value, tuple) else value


def _created(want: Any, names: tuple[str, ...]) -> list[FieldChange]:
    # Empty fields (no description, no labels ...) are left out: a plan of
    # thousands of creates stays small, and says nothing less.
    values = ((n, _field_value(want, n)) for n in names)
    return [FieldChange(n, None, v) for n, v in values if v not in (None, {}, [])]


def _diff_fields(want: Any, have: Any, names: tuple[str, ...]) -> list[FieldChange]:
    return [
        FieldChange(n, _field_value(have, n), _field_value(want, n))
        for n in names
        if _field_value(have, n) != _field_value(want, n)
    ]


def _diff_key(want: KeyRow, have: KeyRow | None) -> Change | None:
    if have is None:
        fields = _created(want, KEY_FIELDS)
        fields.append(
            FieldChange("fingerprint", None, want.fingerprint or UNKNOWN_HERE)
        )
        return Change("key", want.name, "create", tuple(fields), "new")
    fields = _diff_fields(want, have, KEY_FIELDS)
    secret = _secret_change(want, have, fields)
    if have.drifted:
        fields.append(FieldChange("content", "changed outside byok", "rewritten"))
    if not fields:
        return None
    return Change("key", want.name, "update", tuple(fields), secret)


UNKNOWN_HERE = "unknown (cannot decrypt here)"
UNKNOWN_REWRITTEN = "unknown (ciphertext changed since the last apply)"


def _secret_change(want: KeyRow, have: KeyRow, fields: list[FieldChange]) -> Any:
    if want.fingerprint is None:
        return _secret_change_blind(want, have, fields)
    if want.fingerprint != have.fingerprint or have.sealed is None:
        fields.append(FieldChange("fingerprint", have.fingerprint, want.fingerprint))
        return "changed"
    if want.secret_digest != have.secret_digest:
        # Same secret, re-encrypted in git: record the new ciphertext digest
        # so that a plan without keys does not report it as changed forever.
        fields.append(
            FieldChange("secretDigest", have.secret_digest, want.secret_digest)
        )
    return "unchanged"


def _secret_change_blind(
    want: KeyRow, have: KeyRow, fields: list[FieldChange]
) -> Any:
    """The secret could not be decrypted here: judge by its ciphertext.

    A change that cannot be ruled out is a pending change, so that a plan
    without keys (a fork's pull request) never passes as "no changes".
    """
    known = want.secret_digest is not None and have.secret_digest is not None
    if known and want.secret_digest == have.secret_digest:
        return "unchanged"
    after = UNKNOWN_REWRITTEN if known else UNKNOWN_HERE
    fields.append(FieldChange("fingerprint", have.fingerprint, after))
    return "changed" if known else "unknown"


def _diff_feature(want: FeatureRow, have: FeatureRow | None) -> Change | None:
    if have is None:
        fields = _created(want, FEATURE_FIELDS)
        return Change("feature", want.name, "create", tuple(fields))
    fields = _diff_fields(want, have, FEATURE_FIELDS)
    if have.drifted:
        fields.append(FieldChange("content", "changed outside byok", "rewritten"))
    if not fields:
        return None
    return Change("feature", want.name, "update", tuple(fields))


def _conflict(kind: str, name: str, owner: str | None, desired: Desired) -> Problem:
    loc = desired.locations.get(f"{kind}/{name}", Location(""))
    who = f"source {owner!r}" if owner else "someone outside byok (no source)"
    return Problem(
        file=loc.file,
        line=loc.line,
        col=loc.col,
        message=f"{kind} {name!r} already exists in the store, managed by {who}",
        code="store-ownership",
        hint="rename it here, or have its owner remove it from the store",
    )


# -- 3. apply ----------------------------------------------------------------


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply: prune, force past the prune safety stop, a saved plan."""

    prune: bool = False
    force: bool = False
    saved: Mapping[str, Any] | None = None
    git_revision: str | None = None
    actor: str = ""


def apply(
    store: Store, desired: Desired, store_key: StoreKey, options: ApplyOptions
) -> Outcome:
    """Make ``store`` match ``desired`` in one locked transaction.

    Raises :class:`StoreConflictError` on ownership clashes or a stale saved
    plan, :class:`ConfigError` when a prune trips the safety stop, and
    :class:`~byok_reconcile.errors.StoreKeyError` when the store holds
    secrets under another store key. Any error leaves the store unchanged.
    """
    with store.transaction() as txn:
        state = txn.state()
        plan = make_plan(desired, state, prune=options.prune)
        _refuse_conflicts(plan)
        if options.saved is not None:
            from byok_reconcile.savedplan import verify_saved

            verify_saved(options.saved, plan, state)
        _refuse_big_prune(plan, options.force)
        _refuse_foreign_key(state, store_key)
        if not plan.has_changes:
            return Outcome(plan, written=False)
        writes = build_writes(plan, desired, state, store_key, _now())
        writes.history = _history(plan, options)
        txn.write(writes)
        _sleep_hook(txn)
        return Outcome(plan, written=True, record=writes.history)


def _refuse_conflicts(plan: Plan) -> None:
    if plan.conflicts:
        first = plan.conflicts[0]
        more = len(plan.conflicts) - 1
        tail = f" (and {more} more)" if more else ""
        where = f"{first.file}:{first.line}:{first.col}: " if first.line else ""
        raise StoreConflictError(
            f"{where}{first.message}{tail}; nothing was changed", hint=first.hint
        )


def big_prune(plan: Plan) -> bool:
    """Whether the plan deletes more than half of what its source manages."""
    deletes = plan.counts()["delete"]
    return bool(deletes) and deletes * 2 > plan.managed


def _refuse_big_prune(plan: Plan, force: bool) -> None:
    if force or not big_prune(plan):
        return
    deletes = plan.counts()["delete"]
    raise ConfigError(
        f"the prune would delete {deletes} of the {plan.managed} objects that "
        f"source {plan.source!r} manages (more than half); nothing was changed",
        hint="check --source and the paths; pass --force if this is intended",
    )


def _refuse_foreign_key(state: StoreState, key: StoreKey) -> None:
    """A store has one store key: refuse a different one, whatever source's
    rows hold it, so the store never ends up with secrets under two keys."""
    from byok_reconcile.errors import StoreKeyError

    for row in state.keys.values():
        if row.sealed and row.sealed.key_id != key.key_id:
            owner = f"source {row.source!r}" if row.source else "no source"
            raise StoreKeyError(
                f"the store's secrets are encrypted under store key "
                f"{row.sealed.key_id} (key {row.name!r}, {owner}), but the key "
                f"given is {key.key_id}; nothing was changed",
                hint="give the store's key; to change it, run "
                "`byok store rotate-key` first",
            )


def build_writes(
    plan: Plan, desired: Desired, state: StoreState, key: StoreKey, now: str
) -> WriteSet:
    """The rows to insert, update and delete; encrypts only changed secrets."""
    writes = WriteSet()
    for change in plan.changes:
        if change.kind == "key":
            _key_write(change, desired, state, key, now, writes)
        else:
            _feature_write(change, desired, state, now, writes)
    return writes


def _key_write(
    change: Change,
    desired: Desired,
    state: StoreState,
    key: StoreKey,
    now: str,
    writes: WriteSet,
) -> None:
    if change.action == "delete":
        writes.key_deletes.append(change.name)
        return
    want = desired.keys[change.name]
    have = state.keys.get(change.name)
    secret = desired.secrets.get(change.name)
    if secret is None:
        raise ConfigError(
            f"key {change.name!r} has no decrypted secret to store",
            hint="apply needs every secret; check decryption keys and variables",
        )
    sealed = have.sealed if have is not None else None
    if have is None or change.secret == "changed" or have.drifted or sealed is None:
        sealed = key.seal(secret, row_aad(state.store_id, change.name))
    row = replace(
        want,
        sealed=sealed,
        verdict=_verdict(want, have),
        created_at=have.created_at if have else now,
        updated_at=now,
        revision=(have.revision + 1) if have else 1,
    )
    row = replace(row, content_hash=row.compute_hash())
    (writes.key_updates if have else writes.key_inserts).append(row)


def _verdict(want: KeyRow, have: KeyRow | None) -> str | None:
    """The check verdict to store: a verdict belongs to the secret it was
    checked for, so an unchecked new secret, or a verdict edited by hand
    (drift), is stored as unchecked (None)."""
    if want.verdict is not None or have is None or have.drifted:
        return want.verdict
    return have.verdict if have.fingerprint == want.fingerprint else None


def _feature_write(
    change: Change, desired: Desired, state: StoreState, now: str, writes: WriteSet
) -> None:
    if change.action == "delete":
        writes.feature_deletes.append(change.name)
        return
    have = state.features.get(change.name)
    row = replace(
        desired.features[change.name],
        created_at=have.created_at if have else now,
        updated_at=now,
        revision=(have.revision + 1) if have else 1,
    )
    row = replace(row, content_hash=row.compute_hash())
    (writes.feature_updates if have else writes.feature_inserts).append(row)


def _history(plan: Plan, options: ApplyOptions) -> ApplyRecord:
    counts = plan.counts()
    return ApplyRecord(
        applied_at=_now(),
        source=plan.source,
        git_revision=options.git_revision,
        created=counts["create"],
        updated=counts["update"],
        deleted=counts["delete"],
        plan_digest=plan.digest(),
        config_digest=plan.config_digest,
        actor=options.actor or default_actor(),
    )


def _sleep_hook(txn: Transaction) -> None:
    seconds = os.environ.get(SLEEP_HOOK)
    if seconds:
        log.warning("test hook: sleeping %ss inside the apply transaction", seconds)
        time.sleep(float(seconds))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_actor() -> str:
    try:
        return os.environ.get("GITHUB_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- where the configuration comes from --------------------------------------


def _folder(paths: list[str]) -> Path:
    first = Path(paths[0]).resolve() if paths else Path.cwd()
    return first if first.is_dir() else first.parent


def _git(folder: Path, *args: str) -> str | None:
    from byok_reconcile import proc
    from byok_reconcile.errors import UnavailableError

    try:
        done = proc.run(["git", *args], timeout=10, cwd=folder)
    except UnavailableError:
        return None
    if not done.ok:
        return None
    return done.stdout.decode("utf-8", "replace").strip() or None


SOURCE_MAX = 200


def check_source(source: str) -> str:
    """``source`` if a store can record it: 1 to 200 printable characters.

    Checked up front so that every backend takes the same names.
    """
    from byok_reconcile.errors import UsageError

    if not source or len(source) > SOURCE_MAX or not source.isprintable():
        raise UsageError(
            f"the source name must be 1 to {SOURCE_MAX} printable characters "
            f"(got {len(source)})",
            hint="pass a shorter --source",
        )
    return source


def default_source(paths: list[str]) -> str:
    """The git repository's top folder name, else the config folder's name."""
    folder = _folder(paths)
    top = _git(folder, "rev-parse", "--show-toplevel")
    return Path(top).name if top else folder.name


def git_revision(paths: list[str]) -> str | None:
    """``git rev-parse HEAD`` in the config folder, or None outside a repo."""
    return _git(_folder(paths), "rev-parse", "HEAD")
