"""``byok status --target URL``: what the store holds now, redacted.

Lists keys (provider, settings, fingerprint; never a ciphertext), features,
the last apply of each source, and drift: rows whose content no longer
matches the hash apply wrote, because something else changed them.
"""

from __future__ import annotations

from typing import Any

import click

from byok_reconcile.commands.common import fail, finish, output_options
from byok_reconcile.errors import ByokError
from byok_reconcile.results import VERDICTS, KeyResult, Problem, Report

# A stored key with no verdict: never checked, or its secret changed since.
UNCHECKED = "unchecked"


@click.command("status", help="Show what the target store holds now.")
@click.option("--target", envvar="BYOK_TARGET", required=True, metavar="URL",
              help="The store URL (or BYOK_TARGET).")
@click.option("--source", metavar="NAME", help="Only objects of this source.")
@output_options
def command(
    target: str, source: str | None, fmt: str, verbose: int, quiet: bool
) -> None:
    from byok_reconcile.output.logs import configure

    configure(verbose, quiet)
    try:
        report = run(target, source=source)
    except ByokError as exc:
        fail(exc, "status", fmt)
        return
    if fmt == "text":
        if not quiet:
            click.echo("\n".join(text_listing(report.data)))
        # The listing already shows every key, with its recorded verdict.
        report.keys = []
    elif fmt == "github":
        # An unchecked key is not a failure worth an error annotation.
        report.keys = [k for k in report.keys if k.verdict != UNCHECKED]
    finish(report, fmt, quiet=quiet, verbose=verbose)


def run(target: str, *, source: str | None = None) -> Report:
    """Read ``target`` and describe it; ``source`` narrows the listing.

    Never creates or migrates the store: a store that does not exist is
    :class:`~byok_reconcile.store.StoreMissingError` (exit 3).
    """
    from byok_reconcile.store import open_target

    store = open_target(target, create=False)
    try:
        state = store.read()
    finally:
        store.close()
    keys = [k for k in state.keys.values() if source is None or k.source == source]
    feats = [
        f for f in state.features.values() if source is None or f.source == source
    ]
    drift = [f"key/{k.name}" for k in keys if k.source and k.drifted]
    drift += [f"feature/{f.name}" for f in feats if f.source and f.drifted]
    data: dict[str, object] = {
        "target": store.display,
        "storeId": state.store_id,
        "schemaVersion": state.schema_version,
        "keys": [_key(k) for k in sorted(keys, key=lambda k: k.name)],
        "features": [_feature(f) for f in sorted(feats, key=lambda f: f.name)],
        "lastApplies": {
            s: _apply(a) for s, a in sorted(state.last_applies.items())
            if source is None or s == source
        },
        "drift": drift,
    }
    problems = [_drift_problem(store.display, ref) for ref in drift]
    dangling = _dangling(state, feats, store.display)
    problems += dangling
    problems += [_skipped_problem(store.display, ref) for ref in state.skipped]
    results = [_key_result(k) for k in sorted(keys, key=lambda k: k.name)]
    checked = sum(1 for r in results if r.verdict != UNCHECKED)
    summary = f"{len(keys)} keys ({checked} checked when applied), "
    summary += f"{len(feats)} features"
    summary += f", {len(drift)} drifted" if drift else ", no drift"
    summary += f", {len(dangling)} dangling." if dangling else "."
    return Report(
        "status", problems=problems, keys=results, data=data, summary=summary
    )


def _key_result(k: Any) -> KeyResult:
    """The verdict apply recorded for ``k``, or ``unchecked``: every stored
    key counts, whatever its verdict."""
    if k.verdict not in VERDICTS:
        return KeyResult(
            key=k.name,
            provider=k.provider,
            verdict=UNCHECKED,
            fingerprint=k.fingerprint,
            detail="not checked for this secret (applied with --no-check)",
        )
    return KeyResult(
        key=k.name,
        provider=k.provider,
        verdict=k.verdict,
        fingerprint=k.fingerprint,
        detail="recorded at the last apply",
    )


def _dangling(state: Any, feats: list[Any], target: str) -> list[Problem]:
    """Features whose key is not in the store."""
    return [
        Problem(
            file=target,
            line=0,
            col=0,
            message=f"feature/{f.name} ({f.source or 'unmanaged'}) uses key "
            f"{f.key!r}, which is not in the store",
            code="store-dangling",
            severity="warning",
            hint="map the feature to a stored key, or apply the key again",
        )
        for f in sorted(feats, key=lambda f: f.name)
        if f.key not in state.keys and f"key/{f.key}" not in state.skipped
    ]


def _skipped_problem(target: str, ref: str) -> Problem:
    return Problem(
        file=target,
        line=0,
        col=0,
        message=f"{ref} (made outside byok) cannot be read and is left out",
        code="store-unreadable",
        severity="warning",
        hint="fix or delete that row",
    )


def _key(k: Any) -> dict[str, object]:
    return {
        "name": k.name,
        "source": k.source,
        "provider": k.provider,
        "settings": k.settings,
        "models": list(k.models),
        "deployments": k.deployments,
        "fingerprint": k.fingerprint,
        "last4": k.last4,
        "storeKeyId": k.sealed.key_id if k.sealed else None,
        "verdict": k.verdict,
        "updatedAt": k.updated_at,
        "revision": k.revision,
        "drift": bool(k.source and k.drifted),
    }


def _feature(f: Any) -> dict[str, object]:
    return {
        "name": f.name,
        "source": f.source,
        "key": f.key,
        "target": f.deployment or f.model or "",
        "model": f.model,
        "deployment": f.deployment,
        "provider": f.settings.get("provider") or "",
        "updatedAt": f.updated_at,
        "revision": f.revision,
        "drift": bool(f.source and f.drifted),
    }


def _apply(a: Any) -> dict[str, object]:
    return {
        "appliedAt": a.applied_at,
        "gitRevision": a.git_revision,
        "created": a.created,
        "updated": a.updated,
        "deleted": a.deleted,
        "planDigest": a.plan_digest,
        "actor": a.actor,
    }


def _drift_problem(target: str, ref: str) -> Problem:
    return Problem(
        file=target,
        line=0,
        col=0,
        message=f"{ref} was changed outside byok since the last apply",
        code="store-drift",
        severity="warning",
        hint="run plan and apply to restore it from the configuration",
    )


def text_listing(data: dict[str, Any]) -> list[str]:
    """The status listing for people."""
    lines = [f"store {data['target']} (schema {data['schemaVersion']})"]
    for k in data["keys"]:
        owner = k["source"] or "unmanaged"
        mark = "  DRIFT" if k["drift"] else ""
        tail = f"...{k['last4']}" if k["last4"] else ""
        lines.append(
            f"  key {k['name']} ({k['provider']}, {owner}): "
            f"{k['fingerprint']}{tail} {k['verdict'] or ''}{mark}".rstrip()
        )
    for f in data["features"]:
        mark = "  DRIFT" if f["drift"] else ""
        owner = f["source"] or "unmanaged"
        lines.append(
            f"  feature {f['name']} -> {f['key']}/{f['target']} ({owner}){mark}"
        )
    for source, a in data["lastApplies"].items():
        rev = f" at git {a['gitRevision'][:12]}" if a["gitRevision"] else ""
        lines.append(
            f"  last apply of {source}: {a['appliedAt']}{rev} by {a['actor']} "
            f"(+{a['created']} ~{a['updated']} -{a['deleted']})"
        )
    return lines
