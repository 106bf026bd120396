"""Provider rules of a Key document: connection settings, URLs, the Azure
api-version, and the warning when the key would go to a host nothing allows.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from byok_reconcile.documents import Document
from byok_reconcile.keyshape import bare, shown
from byok_reconcile.model import KeySpec, SecretRef
from byok_reconcile.providers.hosts import (
    PROVIDER_HOSTS,
    HostError,
    HostPattern,
    Origin,
    is_loopback,
)
from byok_reconcile.results import Problem

ENV_ALLOW = "BYOK_ALLOW_HOSTS"
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
                f"apiVersion {shown(version)} is not an Azure OpenAI api-version",
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
        pattern = _pattern(text)
        if pattern is not None and pattern.matches(origin):
            return True
    return False


@functools.lru_cache(maxsize=1024)
def _pattern(text: str) -> HostPattern | None:
    # Every Key is checked against the same few patterns: parse each once.
    try:
        return HostPattern.parse(text)
    except HostError:
        return None


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
            f"the key would be sent to {bare(host)}, which no Policy document "
            f"or {ENV_ALLOW} allows",
            "host-not-allowed",
            "byok check refuses it unless a Policy document, "
            f"{ENV_ALLOW} or byok check --allow-host allows the host",
            severity="warning",
        )
    ]


def _env_hosts() -> tuple[str, ...]:
    """``BYOK_ALLOW_HOSTS`` entries: byok check honours them, so the host
    warning does too (a malformed entry simply matches nothing here)."""
    value = os.environ.get(ENV_ALLOW, "")
    return tuple(part.strip() for part in value.split(",") if part.strip())
