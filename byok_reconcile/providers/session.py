"""One check run's shared HTTP client, SDK clients and retry loop.

Every SDK client is built with ``max_retries=0`` on the one shared
``httpx2.Client``: retries are ours, because the SDK would retry an
``insufficient_quota`` 429 and cannot tell a rate limit worth waiting for
from one that is not. Every argument the SDK would otherwise read from the
environment (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``, ``OPENAI_BASE_URL``,
``OPENAI_CUSTOM_HEADERS``...) is passed explicitly or omitted explicitly.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import httpx2
import openai

from byok_reconcile.providers.classify import (
    Outcome,
    Phase,
    classify_status,
    classify_transport,
)
from byok_reconcile.providers.hosts import HostError, HostPolicy, parse_origin
from byok_reconcile.providers.transport import GuardedTransport, RefusedHostError
from byok_reconcile.results import MISCONFIGURED, RATE_LIMITED, UNREACHABLE
from byok_reconcile.secret import Secret

if TYPE_CHECKING:
    from byok_reconcile.pipeline import CheckOptions

T = TypeVar("T")
U = TypeVar("U")
log = logging.getLogger("byok.provider")

RETRY_CAP = 30.0  # seconds; a provider asking for more is not waited for
BACKOFF_BASE = 0.5


class ProbeFailure(Exception):
    """A request ended in a verdict other than success."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.verdict)
        self.outcome = outcome


@dataclass(frozen=True)
class Sleeper:
    """How the retry loop waits; tests swap ``sleep`` to record delays."""

    sleep: Callable[[float], None] = time.sleep


class Session:
    """Shared state of one check run. Use as a context manager."""

    def __init__(self, options: CheckOptions, policy: HostPolicy,
                 sleeper: Sleeper | None = None) -> None:
        self.options = options
        self.policy = policy
        self.sleeper = sleeper or Sleeper()
        self.transport = GuardedTransport(
            policy, options.concurrency, options.per_host
        )
        self.http = httpx2.Client(
            transport=self.transport,
            timeout=options.timeout,
            follow_redirects=False,
        )
        # Targets of one key run here, apart from the pool that runs keys:
        # a key waiting for its targets never holds a slot they need.
        self._targets = ThreadPoolExecutor(
            max_workers=max(options.concurrency, 1), thread_name_prefix="byok-target"
        )

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._targets.shutdown(wait=True)
        self.http.close()

    def map(self, fn: Callable[[U], T], items: Iterable[U]) -> list[T]:
        """``fn`` over ``items`` concurrently, results in the items' order.

        The transport still holds the global and per-host limits, so this
        only lets one key's targets use the slots that are free.
        """
        futures = [self._targets.submit(fn, item) for item in items]
        return [f.result() for f in futures]

    def admit(self, provider: str, url: str) -> Outcome | None:
        """Check ``url`` against the allow-list; a refusal is an Outcome."""
        why = self.policy.refusal(provider, url)
        if why is not None:
            return classify_transport("refused", f"nothing sent: {why}")
        try:
            self.transport.approve(parse_origin(url))
        except HostError as exc:  # refusal() parsed it already; belt and braces
            return classify_transport("refused", str(exc))
        return None

    def openai_client(
        self,
        base_url: str,
        secret: Secret,
        organization: str | None = None,
        project: str | None = None,
    ) -> openai.OpenAI:
        headers: dict[str, object] = {
            # Explicit, so OPENAI_CUSTOM_HEADERS cannot replace the key and
            # OPENAI_ORG_ID / OPENAI_PROJECT_ID cannot add a header.
            "Authorization": f"Bearer {secret.reveal()}",
            "OpenAI-Organization": organization or openai.Omit(),
            "OpenAI-Project": project or openai.Omit(),
        }
        return openai.OpenAI(
            api_key=secret.reveal(),
            admin_api_key="",
            organization=organization or "",
            project=project or "",
            webhook_secret="",
            base_url=base_url,
            timeout=self.options.timeout,
            max_retries=0,
            default_headers=headers,  # type: ignore[arg-type]
            http_client=self.http,
        )

    def azure_client(
        self, endpoint: str, api_version: str, secret: Secret
    ) -> openai.AzureOpenAI:
        headers: dict[str, object] = {
            "api-key": secret.reveal(),
            "Authorization": openai.Omit(),
            "OpenAI-Organization": openai.Omit(),
            "OpenAI-Project": openai.Omit(),
        }
        # ``project`` is accepted at runtime but missing from the overloads;
        # it must be given, or OPENAI_PROJECT_ID would fill it.
        return openai.AzureOpenAI(  # type: ignore[call-overload]
            azure_endpoint=endpoint,
            api_version=api_version,
            api_key=secret.reveal(),
            admin_api_key="",
            organization="",
            project="",
            webhook_secret="",
            timeout=self.options.timeout,
            max_retries=0,
            default_headers=headers,
            http_client=self.http,
        )

    def call(
        self, fn: Callable[[], T], phase: Phase, secret: Secret, host: str = ""
    ) -> T:
        """Run one SDK call with bounded retries; failures raise ProbeFailure.

        ``host`` is the configured host the call goes to; failures that say
        who could not be reached name it.
        """
        retries = max(self.options.retries, 0)
        for attempt in range(retries + 1):
            outcome = self._attempt(fn, phase, secret, host or "the provider")
            if not isinstance(outcome, Outcome):
                return outcome
            if not outcome.retry or attempt == retries:
                raise ProbeFailure(outcome)
            delay = self._delay(attempt, outcome.retry_after)
            if delay is None:
                raise ProbeFailure(_too_long(outcome))
            log.info("retrying in %.2fs after %s", delay, outcome.verdict)
            self.sleeper.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self, fn: Callable[[], T], phase: Phase, secret: Secret, host: str
    ) -> T | Outcome:
        try:
            return fn()
        except openai.APIStatusError as exc:
            resp = exc.response
            return classify_status(
                resp.status_code, resp.text, resp.headers, phase, secret.reveal(),
                host,
            )
        except openai.APITimeoutError:
            return classify_transport(
                "timeout", f"no answer from {host} within {self.options.timeout:g}s"
            )
        except openai.APIConnectionError as exc:
            if isinstance(exc.__cause__, RefusedHostError):
                return classify_transport("refused", str(exc.__cause__))
            return classify_transport("connect", f"could not connect to {host}")
        except (openai.OpenAIError, ValueError) as exc:
            # A 2xx we cannot read: not an answer about the key.
            return Outcome(UNREACHABLE, f"unreadable answer ({type(exc).__name__})")

    def _delay(self, attempt: int, asked: float | None) -> float | None:
        if asked is not None:
            return asked if asked <= RETRY_CAP else None
        base = min(BACKOFF_BASE * 2**attempt, RETRY_CAP)
        return base * (1 - 0.25 * random.random())


def _too_long(outcome: Outcome) -> Outcome:
    wait = f"{outcome.retry_after:g}s" if outcome.retry_after else "too long"
    verdict = RATE_LIMITED if outcome.verdict == RATE_LIMITED else outcome.verdict
    detail = f"{outcome.detail} (asked to wait {wait}, more than {RETRY_CAP:g}s)"
    return replace(outcome, verdict=verdict, detail=detail, retry=False)


__all__ = ["MISCONFIGURED", "ProbeFailure", "Session", "Sleeper"]
