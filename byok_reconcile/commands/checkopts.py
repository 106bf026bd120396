"""The provider-check options that check, render and apply share.

``check_options`` adds them to a click command; ``build_options`` turns the
parsed values (plus ``BYOK_ALLOW_HOSTS`` and ``BYOK_RESOLVE``) into a
:class:`~byok_reconcile.pipeline.CheckOptions`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import click

from byok_reconcile.errors import UsageError
from byok_reconcile.pipeline import CheckOptions

F = TypeVar("F", bound=Callable[..., Any])

ENV_ALLOW = "BYOK_ALLOW_HOSTS"
ENV_RESOLVE = "BYOK_RESOLVE"


def check_options(func: F) -> F:
    """Add ``--deep --timeout --concurrency --per-host --retries
    --unreachable --allow-host --resolve`` to a click command."""
    options = [
        click.option("--deep", is_flag=True,
                     help="Send one real, minimal request per model (spends tokens)."),
        click.option("--timeout", type=click.FloatRange(min=0.05), default=10.0,
                     show_default=True, help="Seconds to wait for each request."),
        click.option("--concurrency", type=click.IntRange(min=1), default=32,
                     show_default=True, help="Requests in flight at once."),
        click.option("--per-host", type=click.IntRange(min=1), default=32,
                     show_default=True, help="Requests in flight per provider host."),
        click.option("--retries", type=click.IntRange(min=0), default=3,
                     show_default=True,
                     help="Retries after a rate limit, 5xx, timeout or reset."),
        click.option("--unreachable", type=click.Choice(["fail", "warn"]),
                     default="fail", show_default=True,
                     help="Whether an unreachable provider fails (exit 3)."),
        click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
                     help=f"Allow keys to go to HOST, *.SUFFIX or HOST:PORT "
                          f"(repeatable; also {ENV_ALLOW})."),
        click.option("--resolve", "resolve", multiple=True, metavar="HOST=URL",
                     help=f"Send requests for HOST to a loopback URL instead "
                          f"(repeatable; also {ENV_RESOLVE})."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_options(
    *,
    deep: bool = False,
    timeout: float = 10.0,
    concurrency: int = 32,
    per_host: int = 32,
    retries: int = 3,
    unreachable: str = "fail",
    allow_hosts: Iterable[str] = (),
    resolve: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> CheckOptions:
    """CheckOptions from parsed options and the environment.

    Raises :class:`UsageError` (exit 2) for a malformed host or resolve
    entry, or a resolve target that is not loopback.
    """
    from byok_reconcile.providers.hosts import parse_patterns

    env = os.environ if env is None else env
    env_hosts = _split(env.get(ENV_ALLOW, ""))
    parse_patterns(allow_hosts, "--allow-host")
    parse_patterns(env_hosts, ENV_ALLOW)
    hosts = (*allow_hosts, *env_hosts)
    # The command line wins over the environment for the same host.
    mapping = {
        **_resolve_map(_split(env.get(ENV_RESOLVE, "")), ENV_RESOLVE),
        **_resolve_map(resolve, "--resolve"),
    }
    return CheckOptions(
        deep=deep,
        timeout=timeout,
        concurrency=concurrency,
        per_host=per_host,
        retries=retries,
        unreachable="warn" if unreachable == "warn" else "fail",
        allow_hosts=tuple(h.strip() for h in hosts),
        resolve=mapping,
    )


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _resolve_map(entries: Iterable[str], source: str) -> dict[str, str]:
    """Checked ``HOST=URL`` entries; ``source`` names them in errors."""
    from byok_reconcile.providers.hosts import parse_resolve

    pairs = dict(_resolve_entry(e, source) for e in entries)
    return parse_resolve(pairs, source)


def _resolve_entry(entry: str, source: str) -> tuple[str, str]:
    host, sep, url = entry.partition("=")
    if not sep or not host.strip() or not url.strip():
        raise UsageError(
            f"bad {source} entry {entry!r}",
            hint="write HOST=URL, for example api.openai.com=http://127.0.0.1:8080",
        )
    return host.strip(), url.strip()
