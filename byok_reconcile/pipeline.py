"""The flow that check, render and apply share: validate, decrypt, check.

Each step runs only if the one before left something to work on: an invalid
configuration is never decrypted, and an undecryptable key is never sent.
The heavy parts (sops, the provider SDK) are imported inside the steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from byok_reconcile.errors import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    ByokError,
)
from byok_reconcile.results import UNREACHABLE, WORKING, KeyResult, Problem
from byok_reconcile.secret import Secret

if TYPE_CHECKING:
    from byok_reconcile.model import Config, KeySpec

OnResult = Callable[[KeyResult], None]


@dataclass(frozen=True)
class CheckOptions:
    """How ``byok check`` (and render/apply) asks the providers.

    ``resolve`` maps a host pattern to a loopback URL (``--resolve``);
    ``allow_hosts`` adds to the allow-list of DESIGN.md.
    """

    deep: bool = False
    timeout: float = 10.0
    concurrency: int = 32
    per_host: int = 32
    retries: int = 3
    unreachable: Literal["fail", "warn"] = "fail"
    allow_hosts: tuple[str, ...] = ()
    resolve: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineResult:
    """Everything the pipeline found. ``secrets`` never leave memory."""

    validation: Any  # byok_reconcile.validate.ValidationResult
    secrets: dict[str, Secret | ByokError] = field(default_factory=dict)
    results: list[KeyResult] = field(default_factory=list)
    report_problems: list[Problem] = field(default_factory=list)
    exit_code: int = EXIT_OK

    @property
    def config(self) -> Config | None:
        config: Config | None = getattr(self.validation, "config", None)
        return config

    @property
    def problems(self) -> list[Problem]:
        """Validation problems, then those found while decrypting."""
        found: list[Problem] = list(getattr(self.validation, "problems", []))
        return found + self.report_problems


def load_and_check(
    paths: Sequence[str | Path],
    options: CheckOptions | None,
    *,
    on_result: OnResult | None = None,
) -> PipelineResult:
    """Validate ``paths``, resolve every secret and, unless ``options`` is
    None (``--no-check``), ask each provider about each key.
    """
    from byok_reconcile.validate import validate_paths

    # 1. validate: an invalid configuration stops here, nothing decrypted.
    validation = validate_paths([Path(p) for p in paths])
    config = validation.config
    if config is None or _has_errors(validation.problems):
        return PipelineResult(validation, exit_code=EXIT_INVALID)

    # 2. decrypt every key's secret (or the error that kept it away) and
    # 3. check the keys whose secret is in hand, each as soon as it is.
    secrets: dict[str, Secret | ByokError] = {}
    results: list[KeyResult] = []
    if options is None:
        secrets = _resolve(config)
    else:
        results = _resolve_and_check(config, secrets, options, on_result)
    problems = [secret_problem(config.keys[n], e) for n, e in _failed(secrets)]
    code = exit_code(secrets, results, options)
    return PipelineResult(validation, secrets, results, problems, code)


def _has_errors(problems: Sequence[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def _resolve(config: Config) -> dict[str, Secret | ByokError]:
    from byok_reconcile.keysource import resolve_secrets

    return dict(resolve_secrets(config))


def _failed(
    secrets: Mapping[str, Secret | ByokError],
) -> list[tuple[str, ByokError]]:
    return sorted(
        (n, s) for n, s in secrets.items() if isinstance(s, ByokError)
    )


def _resolve_and_check(
    config: Config,
    secrets: dict[str, Secret | ByokError],
    options: CheckOptions,
    on_result: OnResult | None,
) -> list[KeyResult]:
    """Overlap decryption and probing: sops and the providers both wait, so
    a key's check starts while other files are still being decrypted.
    ``secrets`` is filled with every key's secret or error on the way."""
    from byok_reconcile.keysource import resolve_each
    from byok_reconcile.providers.runner import check_stream

    def ready() -> Iterator[tuple[str, Secret]]:
        for name, value in resolve_each(config):
            secrets[name] = value
            if isinstance(value, Secret):
                yield name, value

    results = check_stream(config, ready(), options, on_result=on_result)
    ordered = dict(sorted(secrets.items()))
    secrets.clear()
    secrets.update(ordered)
    return results


def secret_problem(spec: KeySpec, error: ByokError) -> Problem:
    """A Problem at the Key document for a secret that could not be had."""
    where = spec.secret.location if spec.secret.location.file else spec.location
    return Problem(
        file=where.file,
        line=where.line,
        col=where.col,
        message=f"key {spec.name}: {error.message}",
        code="secret-unavailable",
        path="$.spec.apiKey",
        hint=error.hint,
    )


def exit_code(
    secrets: Mapping[str, Secret | ByokError],
    results: Sequence[KeyResult],
    options: CheckOptions | None,
) -> int:
    """0 all working; 1 a rejection or bad secret reference; 3 unavailable
    (sops, a decryption key, an unset environment variable, a provider).

    A definite rejection (1) wins over "could not find out" (3): it is the
    problem the user can and must fix.
    """
    errors = [s for s in secrets.values() if isinstance(s, ByokError)]
    rejected = [r for r in results if not r.working and not _only_unreachable(r)]
    if rejected or any(e.exit_code == EXIT_INVALID for e in errors):
        return EXIT_INVALID
    if errors:
        return max(e.exit_code for e in errors)
    warn = options is not None and options.unreachable == "warn"
    if any(_only_unreachable(r) and not r.working for r in results) and not warn:
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _only_unreachable(result: KeyResult) -> bool:
    """Every failing verdict of ``result`` is ``unreachable``."""
    verdicts = [result.verdict, *(t.verdict for t in result.targets)]
    failing = [v for v in verdicts if v not in WORKING]
    return bool(failing) and all(v == UNREACHABLE for v in failing)
