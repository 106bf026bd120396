"""Where a decrypted key may be sent: the allow-list and ``--resolve``.

A key goes only to a host allowed for its provider (DESIGN.md, "Where a key
may be sent"). Every other host must be allowed from outside the Key
documents: ``--allow-host``, ``BYOK_ALLOW_HOSTS`` or a Policy document. Plain
``http://`` is accepted only for loopback hosts, and loopback hosts only when
allowed explicitly.

``--resolve HOST=URL`` works like curl's: a request for HOST goes to the
loopback URL instead, and a path in URL goes in front of the request's
path. It comes from the command line or CI, never from a Key document, and
may only point at loopback, so it cannot carry a key off the machine. The
allow-list is always checked against the original host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from byok_reconcile.errors import UsageError

PROVIDER_HOSTS: Mapping[str, tuple[str, ...]] = {
    "openai": ("api.openai.com",),
    "azure_openai": (
        "*.openai.azure.com",
        "*.cognitiveservices.azure.com",
        "*.services.ai.azure.com",
    ),
    "openai_compatible": (),
}
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port of a URL; ``host`` is lower case, IPv6 bare."""

    scheme: str
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class HostError(ValueError):
    """A URL or host pattern is malformed; the message is safe to show."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_origin(url: str) -> Origin:
    """Split ``url`` into its origin, refusing anything ambiguous."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise HostError(f"{url!r} is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise HostError(f"{url!r} must start with https://")
    if parts.username is not None or parts.password is not None:
        raise HostError(f"{url!r} must not hold a user name or password")
    host = _normal_host(parts.hostname or "")
    return Origin(scheme, host, port or (443 if scheme == "https" else 80))


def _normal_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if is_loopback(host) or _is_ip(host) or _HOSTNAME.match(host):
        return host
    raise HostError(f"{host!r} is not a valid host name")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPattern:
    """``host``, ``*.suffix`` or ``host:port``; a port pins one port."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        text = text.strip().lower()
        host, port = _split_port(text)
        if host.startswith("*."):
            _normal_host(host[2:])
        else:
            host = _normal_host(host)
        return cls(host, port)

    def matches(self, origin: Origin) -> bool:
        if self.port is not None and self.port != origin.port:
            return False
        if self.host.startswith("*."):
            return origin.host.endswith(self.host[1:])
        return origin.host == self.host


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not port:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise HostError(f"{text!r} has an invalid port")
    return host, int(port)


def parse_patterns(
    items: Iterable[str], source: str = "allowed host"
) -> tuple[HostPattern, ...]:
    """Parse allow-list entries, raising :class:`UsageError` on a bad one.

    ``source`` names where the entries came from (``--allow-host``,
    ``BYOK_ALLOW_HOSTS``), so the user knows what to fix.
    """
    try:
        return tuple(HostPattern.parse(item) for item in items if item.strip())
    except HostError as exc:
        raise UsageError(
            f"bad {source} entry: {exc}",
            hint="use HOST, *.SUFFIX or HOST:PORT",
        ) from exc


def parse_resolve(
    items: Mapping[str, str], source: str = "--resolve"
) -> dict[str, str]:
    """Check resolve entries: a host pattern and a loopback URL.

    Only loopback targets are accepted: a resolve entry may redirect a key
    to this machine (an emulator, a tunnel), never anywhere else. ``source``
    names where the entries came from (``--resolve``, ``BYOK_RESOLVE``).
    """
    checked: dict[str, str] = {}
    for pattern, url in items.items():
        try:
            HostPattern.parse(pattern)
            target = parse_origin(url)
            prefix = path_prefix(url)
        except HostError as exc:
            raise UsageError(f"bad {source} {pattern}={url}: {exc}") from exc
        if not target.loopback:
            raise UsageError(
                f"{source} {pattern} points at {target.host}, not loopback",
                hint=f"{source} only sends requests to 127.0.0.1, ::1 or "
                "localhost",
            )
        checked[pattern.strip().lower()] = f"{target}{prefix}"
    return checked


def path_prefix(url: str) -> str:
    """The path of a resolve target without its trailing ``/`` ("" if none).

    A query or fragment has no place in front of another request's path.
    """
    parts = urlsplit(url.strip())
    if parts.query or parts.fragment:
        raise HostError(f"{url!r} must not hold a query or fragment")
    # Quoted, so the prefix is ASCII like the request path it joins.
    return quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=-._~")


@dataclass(frozen=True)
class HostPolicy:
    """The allow-list and resolve map for one run."""

    allowed: tuple[HostPattern, ...] = ()
    resolve: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls, allowed: Iterable[str], resolve: Mapping[str, str]
    ) -> HostPolicy:
        return cls(parse_patterns(allowed), parse_resolve(resolve))

    def refusal(self, provider: str, url: str) -> str | None:
        """Why a key of ``provider`` may not go to ``url``; None if it may."""
        try:
            origin = parse_origin(url)
        except HostError as exc:
            return str(exc)
        if origin.scheme == "http" and not origin.loopback:
            return f"{url} uses plain http://; only loopback hosts may"
        explicit = any(p.matches(origin) for p in self.allowed)
        if explicit:
            return None
        if not origin.loopback and self._provider_allows(provider, origin):
            return None
        return (
            f"host {origin.host} is not allowed for {provider} keys; "
            "allow it with --allow-host, BYOK_ALLOW_HOSTS or a Policy document"
        )

    @staticmethod
    def _provider_allows(provider: str, origin: Origin) -> bool:
        patterns = PROVIDER_HOSTS.get(provider, ())
        return origin.scheme == "https" and any(
            HostPattern.parse(p).matches(origin) for p in patterns
        )

    def target(self, origin: Origin) -> Origin:
        """Where a request for ``origin`` really goes (after ``--resolve``)."""
        return self.route(origin)[0]

    def route(self, origin: Origin) -> tuple[Origin, str]:
        """The origin a request for ``origin`` goes to, and the path prefix
        to put in front of its path ("" without ``--resolve`` or path)."""
        for pattern, url in self.resolve.items():
            if HostPattern.parse(pattern).matches(origin):
                return parse_origin(url), path_prefix(url)
        return origin, ""
