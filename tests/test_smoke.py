from __future__ import annotations

import socket

import pytest

from tests.conftest import NetworkBlockedError


def test_non_loopback_is_refused() -> None:
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    # Clear the record so this deliberate attempt does not fail the test.
    from tests import conftest

    conftest._BLOCKED.clear()


def test_cli_help_runs() -> None:
    from click.testing import CliRunner

    from byok_reconcile.cli import cli

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "validate" in result.output
