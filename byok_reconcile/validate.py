"""Validate a configuration: load, schema, provider rules, secret hygiene,
cross-references. Every file is checked before returning, and every problem
is collected; a :class:`~byok_reconcile.model.Config` is built only when
there is no error. The rules of a Key live in :mod:`.secretrules` (where the
key comes from, keys in clear) and :mod:`.providerrules` (settings, hosts);
features and catalogs are checked here.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byok_reconcile.documents import Document, discover, load_source
from byok_reconcile.errors import ConfigError
from byok_reconcile.keyshape import redact, shown
from byok_reconcile.model import Config, FeatureSpec, KeySpec, SourceFile
from byok_reconcile.providerrules import host_allowed, key_spec
from byok_reconcile.results import Problem
from byok_reconcile.schema import check as schema_check
from byok_reconcile.secretrules import key_shaped, secret_ref
from byok_reconcile.sopsmeta import read_file

__all__ = ["ValidationResult", "host_allowed", "validate_paths"]

# Suggestions compare names pairwise (difflib): past this many unknown
# features, the rest are reported without one, so the time stays linear.
MAX_SUGGESTIONS = 20


@dataclass(frozen=True)
class ValidationResult:
    """What validation found. ``config`` is None when there is any error."""

    config: Config | None
    problems: tuple[Problem, ...]
    files: tuple[SourceFile, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


@dataclass
class _State:
    """What the steps share while validating one configuration."""

    problems: list[Problem] = field(default_factory=list)
    sources: list[SourceFile] = field(default_factory=list)
    docs: dict[str, list[Document]] = field(default_factory=dict)
    valid: set[int] = field(default_factory=set)
    key_names: set[str] = field(default_factory=set)

    def of(self, kind: str, *, valid_only: bool = True) -> list[Document]:
        docs = self.docs.get(kind, [])
        return [d for d in docs if not valid_only or id(d) in self.valid]


def validate_paths(paths: Sequence[str | Path]) -> ValidationResult:
    """Validate the files and folders in ``paths`` (never raises on bad input)."""
    state = _State()
    _load(paths, state)
    _check_schemas(state)
    hosts = _allowed_hosts(state)
    keys = _build_keys(state, hosts)
    features = _build_features(state, keys)
    _check_catalogs(state, features)
    problems = tuple(sorted(map(_redacted, state.problems), key=Problem.sort_key))
    files = tuple(state.sources)
    if any(p.severity == "error" for p in problems):
        return ValidationResult(None, problems, files)
    sources = files + tuple(_secret_sources(keys, files))
    config = Config(keys, features, sources, hosts)
    return ValidationResult(config, problems, files)


# -- load -----------------------------------------------------------------------


def _load(paths: Sequence[str | Path], state: _State) -> None:
    files, problems = discover(paths)
    state.problems.extend(problems)
    for file in files:
        loaded = load_source(file)
        state.sources.append(loaded.source)
        state.problems.extend(loaded.problems)
        for doc in loaded.documents:
            state.docs.setdefault(doc.kind, []).append(doc)


def _check_schemas(state: _State) -> None:
    for kind, docs in state.docs.items():
        for doc in docs:
            state.problems.extend(key_shaped(doc))
            found = schema_check(kind, doc.loaded, doc.file)
            state.problems.extend(found)
            if not found:
                state.valid.add(id(doc))


# -- keys -------------------------------------------------------------------------


def _build_keys(state: _State, hosts: tuple[str, ...]) -> dict[str, KeySpec]:
    """KeySpecs of the valid Key documents; names must be unique."""
    keys: dict[str, KeySpec] = {}
    first: dict[str, Document] = {}
    for doc in state.of("Key", valid_only=False):
        name = doc.name
        if name is not None and name in first:
            state.problems.append(_duplicate_name(doc, first[name]))
            continue
        if name is not None:
            first[name] = doc
        found, ref = secret_ref(doc)
        state.problems.extend(found)
        if id(doc) not in state.valid or ref is None:
            continue
        problems, spec = key_spec(doc, ref, hosts)
        state.problems.extend(problems)
        if spec is not None:
            keys[spec.name] = spec
    state.key_names = set(first)
    return dict(sorted(keys.items()))


def _duplicate_name(doc: Document, first: Document) -> Problem:
    where = first.location(("metadata", "name"))
    return doc.problem(
        ("metadata", "name"),
        f"key {shown(doc.name)} is defined twice (first at {where})",
        "duplicate-key-name",
        "rename one of them or delete the copy",
    )


# -- features ---------------------------------------------------------------------


def _build_features(state: _State, keys: dict[str, KeySpec]) -> dict[str, FeatureSpec]:
    """FeatureSpecs of every mapping; each feature is mapped once."""
    names = state.key_names
    features: dict[str, FeatureSpec] = {}
    where: dict[str, tuple[Document, Any]] = {}
    for doc in state.of("FeatureMapping"):
        for fname, entry in doc.data["spec"]["features"].items():
            path = ("spec", "features", fname)
            if fname in where:
                state.problems.append(_mapped_twice(doc, path, where[fname]))
                continue
            where[fname] = (doc, path)
            problems = check_feature(doc, path, entry, names, keys)
            state.problems.extend(problems)
            if not problems:
                features[fname] = _feature(doc, path, fname, entry)
    return dict(sorted(features.items()))


def _mapped_twice(doc: Document, path: Any, first: tuple[Document, Any]) -> Problem:
    where = first[0].location(first[1], key=True)
    return doc.problem(
        path,
        f"feature {shown(path[-1])} is mapped twice (first at {where})",
        "duplicate-feature",
        "map each feature in one place only",
        key=True,
    )


def _feature(doc: Document, path: Any, name: str, entry: dict[str, Any]) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        key=entry["key"],
        model=entry.get("model"),
        deployment=entry.get("deployment"),
        location=doc.location(path, key=True),
    )


# -- catalogs ---------------------------------------------------------------------


def _check_catalogs(state: _State, features: dict[str, FeatureSpec]) -> None:
    """With a catalog, every mapped feature must be in it, and every required
    one mapped."""
    catalogs = state.of("FeatureCatalog")
    if not catalogs:
        return
    entries: dict[str, tuple[Document, Any]] = {}
    for doc in catalogs:
        for fname in doc.data["spec"]["features"]:
            path = ("spec", "features", fname)
            if fname in entries:
                state.problems.append(_catalogued_twice(doc, path, entries[fname]))
                continue
            entries[fname] = (doc, path)
    _unknown_features(state, entries)
    _unmapped_features(state, entries, features)


def _catalogued_twice(doc: Document, path: Any, first: tuple[Document, Any]) -> Problem:
    where = first[0].location(first[1], key=True)
    return doc.problem(
        path,
        f"feature {shown(path[-1])} is listed twice in the catalogs "
        f"(first at {where})",
        "duplicate-catalog-entry",
        "keep one entry",
        key=True,
    )


def _unknown_features(state: _State, entries: dict[str, Any]) -> None:
    known = list(entries)
    suggested = 0
    for doc in state.of("FeatureMapping"):
        for fname in doc.data["spec"]["features"]:
            if fname in entries:
                continue
            close: list[str] = []
            if suggested < MAX_SUGGESTIONS:
                suggested += 1
                close = difflib.get_close_matches(fname, known, n=1, cutoff=0.6)
            hint = (
                f"did you mean {shown(close[0])}?"
                if close
                else ("add it to the FeatureCatalog or remove the mapping")
            )
            state.problems.append(
                doc.problem(
                    ("spec", "features", fname),
                    f"feature {shown(fname)} is not in the feature catalog",
                    "unknown-feature",
                    hint,
                    key=True,
                )
            )


def _unmapped_features(
    state: _State, entries: dict[str, Any], features: dict[str, FeatureSpec]
) -> None:
    # Invalid mappings count too: their own error is enough, without a second
    # "required feature is not mapped" for each feature they do map.
    mapped = {
        f for d in state.of("FeatureMapping", valid_only=False) for f in _mapped(d)
    }
    for fname, (doc, path) in entries.items():
        entry = doc.data["spec"]["features"][fname] or {}
        if entry.get("required") is True and fname not in mapped:
            state.problems.append(
                doc.problem(
                    path,
                    f"required feature {shown(fname)} is not mapped to any key",
                    "unmapped-feature",
                    "map it in a FeatureMapping: "
                    f"{fname}: {{key: <key>, model: <model>}}",
                    key=True,
                )
            )


def _mapped(doc: Document) -> list[str]:
    spec = doc.data.get("spec")
    features = spec.get("features") if isinstance(spec, dict) else None
    if not isinstance(features, dict):
        return []
    return [f for f in features if isinstance(f, str)]


# -- hosts ------------------------------------------------------------------------


def _redacted(problem: Problem) -> Problem:
    """The last net under every message builder: should one have quoted a
    key-shaped value, it is hidden here."""
    message, hint = redact(problem.message) or "", redact(problem.hint)
    if message == problem.message and hint == problem.hint:
        return problem
    return dataclasses.replace(problem, message=message, hint=hint)


def _allowed_hosts(state: _State) -> tuple[str, ...]:
    hosts: set[str] = set()
    for doc in state.of("Policy"):
        hosts.update(doc.data["spec"]["allowedHosts"])
    return tuple(sorted(hosts))


# -- sources ----------------------------------------------------------------------


def _secret_sources(
    keys: dict[str, KeySpec], files: Iterable[SourceFile]
) -> list[SourceFile]:
    """fromFile targets not already loaded, so the digest follows them."""
    known = {f.path for f in files}
    extra: dict[Path, SourceFile] = {}
    cwd = Path.cwd()
    for spec in keys.values():
        path = spec.secret.path
        if spec.secret.kind != "file" or path is None or path in known:
            continue
        if path not in extra:
            extra[path] = SourceFile(path, _display(path, cwd), _sha256(path))
    return sorted(extra.values(), key=lambda s: s.display)


def _display(path: Path, cwd: Path) -> str:
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(read_file(path)).hexdigest()
    except ConfigError:
        return ""


# -- rules: features ----------------------------------------------------------------


def check_feature(
    doc: Document,
    path: tuple[str, ...],
    entry: dict[str, Any],
    names: set[str],
    keys: dict[str, KeySpec],
) -> list[Problem]:
    """A feature names an existing key and a model or deployment it declares."""
    key = entry["key"]
    if key not in names:
        close = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.6)
        hint = "define a Key with this name"
        if close:
            hint = f"did you mean {shown(close[0])}?"
        return [
            doc.problem(
                (*path, "key"),
                f"feature {shown(path[-1])} uses key {shown(key)}, "
                "which is not defined",
                "unknown-key-ref",
                hint,
            )
        ]
    spec = keys.get(key)
    if spec is None:
        return []  # the key has its own errors
    if spec.provider == "azure_openai":
        return _check_target(doc, path, entry, spec, "deployment", "model")
    return _check_target(doc, path, entry, spec, "model", "deployment")


def _check_target(
    doc: Document,
    path: tuple[str, ...],
    entry: dict[str, Any],
    spec: KeySpec,
    field: str,
    other: str,
) -> list[Problem]:
    declared = spec.targets
    where = "spec.azure_openai.deployments" if field == "deployment" else "spec.models"
    if other in entry:
        return [
            doc.problem(
                (*path, other),
                f"key {shown(spec.name)} uses provider {spec.provider}: "
                f"name its {field} with '{field}', not '{other}'",
                "target-kind",
                f"write {field}: one of {', '.join(declared)}",
                key=True,
            )
        ]
    if field not in entry:
        return [
            doc.problem(
                path,
                f"feature {shown(path[-1])} does not say which {field} it uses",
                "target-missing",
                f"add {field}: one of {', '.join(declared)}",
                key=True,
            )
        ]
    value = entry[field]
    if value in declared:
        return []
    close = difflib.get_close_matches(value, list(declared), n=1, cutoff=0.6)
    hint = (
        f"did you mean {shown(close[0])}?"
        if close
        else (f"add it to {where} of key {shown(spec.name)}")
    )
    return [
        doc.problem(
            (*path, field),
            f"{field} {shown(value)} is not declared by key {shown(spec.name)} "
            f"({where})",
            "unknown-target",
            hint,
        )
    ]
