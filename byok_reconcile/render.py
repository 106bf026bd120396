"""The resolved mapping artifact: what an application reads at deploy time.

:func:`build_artifact` turns a validated :class:`~byok_reconcile.model.Config`
and the check results into a JSON-ready dict; :func:`dump_artifact` gives its
canonical bytes; :func:`write_artifact` puts them on disk atomically.

The artifact never holds a secret value, only fingerprints and the reference
an application follows to find the key at run time. It is deterministic:
same inputs and check results give the same bytes on any machine, so no
timestamp, no absolute path, no request id and no free-form provider text
that could differ between runs go into it.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from byok_reconcile.model import Config, FeatureSpec, KeySpec, SecretRef, SourceFile
from byok_reconcile.results import KeyResult

API_VERSION = "byok/v1"
KIND = "ResolvedMapping"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
ARTIFACT_MODE = 0o644

# Connection settings each provider carries into the artifact, in this order.
_SETTINGS: dict[str, tuple[str, ...]] = {
    "openai": ("baseUrl", "organization", "project"),
    "azure_openai": ("endpoint", "apiVersion"),
    "openai_compatible": ("baseUrl",),
}

Json = dict[str, Any]


def build_artifact(
    config: Config,
    results: Mapping[str, KeyResult] | None,
    fingerprints: Mapping[str, str],
    checked: bool,
    *,
    deep: bool = False,
) -> Json:
    """The ResolvedMapping for ``config`` as a JSON-ready dict.

    ``results`` maps a key name to its check result (``None`` when the check
    did not run); ``fingerprints`` maps a key name to its secret's fingerprint;
    ``checked`` and ``deep`` record whether and how the check ran.
    """
    results = results or {}
    keys = {
        name: _key_entry(config, spec, results.get(name), fingerprints.get(name))
        for name, spec in sorted(config.keys.items())
    }
    features = {
        name: _feature_entry(config, spec)
        for name, spec in sorted(config.features.items())
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "source": _source(config),
        "check": _check_summary(config, results, checked, deep),
        "keys": keys,
        "features": features,
    }


def dump_artifact(artifact: Mapping[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, two-space indent, UTF-8, final newline."""
    text = json.dumps(
        artifact, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )
    return (text + "\n").encode("utf-8")


def write_artifact(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` atomically with mode 0644.

    The bytes go to a temporary file in the same folder, are flushed to disk
    and renamed over ``path``: a reader sees the old file or the new one,
    never a partial one, and a failure leaves the old file as it was.
    """
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, ARTIFACT_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def portable(config: Config, paths: Sequence[str | Path]) -> Config:
    """``config`` with every display path made relative to :func:`stable_root`.

    ``byok render config`` inside the repository and ``byok render
    repo/config`` from its parent then write the same paths and the same
    source digest: the artifact does not depend on the working folder, nor
    on where the checkout lives.
    """
    root = stable_root(paths)
    moved = {
        src.display: Path(os.path.relpath(src.path, root)).as_posix()
        for src in config.sources
    }
    if all(old == new for old, new in moved.items()):
        return config
    sources = tuple(replace(src, display=moved[src.display]) for src in config.sources)
    keys = {name: _move_key(spec, moved) for name, spec in config.keys.items()}
    return replace(config, sources=sources, keys=keys)


def stable_root(paths: Sequence[str | Path]) -> Path:
    """The folder artifact paths are relative to: the top of the git work
    tree holding the PATH arguments, else their common parent folder.

    The work tree is found by looking for a ``.git`` entry upwards, not by
    running git: render must not depend on a git binary.
    """
    parents = [str(Path(os.path.abspath(p)).parent) for p in paths] or [os.getcwd()]
    common = Path(os.path.commonpath(parents))
    for folder in (common, *common.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return common


def _move_key(spec: KeySpec, moved: Mapping[str, str]) -> KeySpec:
    loc, own = spec.secret.location, spec.location
    secret_loc = replace(loc, file=moved.get(loc.file, loc.file))
    location = replace(own, file=moved.get(own.file, own.file))
    secret = replace(spec.secret, location=secret_loc)
    return replace(spec, secret=secret, location=location)


def _source(config: Config) -> Json:
    files = [
        {"path": _posix(src.display), "sha256": src.sha256}
        for src in sorted(config.sources, key=lambda s: s.display)
    ]
    return {"digest": config.digest(), "files": files}


def _check_summary(
    config: Config, results: Mapping[str, KeyResult], checked: bool, deep: bool
) -> Json:
    verdicts = {
        name: results[name].verdict for name in sorted(config.keys) if name in results
    }
    return {"performed": checked, "deep": checked and deep, "verdicts": verdicts}


def _key_entry(
    config: Config,
    spec: KeySpec,
    result: KeyResult | None,
    fingerprint: str | None,
) -> Json:
    entry: Json = {
        "provider": spec.provider,
        "connection": _connection(spec),
        "secretRef": _secret_ref(config, spec.secret),
        "fingerprint": fingerprint or (result.fingerprint if result else None),
        "check": _key_check(result),
    }
    if spec.provider == "azure_openai":
        entry["deployments"] = {
            name: {"model": model} for name, model in sorted(spec.deployments.items())
        }
    else:
        entry["models"] = sorted(spec.models)
    return entry


def _connection(spec: KeySpec) -> Json:
    settings = {
        name: spec.settings[name]
        for name in _SETTINGS[spec.provider]
        if spec.settings.get(name)
    }
    if spec.provider == "openai":
        settings.setdefault("baseUrl", OPENAI_DEFAULT_BASE_URL)
    return settings


def _key_check(result: KeyResult | None) -> Json | None:
    if result is None:
        return None
    # Details and request ids vary between runs; verdicts do not.
    targets = {t.target: t.verdict for t in result.targets}
    return {
        "verdict": result.verdict,
        "working": result.working,
        "targets": dict(sorted(targets.items())),
    }


def _feature_entry(config: Config, spec: FeatureSpec) -> Json:
    key = config.keys[spec.key]
    entry: Json = {
        "key": spec.key,
        "provider": key.provider,
        "connection": _connection(key),
        "secretRef": _secret_ref(config, key.secret),
    }
    if key.provider == "azure_openai":
        entry["deployment"] = spec.deployment
        entry["model"] = key.deployments.get(spec.deployment or "")
    else:
        entry["model"] = spec.model
    return entry


def _secret_ref(config: Config, ref: SecretRef) -> Json:
    """Where the application finds the key at run time, never the key."""
    if ref.kind == "env":
        return {"kind": "env", "env": ref.env}
    if ref.kind == "file":
        return {"kind": "file", "file": _ref_path(config, ref), "key": ref.key}
    return {"kind": "inline", "file": _posix(ref.location.file)}


def _ref_path(config: Config, ref: SecretRef) -> str:
    """The fromFile path relative to the config root, as users see it.

    A relative path is taken relative to the referring file; an absolute one
    is re-expressed through the referring file's display name, so the
    artifact does not depend on where the checkout lives.
    """
    referrer = PurePosixPath(_posix(ref.location.file))
    path = ref.path or Path("")
    if not path.is_absolute():
        return posixpath.normpath(str(referrer.parent / path.as_posix()))
    source = _source_for(config, ref.location.file)
    if source is None:
        return path.name
    rel = os.path.relpath(path, source.path.parent)
    return posixpath.normpath(str(referrer.parent / Path(rel).as_posix()))


def _source_for(config: Config, display: str) -> SourceFile | None:
    for src in config.sources:
        if src.display == display:
            return src
    return None


def _posix(display: str) -> str:
    return display.replace(os.sep, "/")
