"""Test guards: no real network, no inherited credentials, no leaked secret.

- Every socket that is not loopback (or a Unix socket) is refused, and the
  test that tried fails even if the code under test swallowed the error.
- ``OPENAI_*``, ``AZURE_OPENAI_*``, ``SOPS_*`` and ``BYOK_*`` variables are
  cleared, and sops finds no age key in the user's home.
- Fake secrets come from ``tests.canary``; a canary found in captured output,
  logs or files written under the test's tmp_path fails the test.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import canary

pytest_plugins = [
    "tests.fixtures.sops",
    "tests.fixtures.emulator",
    "tests.fixtures.store",
]

CLEARED_PREFIXES = ("OPENAI_", "AZURE_OPENAI_", "SOPS_", "BYOK_", "GITHUB_")


class NetworkBlockedError(RuntimeError):
    pass


_BLOCKED: list[str] = []


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX path
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        _BLOCKED.append(repr(address))
        raise NetworkBlockedError(f"test tried to reach {address!r}: not loopback")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        _BLOCKED.append(repr(address))
        raise NetworkBlockedError(f"test tried to reach {address!r}: not loopback")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_loopback((name, 0)):
        _BLOCKED.append(f"getaddrinfo({name!r})")
        raise NetworkBlockedError(f"test tried to resolve {name!r}: not loopback")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    start = len(_BLOCKED)
    yield
    tried = _BLOCKED[start:]
    assert not tried, f"the test tried to reach a non-loopback address: {tried}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: Any) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(CLEARED_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GNUPGHOME", str(home / ".gnupg"))
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture(autouse=True)
def _no_leak_in_files(tmp_path: Path) -> Iterator[None]:
    yield
    leaked = canary.scan_tree(tmp_path)
    assert not leaked, f"secret canary written in plaintext to: {leaked}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    for name, content in report.sections:
        leaks = canary.find_leaks(content)
        if leaks and report.passed:
            report.outcome = "failed"
            report.longrepr = f"secret canary leaked into {name}: {leaks}"
