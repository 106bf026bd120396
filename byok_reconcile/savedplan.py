"""Saved plans: what ``byok plan -o`` writes and ``byok apply plan.json`` reads.

A saved plan holds no secret, only fingerprints. ``planDigest`` covers
everything that decides what apply does (source, prune, store, config,
the rows observed, the changes), so a plan edited after it was saved is
refused rather than applied; its shape is checked strictly first, so a
malformed file is a usage error, never a traceback. ``byok apply`` then
re-plans under the store's lock and refuses to do anything the saved plan
does not list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from byok_reconcile.errors import StoreConflictError, UsageError
from byok_reconcile.reconcile import (
    Plan,
    change_dict,
    digest_plan_body,
    observed_digest,
)
from byok_reconcile.store.rows import StoreState

KIND = "Plan"
API_VERSION = "byok/v1"
HINT = "pass config paths, or a file written by `byok plan -o`"
KINDS = ("key", "feature")
ACTIONS = ("create", "update", "delete")
SECRETS = ("", "unchanged", "changed", "unknown", "new")


def plan_document(
    plan: Plan, *, target: str, paths: list[str], config_digest: str
) -> dict[str, Any]:
    """The JSON a saved plan holds: no secrets, only fingerprints.

    ``paths`` are the absolute config paths: ``byok apply plan.json``
    re-reads them (secrets must come from somewhere) and refuses to go on
    if their digest differs from ``configDigest``.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "source": plan.source,
        "target": target,
        # None: the store did not exist yet, and apply may create it.
        "storeId": plan.store_id or None,
        "prune": plan.prune,
        "paths": paths,
        "configDigest": config_digest,
        "stateDigest": plan.state_digest(),
        "observed": plan.observed,
        "planDigest": plan.digest(),
        "changes": [change_dict(c) for c in plan.changes],
        "wouldPrune": list(plan.would_prune),
    }


# -- reading one back ----------------------------------------------------------


def _is_str(v: object) -> bool:
    return isinstance(v, str) and bool(v)


def _is_opt_str(v: object) -> bool:
    return v is None or isinstance(v, str)


def _is_str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(i, str) for i in v)


def _is_observed(v: object) -> bool:
    return isinstance(v, dict) and all(_is_opt_str(h) for h in v.values())


FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "apiVersion": (lambda v: v == API_VERSION, f'"{API_VERSION}"'),
    "kind": (lambda v: v == KIND, f'"{KIND}"'),
    "source": (_is_str, "a non-empty string"),
    "target": (_is_str, "a non-empty string"),
    "storeId": (_is_opt_str, "a string or null"),
    "prune": (lambda v: isinstance(v, bool), "true or false"),
    "paths": (lambda v: _is_str_list(v) and bool(v), "a non-empty list of paths"),
    "configDigest": (_is_str, "a digest string"),
    "stateDigest": (_is_str, "a digest string"),
    "observed": (_is_observed, "an object of row digests"),
    "planDigest": (_is_str, "a digest string"),
    "changes": (lambda v: isinstance(v, list), "a list of changes"),
    "wouldPrune": (_is_str_list, "a list of names"),
}


def check_plan(doc: object, origin: str) -> dict[str, Any]:
    """``doc`` if it is an unmodified byok plan, else an error.

    A malformed plan is a :class:`UsageError` (exit 2) naming what is wrong;
    one whose content no longer matches its ``planDigest`` is a
    :class:`StoreConflictError` (exit 1).
    """
    if not isinstance(doc, dict):
        raise _bad(origin, "it is not a JSON object")
    for name, (ok, want) in FIELDS.items():
        if name not in doc:
            raise _bad(origin, f"{name!r} is missing")
        if not ok(doc[name]):
            raise _bad(origin, f"{name!r} must be {want}")
    extra = sorted(set(doc) - set(FIELDS))
    if extra:
        raise _bad(origin, f"unknown field {extra[0]!r}")
    for number, change in enumerate(doc["changes"], start=1):
        why = _change_problem(change)
        if why:
            raise _bad(origin, f"change {number} {why}")
    _check_digests(doc, origin)
    return doc


def _change_problem(change: object) -> str | None:
    if not isinstance(change, dict):
        return "is not an object"
    if set(change) != {"kind", "name", "action", "fields", "secret"}:
        return "must have exactly kind, name, action, fields and secret"
    if change["kind"] not in KINDS or change["action"] not in ACTIONS:
        return "has an unknown kind or action"
    if not _is_str(change["name"]) or change["secret"] not in SECRETS:
        return "has a bad name or secret"
    fields = change["fields"]
    if not isinstance(fields, list) or not all(
        isinstance(f, dict) and set(f) == {"field", "before", "after"}
        and isinstance(f["field"], str)
        for f in fields
    ):
        return "has malformed fields"
    return None


def _check_digests(doc: Mapping[str, Any], origin: str) -> None:
    digest = digest_plan_body(
        source=doc["source"],
        prune=doc["prune"],
        store_id=doc["storeId"],
        config_digest=doc["configDigest"],
        observed=doc["observed"],
        changes=doc["changes"],
        would_prune=doc["wouldPrune"],
    )
    state = observed_digest(doc["observed"])
    if digest != doc["planDigest"] or state != doc["stateDigest"]:
        raise StoreConflictError(
            f"{origin}: the plan file was modified after it was saved; "
            f"nothing was changed",
            hint="run `byok plan -o` again and apply the file it writes",
        )


def _bad(origin: str, why: str) -> UsageError:
    return UsageError(f"{origin} is not a byok plan file: {why}", hint=HINT)


# -- applying one --------------------------------------------------------------


def verify_saved(saved: Mapping[str, Any], plan: Plan, state: StoreState) -> None:
    """Refuse to apply a saved plan when the store or the config changed.

    A plan made without secrets may list an update whose secret turns out
    unchanged, so the fresh plan may do less than the saved one, never more.
    """
    store_id = saved.get("storeId")
    if store_id and store_id != state.store_id:
        raise StoreConflictError(
            f"the plan was made for another store (id {store_id}); this one "
            f"has id {state.store_id}",
            hint="apply it to the store it was made for, or run plan again",
        )
    if saved.get("configDigest") != plan.config_digest:
        raise StoreConflictError(
            "the configuration changed since the plan was saved",
            hint="run plan again and review it",
        )
    _refuse_moved(saved.get("observed", {}), plan, state)
    allowed = {(c["kind"], c["name"], c["action"]) for c in saved.get("changes", [])}
    extra = [c for c in plan.changes if (c.kind, c.name, c.action) not in allowed]
    if extra:
        raise StoreConflictError(
            f"applying now would {extra[0].action} {extra[0].kind} "
            f"{extra[0].name!r}, which the saved plan does not contain",
            hint="run plan again and review it",
        )


def _refuse_moved(
    observed: Mapping[str, str | None], plan: Plan, state: StoreState
) -> None:
    scope = sorted(set(observed) | set(plan.observed))
    seen = plan.observed  # read from the same state, under the same lock
    moved = [
        ref
        for ref in scope
        if observed.get(ref)
        != (seen[ref] if ref in seen else _current_hash(state, ref))
    ]
    if moved:
        names = ", ".join(moved[:5]) + (" ..." if len(moved) > 5 else "")
        raise StoreConflictError(
            f"the store changed since the plan was saved: {names}",
            hint="run plan again and review it",
        )


def _current_hash(state: StoreState, ref: str) -> str | None:
    kind, _, name = ref.partition("/")
    return state.row_digest(kind, name)
