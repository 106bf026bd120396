"""Typed records of a validated configuration.

Loading and validation (``documents``, ``validate``) produce a :class:`Config`;
every later step (check, render, plan, apply) reads only these records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Provider = Literal["openai", "azure_openai", "openai_compatible"]
PROVIDERS: tuple[Provider, ...] = ("openai", "azure_openai", "openai_compatible")


@dataclass(frozen=True)
class Location:
    """A place in a source file; line and column count from 1."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class SecretRef:
    """Where a key's secret comes from; never the secret itself.

    ``inline``: the Key document's own file is sops-encrypted; ``doc_index`` is
    the document's position in that file. ``file``: ``path`` is another sops
    file and ``key`` a dotted path inside it. ``env``: ``env`` names a variable.
    """

    kind: Literal["inline", "file", "env"]
    location: Location
    path: Path | None = None
    key: str | None = None
    env: str | None = None
    doc_index: int = 0

    def describe(self) -> str:
        if self.kind == "env":
            return f"env:{self.env}"
        if self.kind == "file":
            return f"file:{self.path}#{self.key}"
        return f"inline:{self.location.file}"


@dataclass(frozen=True)
class KeySpec:
    """A Key document. ``settings`` are the provider's connection settings.

    openai: ``baseUrl``, ``organization``, ``project``;
    azure_openai: ``endpoint``, ``apiVersion``;
    openai_compatible: ``baseUrl``.
    ``deployments`` maps an Azure deployment name to its model.
    """

    name: str
    provider: Provider
    secret: SecretRef
    settings: Mapping[str, str]
    models: tuple[str, ...] = ()
    deployments: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    location: Location = Location("")

    @property
    def targets(self) -> tuple[str, ...]:
        """The models (or Azure deployments) this key serves."""
        if self.provider == "azure_openai":
            return tuple(self.deployments)
        return self.models


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of a FeatureMapping: which key and model it uses."""

    name: str
    key: str
    model: str | None = None
    deployment: str | None = None
    location: Location = Location("")

    @property
    def target(self) -> str:
        return self.deployment or self.model or ""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    display: str
    sha256: str


@dataclass(frozen=True)
class Config:
    """A validated configuration: keys and features by name."""

    keys: Mapping[str, KeySpec]
    features: Mapping[str, FeatureSpec]
    sources: tuple[SourceFile, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    def digest(self) -> str:
        """A digest of the source files, stable across machines."""
        h = hashlib.sha256()
        for src in sorted(self.sources, key=lambda s: s.display):
            h.update(f"{src.display}\0{src.sha256}\n".encode())
        return "sha256:" + h.hexdigest()
