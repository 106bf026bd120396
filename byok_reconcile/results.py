"""Records that commands produce and reporters print.

Verdict names are the constants of DESIGN.md, shared by the check, the
reporters, the artifact and the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]

VALID = "valid"
INVALID_KEY = "invalid_key"
FORBIDDEN = "forbidden"
MODEL_UNAVAILABLE = "model_unavailable"
QUOTA_EXHAUSTED = "quota_exhausted"
RATE_LIMITED = "rate_limited"
MISCONFIGURED = "misconfigured"
UNREACHABLE = "unreachable"

VERDICTS = (
    VALID,
    INVALID_KEY,
    FORBIDDEN,
    MODEL_UNAVAILABLE,
    QUOTA_EXHAUSTED,
    RATE_LIMITED,
    MISCONFIGURED,
    UNREACHABLE,
)
WORKING = frozenset({VALID, RATE_LIMITED})


@dataclass(frozen=True)
class Problem:
    """One finding about the configuration, at a place in a file.

    ``path`` is the JSON path inside the document (``$.spec.models[1]``),
    ``hint`` what to do, ``code`` a stable rule name (``schema``,
    ``duplicate-key``, ``plaintext-secret`` ...).
    """

    file: str
    line: int
    col: int
    message: str
    code: str
    severity: Severity = "error"
    path: str = ""
    hint: str | None = None

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.col, self.message)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        text = f"{where}: {self.severity}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


@dataclass(frozen=True)
class TargetResult:
    """The verdict for one model or deployment of a key."""

    target: str
    verdict: str
    detail: str = ""
    proven: str = ""
    request_id: str | None = None


@dataclass(frozen=True)
class KeyResult:
    """The verdict for one key, and for each model or deployment it serves.

    ``verdict`` is the key's overall verdict: the worst of its own and its
    targets'. ``fingerprint`` identifies the secret without showing it.
    """

    key: str
    provider: str
    verdict: str
    fingerprint: str | None = None
    detail: str = ""
    hint: str = ""
    request_id: str | None = None
    host: str | None = None
    targets: tuple[TargetResult, ...] = field(default_factory=tuple)
    file: str = ""
    line: int = 0
    col: int = 0

    @property
    def working(self) -> bool:
        return self.verdict in WORKING and all(
            t.verdict in WORKING for t in self.targets
        )


Action = Literal["create", "update", "delete", "noop"]


@dataclass(frozen=True)
class FieldChange:
    """One changed field. Secrets appear only as fingerprints or "unknown"."""

    field: str
    before: object = None
    after: object = None


@dataclass(frozen=True)
class Change:
    """A change the plan makes to one stored object (a key or a feature)."""

    kind: Literal["key", "feature"]
    name: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    secret: Literal["unchanged", "changed", "unknown", "new", ""] = ""


@dataclass
class Report:
    """What a command found, handed to a reporter (text, json, ...).

    Every command fills the parts that concern it and leaves the rest empty.
    ``data`` carries command-specific JSON-ready extras (the status listing,
    the artifact path, the plan digest ...).
    """

    command: str
    exit_code: int = 0
    problems: list[Problem] = field(default_factory=list)
    keys: list[KeyResult] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)
    summary: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]
