"""The loopback HTTP server that plays OpenAI, Azure OpenAI and compatible
servers. See the package docstring for the paths and the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from byok_reconcile.testing import azure_dialect, bodies, openai_dialect
from byok_reconcile.testing.bodies import Incoming, Reply
from byok_reconcile.testing.config import (
    DEFAULT_MODELS,
    DEFAULT_SCOPES,
    EmulatedKey,
    EmulatedModel,
    Fault,
    RateLimit,
    RecordedRequest,
    api_key_of,
    load_config,
)
from byok_reconcile.testing.wire import Server

# Headers kept in the request record; the rest is noise for tests.
RECORDED_HEADERS = (
    "authorization", "api-key", "openai-organization", "openai-project",
    "content-type", "user-agent", "x-stainless-retry-count", "idempotency-key",
)


@dataclass(frozen=True)
class Route:
    """Where a path goes: dialect name, flavour, and the path below it."""

    dialect: str
    flavour: str
    sub: str


def route_of(path: str) -> Route | None:
    """The dialect of ``path`` (see the package docstring), or None."""
    if path == "/v1" or path.startswith("/v1/"):
        return Route("openai", "openai", path[3:])
    if path == "/openai" or path.startswith("/openai/"):
        return Route("azure", "azure", path[7:])
    parts = path.split("/", 4)
    if len(parts) >= 4 and parts[1] == "compat" and parts[3] == "v1":
        flavour = {"openai": "compat"}.get(parts[2], parts[2])
        if flavour in openai_dialect.FLAVOURS:
            sub = "/" + parts[4] if len(parts) == 5 else ""
            return Route(flavour, flavour, sub)
    return None


class _FaultSlot:
    """A fault and how many more requests it may still hit."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.times

    def take(self, method: str, path: str) -> bool:
        f = self.fault
        if not path.startswith(f.path) or (f.method and f.method != method):
            return False
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class _RateSlot:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.count = 0
        self.started = 0.0

    def matches(self, path: str, key: str | None) -> bool:
        lim = self.limit
        return path.startswith(lim.path) and (lim.secret is None
                                              or lim.secret == key)

    def hit(self, now: float) -> bool:
        """Count one request; True when it is over the limit."""
        window = self.limit.window
        if window is not None and self.count and now - self.started >= window:
            self.count = 0
        if self.count == 0:
            self.started = now
        self.count += 1
        return self.count > self.limit.limit

    def reset_in(self, now: float) -> float:
        window = self.limit.window
        if window is None:
            return self.retry_after(now)
        return max(0.0, self.started + window - now)

    def retry_after(self, now: float) -> float:
        """The configured delay, else the rest of the window, else 1 s."""
        if self.limit.retry_after is not None:
            return self.limit.retry_after
        if self.limit.window is not None:
            return max(0.001, self.started + self.limit.window - now)
        return 1.0


class Emulator:
    """A provider emulator on 127.0.0.1; see the package docstring."""

    def __init__(
        self,
        keys: Iterable[EmulatedKey] = (),
        *,
        models: Iterable[EmulatedModel] = DEFAULT_MODELS,
        latency: float = 0.0,
        path_latency: Mapping[str, float] | None = None,
        faults: Iterable[Fault] = (),
        rate_limits: Iterable[RateLimit] = (),
        scope_requirements: Mapping[str, str] | None = None,
        wrong_kind_status: int = 400,
        port: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._keys = list(keys)
        self._models = {m.id: m for m in models}
        self.latency = latency
        self._path_latency = dict(path_latency or {})
        self._faults = [_FaultSlot(f) for f in faults]
        self._rates = [_RateSlot(r) for r in rate_limits]
        self._scopes = {**DEFAULT_SCOPES, **(scope_requirements or {})}
        self.wrong_kind_status = wrong_kind_status
        self._port = port
        self._records: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self.stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> Emulator:
        """An emulator set up from a YAML/JSON file (see :func:`load_config`)."""
        return cls(**{**load_config(path).kwargs(), **overrides})

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> Emulator:
        """Bind 127.0.0.1 and serve in a background thread."""
        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = Server(("127.0.0.1", self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="byok-emulator", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging requests are released and connections shut."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (the CLI uses it)."""
        self.start()
        while self._server is not None and not self.stopping.wait(0.2):
            pass

    # --- addresses -----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def azure_endpoint(self) -> str:
        return self.url

    @property
    def azure_v1_base_url(self) -> str:
        return self.url + "/openai/v1"

    def compat_base_url(self, flavour: str) -> str:
        """Base URL of a compatible server: vllm, ollama, lmstudio, openai."""
        return f"{self.url}/compat/{flavour}/v1"

    # --- configuration -------------------------------------------------------

    def add_key(self, key: EmulatedKey) -> EmulatedKey:
        with self._lock:
            self._keys.append(key)
        return key

    def update_key(self, secret: str, **changes: Any) -> None:
        """Change a key's account in place (revoke, drop credit...)."""
        with self._lock:
            self._keys = [replace(k, **changes) if k.secret == secret else k
                          for k in self._keys]

    def remove_key(self, secret: str) -> None:
        with self._lock:
            self._keys = [k for k in self._keys if k.secret != secret]

    def add_model(self, model: EmulatedModel) -> None:
        with self._lock:
            self._models[model.id] = model

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(_FaultSlot(fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def add_rate_limit(self, limit: RateLimit) -> None:
        with self._lock:
            self._rates.append(_RateSlot(limit))

    def clear_rate_limits(self) -> None:
        with self._lock:
            self._rates.clear()

    def set_latency(self, seconds: float, path: str | None = None) -> None:
        """Delay every answer, or those whose path starts with ``path``."""
        with self._lock:
            if path is None:
                self.latency = seconds
            else:
                self._path_latency[path] = seconds

    # --- observation ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    def clear(self) -> None:
        """Forget recorded requests and the in-flight maximum."""
        with self._lock:
            self._records.clear()
            self._max_in_flight = self._in_flight

    # --- State protocol (read by the dialect handlers) ------------------------

    def find_key(self, secret: str, dialect: str) -> EmulatedKey | None:
        with self._lock:
            keys = list(self._keys)
        return next((k for k in keys if k.secret == secret
                     and dialect in k.dialects), None)

    def has_keys_for(self, dialect: str) -> bool:
        with self._lock:
            return any(dialect in k.dialects for k in self._keys)

    def model(self, model_id: str) -> EmulatedModel | None:
        with self._lock:
            return self._models.get(model_id)

    def catalogue(self) -> list[EmulatedModel]:
        with self._lock:
            return list(self._models.values())

    def organizations(self) -> set[str]:
        with self._lock:
            return {k.organization for k in self._keys}

    def scope_for(self, operation: str) -> str:
        return self._scopes[operation]

    def ratelimit_headers(self, path: str) -> dict[str, str]:
        with self._lock:
            slot = next((s for s in self._rates if path.startswith(s.limit.path)),
                        None)
            limit = slot.limit.limit if slot else 500
            remaining = max(0, limit - slot.count) if slot else limit - 1
            reset = slot.reset_in(time.monotonic()) if slot else 0.12
        return {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": bodies.go_duration(reset),
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "29980",
            "x-ratelimit-reset-tokens": "40ms",
        }

    # --- request handling (called from server threads) ------------------------

    @contextmanager
    def counting(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _delay(self, path: str) -> float:
        with self._lock:
            best = max((p for p in self._path_latency if path.startswith(p)),
                       key=len, default=None)
            return self.latency if best is None else self._path_latency[best]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            slot = next((s for s in self._faults if s.take(method, path)), None)
        return slot.fault if slot else None

    def _over_limit(self, req: Incoming) -> float | None:
        """None, or the retry-after seconds when ``req`` is over a limit."""
        key = api_key_of(req.headers)
        now = time.monotonic()
        with self._lock:
            for slot in self._rates:
                if slot.matches(req.path, key) and slot.hit(now):
                    return slot.retry_after(now)
        return None

    def _record(self, req: Incoming, dialect: str, status: int | None,
                fault: str | None) -> None:
        headers = {h: req.headers[h] for h in RECORDED_HEADERS if h in req.headers}
        body = None if req.body is bodies.BAD_JSON else req.body
        record = RecordedRequest(req.method, req.path, dict(req.query), dialect,
                                 status, fault, time.time(), headers, body)
        with self._lock:
            self._records.append(record)

    def answer(self, req: Incoming) -> Reply | Fault:
        """What to do with ``req``: a reply, or a connection-level fault."""
        route = route_of(req.path)
        dialect = route.dialect if route else "unknown"
        self.stopping.wait(self._delay(req.path))
        fault = self._take_fault(req.method, req.path)
        if fault is not None and fault.kind in ("hang", "drop", "reset"):
            self._record(req, dialect, None, fault.kind)
            return fault
        reply = self._reply(req, route, fault)
        self._record(req, dialect, reply.status, fault.kind if fault else None)
        return reply

    def _reply(self, req: Incoming, route: Route | None,
               fault: Fault | None) -> Reply:
        if fault is not None:
            return _fault_reply(fault, route)
        if route is None:
            return Reply(404, {"detail": "Not Found"})
        retry_after = self._over_limit(req)
        if retry_after is not None:
            return _rate_reply(req, route, retry_after)
        if route.dialect == "azure":
            return azure_dialect.handle(self, req, route.sub)
        return openai_dialect.handle(self, req, route.flavour, route.sub)


def _fault_reply(fault: Fault, route: Route | None) -> Reply:
    headers = dict(fault.headers)
    if fault.kind == "html":
        return Reply(fault.status, fault.body or bodies.html_page(fault.status),
                     headers, "text/html")
    if fault.body is not None:
        return Reply(fault.status, fault.body, headers)
    if route is not None and route.dialect == "azure":
        reply = azure_dialect.error_for_status(fault.status)
    else:
        flavour = route.flavour if route else "openai"
        reply = openai_dialect.error_for_status(fault.status, flavour)
    return Reply(reply.status, reply.body, {**reply.headers, **headers})


def _rate_reply(req: Incoming, route: Route, seconds: float) -> Reply:
    headers = {
        "retry-after": str(max(1, round(seconds))),
        "retry-after-ms": str(round(seconds * 1000)),
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": bodies.go_duration(seconds),
    }
    if route.dialect == "azure":
        return azure_dialect.rate_limited(req, seconds, headers)
    return openai_dialect.rate_limited(req, route.flavour, seconds, headers)
