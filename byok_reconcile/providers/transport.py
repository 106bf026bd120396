"""The one HTTP transport every probe goes through.

It is the last gate before a key leaves the process: a request goes out
only to an origin a probe approved after the allow-list check (so an SDK
redirect to another host is refused), ``--resolve`` is applied here, headers
the SDK picked up from the environment are dropped, and the global and
per-host concurrency limits are held while the request is in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2

from byok_reconcile.output.logs import log_call
from byok_reconcile.providers.hosts import HostPolicy, Origin

_SENT_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "api-key",
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "host",
        "idempotency-key",
        "openai-organization",
        "openai-project",
        "user-agent",
    }
)


class RefusedHostError(httpx2.TransportError):
    """A request aimed at an origin no probe approved; nothing was sent."""


def origin_of(url: httpx2.URL) -> Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return Origin(url.scheme, url.host.lower().rstrip("."), port)


class GuardedTransport(httpx2.BaseTransport):
    """Approve-list, resolve map, header filter and concurrency limits."""

    def __init__(self, policy: HostPolicy, concurrency: int, per_host: int) -> None:
        self._policy = policy
        self._approved: set[Origin] = set()
        self._lock = threading.Lock()
        self._global = threading.BoundedSemaphore(max(concurrency, 1))
        self._per_host_limit = max(per_host, 1)
        self._per_host: dict[str, threading.BoundedSemaphore] = {}
        # Loopback traffic never goes through a proxy from the environment.
        self._direct = httpx2.HTTPTransport(trust_env=False)
        self._outside = httpx2.HTTPTransport()

    def approve(self, origin: Origin) -> None:
        with self._lock:
            self._approved.add(origin)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        origin = origin_of(request.url)
        with self._lock:
            approved = origin in self._approved
        if not approved:
            raise RefusedHostError(f"refused to send a key to {origin.host}")
        _drop_stray_headers(request)
        target = apply_resolve(self._policy, request)
        inner = self._direct if target.loopback else self._outside
        with self._slot(origin.host):
            started = time.monotonic()
            try:
                response = inner.handle_request(request)
                # Read inside the slot, so the limit covers the whole exchange.
                response.read()
            except httpx2.HTTPError as exc:
                log_call("provider", request.method, host=origin.host,
                         path=request.url.path, error=type(exc).__name__)
                raise
        log_call("provider", request.method, host=origin.host,
                 path=request.url.path, status=response.status_code,
                 seconds=time.monotonic() - started)
        return response

    @contextmanager
    def _slot(self, host: str) -> Iterator[None]:
        with self._lock:
            sem = self._per_host.setdefault(
                host, threading.BoundedSemaphore(self._per_host_limit)
            )
        with self._global, sem:
            yield

    def close(self) -> None:
        self._direct.close()
        self._outside.close()


def apply_resolve(policy: HostPolicy, request: httpx2.Request) -> Origin:
    """Point ``request`` where ``--resolve`` sends its origin; return that.

    Like curl --resolve, the Host header keeps the original name; a path in
    the resolve URL (``http://127.0.0.1:8000/compat/vllm``) is put in front
    of the request's path, the query stays as it is.
    """
    origin = origin_of(request.url)
    target, prefix = policy.route(origin)
    if target != origin or prefix:
        request.url = request.url.copy_with(
            scheme=target.scheme,
            host=target.host,
            port=target.port,
            raw_path=prefix.encode("ascii") + request.url.raw_path,
        )
    return target


def _drop_stray_headers(request: httpx2.Request) -> None:
    for name in list(request.headers):
        lowered = name.lower()
        if lowered not in _SENT_HEADERS and not lowered.startswith("x-stainless-"):
            del request.headers[name]
