"""Check every key concurrently and turn probes into KeyResults.

Keys run on a thread pool of ``--concurrency`` workers; the shared transport
holds the global and per-host limits while a request is in flight, and the
retry loop sleeps outside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING

from byok_reconcile.model import Config, KeySpec
from byok_reconcile.providers.classify import Outcome
from byok_reconcile.providers.hosts import HostError, HostPolicy, parse_origin
from byok_reconcile.providers.probes import (
    Probed,
    probe_azure,
    probe_openai,
    skipped,
    unsendable,
)
from byok_reconcile.providers.session import Session, Sleeper
from byok_reconcile.results import (
    FORBIDDEN,
    INVALID_KEY,
    MISCONFIGURED,
    MODEL_UNAVAILABLE,
    QUOTA_EXHAUSTED,
    RATE_LIMITED,
    UNREACHABLE,
    VALID,
    KeyResult,
)
from byok_reconcile.secret import Secret

if TYPE_CHECKING:
    from byok_reconcile.pipeline import CheckOptions

log = logging.getLogger("byok.provider")

# Worst first: a key's verdict is the worst of its own and its targets'.
SEVERITY = (
    INVALID_KEY,
    FORBIDDEN,
    MISCONFIGURED,
    MODEL_UNAVAILABLE,
    QUOTA_EXHAUSTED,
    UNREACHABLE,
    RATE_LIMITED,
    VALID,
)

OnResult = Callable[[KeyResult], None]


def worst(verdicts: list[str]) -> str:
    """The most severe verdict of ``verdicts`` (``valid`` if empty)."""
    return min(verdicts, key=SEVERITY.index, default=VALID)


def build_policy(config: Config, options: CheckOptions) -> HostPolicy:
    """The run's allow-list: command line, environment and Policy documents."""
    allowed = (*options.allow_hosts, *config.allowed_hosts)
    return HostPolicy.build(allowed, options.resolve)


def check_keys(
    config: Config,
    secrets: Mapping[str, Secret],
    options: CheckOptions,
    *,
    on_result: OnResult | None = None,
    sleeper: Sleeper | None = None,
) -> list[KeyResult]:
    """Check each key of ``config`` that has a secret; results sorted by key."""
    names = sorted(n for n in config.keys if n in secrets)
    ready = ((n, secrets[n]) for n in names)
    return check_stream(config, ready, options, on_result=on_result, sleeper=sleeper)


def check_stream(
    config: Config,
    ready: Iterable[tuple[str, Secret]],
    options: CheckOptions,
    *,
    on_result: OnResult | None = None,
    sleeper: Sleeper | None = None,
) -> list[KeyResult]:
    """Check keys as their secrets arrive from ``ready`` (decryption may
    still be running); results sorted by key."""
    policy = build_policy(config, options)
    results: list[KeyResult] = []
    with Session(options, policy, sleeper) as session, ThreadPoolExecutor(
        max_workers=max(options.concurrency, 1), thread_name_prefix="byok-check"
    ) as pool:
        futures = [
            pool.submit(check_key, session, config.keys[name], secret)
            for name, secret in ready
            if name in config.keys
        ]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_result is not None:
                on_result(result)
    return sorted(results, key=lambda r: r.key)


def check_key(session: Session, spec: KeySpec, secret: Secret) -> KeyResult:
    """Probe one key; never raises for a provider's answer."""
    log.info("checking key %s (%s)", spec.name, spec.provider)
    try:
        probed = _probe(session, spec, secret)
    except Exception as exc:  # one key's crash must not stop the run
        # The exception text could hold provider data: show its type only.
        outcome = Outcome(UNREACHABLE, f"the check failed: {type(exc).__name__}")
        probed = Probed(outcome, skipped(spec.targets, outcome, _host(spec) or ""))
    return to_result(spec, secret, probed)


def _probe(session: Session, spec: KeySpec, secret: Secret) -> Probed:
    bad = unsendable(secret)
    if bad is not None:
        return Probed(bad, skipped(spec.targets, bad, _host(spec) or ""))
    if spec.provider == "azure_openai":
        return probe_azure(session, spec, secret)
    return probe_openai(session, spec, secret)


def to_result(spec: KeySpec, secret: Secret, probed: Probed) -> KeyResult:
    own = probed.key
    verdict = worst([own.verdict, *(t.verdict for t in probed.targets)])
    detail, hint = own.detail, own.hint
    if verdict != own.verdict:
        bad = [t for t in probed.targets if t.verdict == verdict]
        detail = f"{bad[0].target}: {bad[0].detail}"
        hint = _target_hint(verdict)
    return KeyResult(
        key=spec.name,
        provider=spec.provider,
        verdict=verdict,
        fingerprint=secret.fingerprint,
        detail=detail,
        hint=hint,
        request_id=own.request_id,
        host=_host(spec),
        targets=probed.targets,
        file=spec.location.file,
        line=spec.location.line,
        col=spec.location.col,
    )


def _target_hint(verdict: str) -> str:
    hints = {
        MODEL_UNAVAILABLE: "fix the model or deployment name, or enable it",
        QUOTA_EXHAUSTED: "check the plan and billing details",
        UNREACHABLE: "check the network; run again later",
        RATE_LIMITED: "the key works; the provider asked to slow down",
        FORBIDDEN: "grant the key the permission it lacks",
        MISCONFIGURED: "check the endpoint, base URL and API version",
    }
    return hints.get(verdict, "")


def _host(spec: KeySpec) -> str | None:
    url = spec.settings.get("endpoint") or spec.settings.get("baseUrl")
    if spec.provider == "openai" and not url:
        url = "https://api.openai.com/v1"
    try:
        return parse_origin(url).host if url else None
    except HostError:
        return None
