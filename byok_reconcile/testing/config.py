"""Records that configure the emulator, and the loader for its config file.

Everything here is plain data: frozen dataclasses that the emulator reads.
The loader turns a YAML or JSON mapping into them and reports a wrong field
by its path in the file (``keys[1].credit``) with what to write instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol

from byok_reconcile.errors import ConfigError

ModelKind = Literal["chat", "embedding", "reasoning"]
FaultKind = Literal["status", "hang", "drop", "reset", "html"]

# Dialects a key can be valid for. "azure" covers the dated and the v1 API;
# "compat" is the OpenAI-shaped compatible server under /compat/openai.
DIALECTS = ("openai", "azure", "vllm", "compat")
MODEL_KINDS = ("chat", "embedding", "reasoning")
FAULT_KINDS = ("status", "hang", "drop", "reset", "html")
ALL_SCOPES = "all"

# Scope each OpenAI operation needs from a restricted key. Which scope a
# per-model retrieve needs is not confirmed anywhere; override it through
# Emulator(scope_requirements=...).
DEFAULT_SCOPES: Mapping[str, str] = {
    "models.list": "api.model.read",
    "models.retrieve": "api.model.read",
    "chat": "model.request",
    "embeddings": "model.request",
    "responses": "api.responses.write",
}

AZURE_GA_VERSIONS = (
    "2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21",
)
AZURE_PREVIEW_VERSIONS = tuple(
    f"{d}-preview"
    for d in (
        "2023-03-15", "2023-06-01", "2023-07-01", "2023-08-01", "2023-09-01",
        "2023-12-01", "2024-02-15", "2024-03-01", "2024-04-01", "2024-05-01",
        "2024-07-01", "2024-08-01", "2024-09-01", "2024-10-01", "2024-12-01",
        "2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01",
    )
)  # fmt: skip
AZURE_API_VERSIONS = AZURE_GA_VERSIONS + AZURE_PREVIEW_VERSIONS
# Only these old versions still have the data-plane "list deployments".
AZURE_DEPLOYMENT_LIST_VERSIONS = ("2022-12-01", "2023-03-15-preview")
# Chat completions appeared with 2023-03-15-preview.
AZURE_NO_CHAT_VERSIONS = ("2022-12-01",)
AZURE_V1_VERSIONS = ("v1", "preview", "latest")


@dataclass(frozen=True)
class EmulatedModel:
    """A model of the catalogue: its id and what it can do."""

    id: str
    kind: ModelKind = "chat"
    owned_by: str = "system"
    created: int = 1715367049


DEFAULT_MODELS = (
    EmulatedModel("gpt-4o"),
    EmulatedModel("gpt-4o-mini"),
    EmulatedModel("gpt-4.1"),
    EmulatedModel("gpt-4.1-mini"),
    EmulatedModel("o3-mini", kind="reasoning"),
    EmulatedModel("o4-mini", kind="reasoning"),
    EmulatedModel("text-embedding-3-small", kind="embedding"),
    EmulatedModel("text-embedding-3-large", kind="embedding"),
    EmulatedModel("text-embedding-ada-002", "embedding", "openai-internal"),
)


@dataclass(frozen=True)
class EmulatedKey:
    """A key the emulator accepts, and what its account may do.

    ``models`` None means every model of the catalogue; otherwise the project
    may use only these (others: 403 "does not have access"). ``scopes`` is
    ``"all"`` or the scopes of a restricted key. Azure keys list their
    ``deployments`` as {name: model id} and, optionally, the api-versions
    their resource supports (others: 400 "API version not supported").
    """

    secret: str = field(repr=False)
    dialects: tuple[str, ...] = ("openai",)
    organization: str = "org-emulated"
    project: str = "proj_emulated"
    scopes: tuple[str, ...] | str = ALL_SCOPES
    credit: bool = True
    deactivated: bool = False
    no_organization: bool = False
    country_blocked: bool = False
    models: tuple[str, ...] | None = None
    deployments: Mapping[str, str] = field(default_factory=dict)
    api_versions: tuple[str, ...] | None = None

    @classmethod
    def azure(
        cls,
        secret: str,
        deployments: Mapping[str, str],
        *,
        api_versions: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> EmulatedKey:
        """An Azure OpenAI resource key with its deployments."""
        return cls(
            secret=secret,
            dialects=("azure",),
            deployments=dict(deployments),
            api_versions=api_versions,
            **kwargs,
        )

    def has_scope(self, scope: str) -> bool:
        return self.scopes == ALL_SCOPES or scope in self.scopes

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class Fault:
    """A failure injected for requests whose path starts with ``path``.

    ``kind``: ``status`` (an error body of the path's dialect with
    ``status``), ``html`` (a non-JSON HTML page with ``status``), ``hang``
    (no answer for ``seconds``, then the connection closes), ``drop`` (the
    connection closes without an answer), ``reset`` (TCP reset). ``times``
    None means every request, else the next N matching requests.
    """

    path: str = "/"
    kind: FaultKind = "status"
    status: int = 500
    times: int | None = None
    seconds: float = 30.0
    method: str | None = None
    body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests pass, then 429 with ``retry-after`` headers.

    Counts requests whose path starts with ``path`` (and, if ``secret`` is
    set, that carry that key). With ``window`` the count restarts that many
    seconds after the first counted request; without, the limit stays.
    ``retry_after`` None: the 429 says the time left in the window.
    """

    limit: int
    path: str = "/"
    retry_after: float | None = 1.0
    window: float | None = None
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it.

    ``headers`` (lower-case names) keep the auth headers unredacted so a test
    can assert which key was sent; they are left out of ``repr``.
    ``status`` is None when no answer was sent (hang, drop, reset).
    """

    method: str
    path: str
    query: Mapping[str, str]
    dialect: str
    status: int | None
    fault: str | None
    time: float
    headers: Mapping[str, str] = field(repr=False)
    body: Any = field(repr=False, default=None)

    @property
    def api_key(self) -> str | None:
        """The key sent, from ``api-key`` or ``Authorization: Bearer``."""
        return api_key_of(self.headers)


def api_key_of(headers: Mapping[str, str]) -> str | None:
    """The key in lower-case ``headers``: ``api-key``, else the Bearer token."""
    if "api-key" in headers:
        return headers["api-key"]
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class State(Protocol):
    """What the dialect handlers read from the running emulator."""

    wrong_kind_status: int

    def find_key(self, secret: str, dialect: str) -> EmulatedKey | None: ...

    def has_keys_for(self, dialect: str) -> bool: ...

    def model(self, model_id: str) -> EmulatedModel | None: ...

    def catalogue(self) -> list[EmulatedModel]: ...

    def organizations(self) -> set[str]: ...

    def scope_for(self, operation: str) -> str: ...

    def ratelimit_headers(self, path: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything a config file can set; the Emulator constructor's kwargs."""

    keys: tuple[EmulatedKey, ...] = ()
    models: tuple[EmulatedModel, ...] = DEFAULT_MODELS
    latency: float = 0.0
    path_latency: Mapping[str, float] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_config(path: str | Path) -> EmulatorConfig:
    """Read an emulator config file (YAML or JSON).

    A key's ``secret`` may be given as ``secret_env: NAME`` to read it from
    the environment, so no key needs to sit in the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read emulator config: {exc.strerror}",
                          file=str(path)) from exc
    data = _parse(text, path)
    if not isinstance(data, dict):
        raise ConfigError("the emulator config must be a mapping", file=str(path))
    try:
        return config_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(exc.message, hint=exc.hint, file=str(path)) from exc


def _parse(text: str, path: Path) -> Any:
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{path}:{exc.lineno}:{exc.colno}"
            raise ConfigError(f"{where}: not valid JSON: {exc.msg}") from exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML") from exc


def config_from_mapping(data: Mapping[str, Any]) -> EmulatorConfig:
    """Build an :class:`EmulatorConfig` from parsed YAML/JSON."""
    _only(data, {f.name for f in fields(EmulatorConfig)}, "")
    models = data.get("models")
    return EmulatorConfig(
        keys=tuple(_key(k, f"keys[{i}]") for i, k in enumerate(_list(data, "keys"))),
        models=DEFAULT_MODELS if models is None else tuple(
            _record(EmulatedModel, m, f"models[{i}]") for i, m in enumerate(models)
        ),
        latency=float(data.get("latency", 0.0)),
        path_latency={str(k): float(v) for k, v in
                      dict(data.get("path_latency") or {}).items()},
        faults=tuple(_record(Fault, f, f"faults[{i}]")
                     for i, f in enumerate(_list(data, "faults"))),
        rate_limits=tuple(_record(RateLimit, r, f"rate_limits[{i}]")
                          for i, r in enumerate(_list(data, "rate_limits"))),
    )


def _list(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise ConfigError(f"'{name}' must be a list")
    return value


def _only(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown field {where}{'.' if where else ''}{unknown[0]}",
            hint="allowed: " + ", ".join(sorted(allowed)),
        )


def _record(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping")
    _only(data, {f.name for f in fields(cls)}, where)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where} is incomplete: {exc}") from None


def _key(data: Any, where: str) -> EmulatedKey:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping")
    data = dict(data)
    env = data.pop("secret_env", None)
    if env is not None:
        if env not in os.environ:
            raise ConfigError(f"{where}.secret_env: variable {env} is not set",
                              hint=f"export {env} before starting the emulator")
        data["secret"] = os.environ[env]
    if "secret" not in data:
        raise ConfigError(f"{where} needs 'secret' or 'secret_env'")
    bad = [d for d in data.get("dialects", ()) if d not in DIALECTS]
    if bad:
        raise ConfigError(f"{where}.dialects: unknown dialect {bad[0]!r}",
                          hint="use one of " + ", ".join(DIALECTS))
    key: EmulatedKey = _record(EmulatedKey, data, where)
    return key
