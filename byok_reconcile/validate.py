"""Validate a configuration: load, schema, provider rules, secret hygiene,
cross-references. Every file is checked before returning, and every problem
is collected; a :class:`~byok_reconcile.model.Config` is built only when
there is no error.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from byok_reconcile.documents import Document, discover, load_source
from byok_reconcile.errors import ConfigError
from byok_reconcile.model import Config, FeatureSpec, KeySpec, SecretRef, SourceFile
from byok_reconcile.providers.hosts import (
    PROVIDER_HOSTS,
    HostError,
    HostPattern,
    Origin,
    is_loopback,
)
from byok_reconcile.results import Problem
from byok_reconcile.schema import check as schema_check
from byok_reconcile.sopsmeta import format_for, inspect_text, is_enc_value, read_file

ENV_ALLOW = "BYOK_ALLOW_HOSTS"
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
    problems = tuple(sorted(state.problems, key=Problem.sort_key))
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
        f"key '{doc.name}' is defined twice (first at {where})",
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
        f"feature '{path[-1]}' is mapped twice (first at {where})",
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
        f"feature '{path[-1]}' is listed twice in the catalogs (first at {where})",
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
                f"did you mean '{close[0]}'?"
                if close
                else ("add it to the FeatureCatalog or remove the mapping")
            )
            state.problems.append(
                doc.problem(
                    ("spec", "features", fname),
                    f"feature '{fname}' is not in the feature catalog",
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
                    f"required feature '{fname}' is not mapped to any key",
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


def _allowed_hosts(state: _State) -> tuple[str, ...]:
    hosts: set[str] = set()
    for doc in state.of("Policy"):
        hosts.update(doc.data["spec"]["allowedHosts"])
    return tuple(sorted(hosts))


def _env_hosts() -> tuple[str, ...]:
    """``BYOK_ALLOW_HOSTS`` entries: byok check honours them, so the host
    warning does too (a malformed entry simply matches nothing here)."""
    value = os.environ.get(ENV_ALLOW, "")
    return tuple(part.strip() for part in value.split(",") if part.strip())


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


# -- rules: secrets -----------------------------------------------------------------

_API_KEY = ("spec", "apiKey")


def secret_ref(doc: Document) -> tuple[list[Problem], SecretRef | None]:
    """Where the key's secret comes from, or the hygiene problems found.

    Messages never quote the value of ``apiKey``: it may be a real key.
    """
    spec = doc.data.get("spec")
    value = spec.get("apiKey") if isinstance(spec, dict) else None
    if isinstance(value, str):
        return _inline_ref(doc, value)
    if isinstance(value, dict) and "fromEnv" in value and len(value) == 1:
        env = value["fromEnv"]
        if not isinstance(env, str):
            return [], None
        ref = SecretRef("env", doc.location(_API_KEY), env=env)
        return _env_warning(doc, env), ref
    if isinstance(value, dict) and "fromFile" in value:
        return _file_ref(doc, value)
    return [], None  # a shape error the schema reports


# Variables that hold something other than a provider key: naming one in
# fromEnv would send byok's or sops' own credentials to a provider.
_SOPS_ENV = (
    "SOPS_",
    "AWS_",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "VAULT_",
    "AZURE_CLIENT_",
    "AZURE_TENANT_ID",
    "GNUPGHOME",
)
_SYSTEM_ENV = frozenset(
    {"PATH", "HOME", "USER", "SHELL", "PWD", "LANG", "TMPDIR", "LOGNAME"}
)


def _env_holds(env: str) -> str | None:
    if env.upper().startswith("BYOK_"):
        return "byok's own settings or credentials"
    if env.upper().startswith(_SOPS_ENV):
        return "sops' decryption credentials"
    if env.upper() in _SYSTEM_ENV:
        return "a system setting"
    return None


def _env_warning(doc: Document, env: str) -> list[Problem]:
    holds = _env_holds(env)
    if holds is None:
        return []
    return [
        doc.problem(
            ("spec", "apiKey", "fromEnv"),
            f"fromEnv names {env}: this variable holds {holds}, not a provider key",
            "secret-env",
            "name the variable your CI secret store sets for this key, "
            "such as OPENAI_PROD_KEY",
            severity="warning",
        )
    ]


def _inline_ref(doc: Document, value: str) -> tuple[list[Problem], SecretRef | None]:
    if not is_enc_value(value):
        return [_plaintext(doc, value)], None
    if doc.sops is None:
        problem = doc.problem(
            _API_KEY,
            "apiKey holds a sops value, but the file has no sops metadata",
            "sops-metadata",
            "encrypt the file with sops (the sops: block must stay in the file)",
        )
        return [problem], None
    ref = SecretRef(
        "inline", doc.location(_API_KEY), path=doc.path, doc_index=doc.index
    )
    return [], ref


def _plaintext(doc: Document, value: str) -> Problem:
    if doc.sops is not None:
        hint = (
            "the file is sops-encrypted, but its encrypted_regex leaves apiKey in "
            "clear: re-encrypt with --encrypted-regex '^apiKey$', and rotate the key"
        )
    elif not value.strip():
        hint = "give a sops value, {fromFile, key} or {fromEnv}"
    elif value.startswith("ENC["):
        hint = "this sops value is damaged: encrypt the file again with sops"
    else:
        hint = (
            "encrypt it with sops (encrypted_regex: ^apiKey$) or use "
            "{fromFile, key} or {fromEnv}; if this file was ever committed, "
            "the key is in git history: rotate it"
        )
    return doc.problem(
        _API_KEY, "plaintext API key in spec.apiKey", "plaintext-secret", hint
    )


def _file_ref(
    doc: Document, value: dict[str, Any]
) -> tuple[list[Problem], SecretRef | None]:
    ref_path = ("spec", "apiKey", "fromFile")
    raw, key = value.get("fromFile"), value.get("key")
    if not isinstance(raw, str) or not isinstance(key, str) or not raw:
        return [], None
    target = Path(os.path.normpath(doc.path.parent / raw))
    why = _file_ref_problem(target)
    if why is not None:
        # Named only when it exists: a path that is not there may be a pasted key.
        shown = f"fromFile '{raw}'" if _exists(target) else "the fromFile target"
        message, hint = why
        return [doc.problem(ref_path, f"{shown} {message}", "secret-file", hint)], None
    ref = SecretRef("file", doc.location(_API_KEY), path=target, key=key)
    return [], ref


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _file_ref_problem(target: Path) -> tuple[str, str] | None:
    """Why the fromFile target cannot serve, or None. Every failure of the
    file system (too long a name, no permission) is an answer here, not an
    exception: the path may be a pasted key and must not reach a traceback."""
    try:
        data = read_file(target)
    except ConfigError as exc:
        if exc.message == "does not exist":
            return "does not exist", "the path is relative to this file"
        return exc.message, exc.hint or "check the path"
    except ValueError:  # a NUL byte in the path
        return "is not a valid path", "the path is relative to this file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if inspect_text(text, format_for(target)) is None:
        return "is not sops-encrypted", "encrypt it: sops encrypt --in-place FILE"
    return None


# -- rules: providers ---------------------------------------------------------------

OPENAI_BASE_URL = "https://api.openai.com/v1"
_API_VERSION_RE = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(-preview)?\Z"
)
_V1_API_VERSIONS = ("v1", "latest", "preview")


def key_spec(
    doc: Document, ref: SecretRef, hosts: tuple[str, ...]
) -> tuple[list[Problem], KeySpec | None]:
    """The KeySpec of a schema-valid Key document, after its provider rules."""
    spec = doc.data["spec"]
    provider = spec["provider"]
    block = spec.get(provider) or {}
    problems, settings = _SETTINGS[provider](doc, block)
    problems += _host_warning(doc, provider, settings, hosts)
    if any(p.severity == "error" for p in problems):
        return problems, None
    meta = doc.data["metadata"]
    deployments = {d: e["model"] for d, e in block.get("deployments", {}).items()}
    return problems, KeySpec(
        name=meta["name"],
        provider=provider,
        secret=ref,
        settings=settings,
        models=tuple(spec.get("models", ())),
        deployments=deployments,
        description=meta.get("description"),
        labels=dict(meta.get("labels", {})),
        location=doc.location(("metadata", "name")),
    )


Settings = tuple[list[Problem], dict[str, str]]


def _openai_settings(doc: Document, block: dict[str, Any]) -> Settings:
    path = ("spec", "openai", "baseUrl")
    base = block.get("baseUrl", OPENAI_BASE_URL)
    problems = _check_url(doc, path, base) if "baseUrl" in block else []
    settings = {"baseUrl": base.rstrip("/")}
    for name in ("organization", "project"):
        if name in block:
            settings[name] = block[name]
    return problems, settings


def _compatible_settings(doc: Document, block: dict[str, Any]) -> Settings:
    path = ("spec", "openai_compatible", "baseUrl")
    base = block["baseUrl"]
    return _check_url(doc, path, base), {"baseUrl": base.rstrip("/")}


def _azure_settings(doc: Document, block: dict[str, Any]) -> Settings:
    endpoint, version = block["endpoint"], block["apiVersion"]
    path = ("spec", "azure_openai", "endpoint")
    problems = _check_url(doc, path, endpoint, root_only=True)
    if not (_API_VERSION_RE.match(version) or version in _V1_API_VERSIONS):
        problems.append(
            doc.problem(
                ("spec", "azure_openai", "apiVersion"),
                f"apiVersion '{version}' is not an Azure OpenAI api-version",
                "azure-api-version",
                'write a date version such as "2024-10-21" or '
                '"2025-04-01-preview", or "v1" for the v1 API',
            )
        )
    settings = {"endpoint": endpoint.rstrip("/"), "apiVersion": version}
    return problems, settings


_SETTINGS = {
    "openai": _openai_settings,
    "azure_openai": _azure_settings,
    "openai_compatible": _compatible_settings,
}


def _check_url(
    doc: Document, path: tuple[str, ...], url: str, *, root_only: bool = False
) -> list[Problem]:
    """An absolute http(s) URL; http only for loopback; for an Azure endpoint,
    the resource root."""
    why = _url_problem(url, root_only)
    if why is None:
        return []
    return [doc.problem(path, f"{path[-1]} {why[0]}", "url", why[1])]


def _url_problem(url: str, root_only: bool) -> tuple[str, str] | None:
    example = (
        "https://contoso.openai.azure.com/"
        if root_only
        else ("https://llm.example.com/v1")
    )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a valid URL", f"write it like {example}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL", f"write it like {example}"
    if any(c.isspace() for c in url):
        return "contains spaces", "remove them"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials", "remove the user:password@ part"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "must not have a query or fragment", "remove the part from ? or #"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return "uses http:// for a host that is not loopback", "use https://"
    if root_only and parts.path not in ("", "/"):
        return "must be the resource root, without a path", f"write it like {example}"
    return None


def host_allowed(host: str, port: int | None, patterns: Iterable[str]) -> bool:
    """Whether ``host`` (and ``port``) matches a hostname, ``*.suffix`` or
    ``host:port`` pattern; malformed patterns match nothing."""
    origin = Origin("https", host.lower().strip("[]"), port or 443)
    for text in patterns:
        try:
            if HostPattern.parse(text).matches(origin):
                return True
        except HostError:
            continue
    return False


def _host_warning(
    doc: Document, provider: str, settings: dict[str, str], hosts: tuple[str, ...]
) -> list[Problem]:
    name = "endpoint" if provider == "azure_openai" else "baseUrl"
    try:
        parts = urlsplit(settings[name])
        host, port = parts.hostname, parts.port
    except ValueError:
        return []
    allowed = PROVIDER_HOSTS[provider] + hosts + _env_hosts()
    if host is None or host_allowed(host, port, allowed):
        return []
    path = ("spec", provider, name)
    return [
        doc.problem(
            path,
            f"the key would be sent to {host}, which no Policy document "
            f"or {ENV_ALLOW} allows",
            "host-not-allowed",
            "byok check refuses it unless a Policy document, "
            f"{ENV_ALLOW} or byok check --allow-host allows the host",
            severity="warning",
        )
    ]


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
        hint = f"did you mean '{close[0]}'?" if close else "define a Key with this name"
        return [
            doc.problem(
                (*path, "key"),
                f"feature '{path[-1]}' uses key '{key}', which is not defined",
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
                f"key '{spec.name}' is a {spec.provider} key: name its {field} "
                f"with '{field}', not '{other}'",
                "target-kind",
                f"write {field}: one of {', '.join(declared)}",
                key=True,
            )
        ]
    if field not in entry:
        return [
            doc.problem(
                path,
                f"feature '{path[-1]}' does not say which {field} it uses",
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
        f"did you mean '{close[0]}'?"
        if close
        else (f"add it to {where} of key '{spec.name}'")
    )
    return [
        doc.problem(
            (*path, field),
            f"{field} '{value}' is not declared by key '{spec.name}' ({where})",
            "unknown-target",
            hint,
        )
    ]
