"""Applies in other processes: two at once, and one killed mid-transaction."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from typing import Any

from byok_reconcile import reconcile
from byok_reconcile.store import open_target
from tests import canary

# The child builds its config by hand and reads its secret from the
# environment, so no plaintext canary ever touches the disk.
CHILD = """
import os, sys
from byok_reconcile import reconcile
from byok_reconcile.secret import Secret
from byok_reconcile.store import open_target
from byok_reconcile.store.crypto import load_key
from tests.fixtures.store import make_config
url, source, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
secrets = {n: Secret(os.environ["CHILD_SECRET"] + n) for n in names}
desired = reconcile.desired_state(make_config(names), source, secrets)
store = open_target(url)
out = reconcile.apply(store, desired, load_key(None), reconcile.ApplyOptions())
print("written" if out.written else "nothing", flush=True)
"""


STORE_KEY = base64.b64encode(os.urandom(32)).decode()


def _spawn(url: str, source: str, names: list[str], sleep: float = 0) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYOK_")}
    env["BYOK_STORE_KEY"] = STORE_KEY
    env["CHILD_SECRET"] = canary.make_secret()
    if sleep:
        env[reconcile.SLEEP_HOOK] = str(sleep)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, source, ",".join(names)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=os.getcwd(),
    )


def _wait_in_transaction(proc: Any) -> None:
    """Block until the child logs that it sleeps inside the transaction."""
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert "sleeping" in line, line


def _state(url: str) -> Any:
    store = open_target(url)
    try:
        return store.read()
    finally:
        store.close()


def test_two_applies_at_once_both_land(store_url: str) -> None:
    open_target(store_url).close()  # create the schema first
    first = _spawn(store_url, "src-a", ["a1", "a2"], sleep=1.5)
    _wait_in_transaction(first)
    second = _spawn(store_url, "src-b", ["b1", "b2"])
    time.sleep(0.5)
    # The second waits on the lock; the first holds it, unfinished.
    assert second.poll() is None

    outs = [p.communicate(timeout=60) for p in (first, second)]
    for proc, (out, err) in zip((first, second), outs, strict=True):
        canary.assert_no_leak(out + err, "child output")
        assert proc.returncode == 0, err.decode()[-2000:]
        assert out.strip() == b"written"
    state = _state(store_url)
    assert sorted(state.keys) == ["a1", "a2", "b1", "b2"]
    assert set(state.last_applies) == {"src-a", "src-b"}
    # The second planned after the first committed: no interleaving.
    assert state.last_applies["src-a"].id < state.last_applies["src-b"].id


def test_killed_apply_leaves_the_store_as_before(store_url: str) -> None:
    open_target(store_url).close()
    proc = _spawn(store_url, "src-a", ["a1", "a2", "a3"], sleep=60)
    _wait_in_transaction(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    state = _state(store_url)
    assert state.keys == {} and state.features == {} and state.last_applies == {}
    # And the store is usable afterwards.
    again = _spawn(store_url, "src-a", ["a1"])
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err.decode()[-2000:]
    assert sorted(_state(store_url).keys) == ["a1"]
