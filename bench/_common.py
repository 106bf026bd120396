"""Shared helpers of the check and store benchmarks.

A child process is timed on its own: it is started with ``Popen`` and reaped
with ``os.wait4``, which returns that one process's CPU time and peak
resident memory (``ru_maxrss``), unlike ``RUSAGE_CHILDREN``, which mixes in
every other child the script ran (sops, initdb, the PostgreSQL server).
Children get a clean environment: no ``OPENAI_*``, ``AZURE_OPENAI_*``,
``SOPS_*``, ``BYOK_*`` or proxy variable of the caller's, so nothing a
developer has set can send a request beyond loopback or pick another key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # For tests.canary: the benchmarks use the test suite's fake keys so that
    # a leak into any output is caught the same way.
    sys.path.insert(0, str(REPO))

from tests import canary  # noqa: E402

_DROPPED_PREFIXES = ("OPENAI_", "AZURE_OPENAI_", "SOPS_", "BYOK_")
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass(frozen=True)
class Run:
    """One finished child process. ``stdout`` and ``stderr`` are text."""

    argv: tuple[str, ...]
    code: int
    wall: float
    cpu: float
    maxrss_mb: float
    stdout: str
    stderr: str


def precompile() -> None:
    """Write the byte code of the byok package, as a regular install does.

    An editable install with PYTHONDONTWRITEBYTECODE set (as on these
    machines) would otherwise recompile every module on every run, which a
    benchmark of start-up would wrongly charge to byok; pip compiles the
    packages it installs (check-jsonschema among them).
    """
    import compileall

    import byok_reconcile

    package = Path(byok_reconcile.__file__).parent
    compileall.compile_dir(package, quiet=1)
    print(f"byte code compiled for {package} (as pip does on install)")


def script(name: str) -> str | None:
    """The console script next to this interpreter, else on PATH.

    The interpreter's own bin folder comes first so that a version manager's
    shim (pyenv runs bash and more per call) is not timed for byok.
    """
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def byok_argv(*args: str) -> list[str]:
    """``byok ARGS`` as the installed console script (else ``-m``)."""
    exe = script("byok")
    head = [exe] if exe else [sys.executable, "-m", "byok_reconcile"]
    return [*head, *args]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without provider, sops, byok or proxy
    settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROPPED_PREFIXES) and k.lower() not in _PROXY_VARS
    }
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: bytes | None = None,
) -> Run:
    """Run ``argv`` to completion and measure that process alone.

    Output is read through pipes into memory, never a temporary file: a
    ``sops --decrypt`` child prints plaintext.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    readers = [_Reader(proc.stdout), _Reader(proc.stderr)]
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = (r.result() for r in readers)
    return Run(
        argv=tuple(argv),
        code=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,  # Linux reports KiB
        stdout=out,
        stderr=err,
    )


class _Reader:
    """Drains one pipe in a thread, so a chatty child never blocks on it."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        self._chunks: list[bytes] = []
        self._pipe = pipe
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        pipe = self._pipe
        if pipe is None:
            return
        with pipe:
            self._chunks.extend(iter(lambda: pipe.read(65536), b""))

    def result(self) -> str:
        self._thread.join()
        return b"".join(self._chunks).decode("utf-8", "replace")


def best_of(count: int, once: Callable[[], Run]) -> tuple[Run, list[Run]]:
    """The fastest of ``count`` runs of ``once``, and all of them."""
    runs = [once() for _ in range(max(count, 1))]
    return min(runs, key=lambda r: r.wall), runs


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def leaks(run_: Run) -> list[str]:
    """Canary secrets found in a run's stdout or stderr (redacted)."""
    return canary.find_leaks(run_.stdout + "\n" + run_.stderr)


def leak_line(runs: Sequence[Run]) -> tuple[bool, str]:
    """Whether no run leaked a canary, and a line saying so."""
    found = sorted({hit for r in runs for hit in leaks(r)})
    if found:
        return False, f"  secret leak check: FAIL (canaries in output: {found})"
    return True, f"  secret leak check: PASS ({len(runs)} outputs scanned)"


def show_run(label: str, best: Run, runs: Sequence[Run]) -> None:
    times = ", ".join(f"{r.wall:.3f}" for r in runs)
    print(
        f"  {label:<34} wall {best.wall:7.3f}s  cpu {best.cpu:7.3f}s  "
        f"rss {best.maxrss_mb:6.1f}MB  exit {best.code}"
    )
    print(f"  {'':<34} runs {times}")


def tail(text: str, lines: int = 6) -> str:
    """The last lines of a child's output, for a failure report."""
    return "\n".join("    | " + line for line in text.strip().splitlines()[-lines:])
