"""The one subprocess wrapper: captured streams, a timeout, clear failures.

Every external program byok runs (today: ``sops``) goes through :func:`run`.
It captures stdout and stderr as bytes, kills the whole process group on
timeout, and turns "binary not found" into an error with a hint. It logs one
DEBUG line per call: the argv, the exit code and the duration. Callers never
put a secret in ``argv`` (``ps`` would show it too); secrets go through
``input`` or the environment, and neither is logged.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from byok_reconcile.errors import UnavailableError

log = logging.getLogger("byok")


@dataclass(frozen=True)
class Completed:
    """A finished process. ``stdout`` may hold a secret: never log it."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def __repr__(self) -> str:
        # The streams stay out of the repr so a stray log line cannot leak them.
        return f"Completed(argv={self.argv!r}, returncode={self.returncode})"


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    hint: str | None = None,
    not_found: type[UnavailableError] = UnavailableError,
    timed_out: type[UnavailableError] = UnavailableError,
) -> Completed:
    """Run ``argv`` and return its result, whatever its exit code.

    ``env`` None inherits the caller's environment. Raises ``not_found``
    (with ``hint``) when the program cannot be started, and ``timed_out``
    when it runs longer than ``timeout`` seconds.
    """
    args = tuple(str(a) for a in argv)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # so a timeout can kill its children too
        )
    except FileNotFoundError as exc:
        raise not_found(f"{args[0]} was not found on PATH", hint=hint) from exc
    except OSError as exc:
        msg = f"{args[0]} could not be started: {exc.strerror}"
        raise not_found(msg, hint=hint) from exc
    out, err = _communicate(proc, input, timeout, args, timed_out)
    done = Completed(args, proc.returncode, out, err, time.monotonic() - started)
    log.debug(
        "ran %s: exit %d in %.3fs", shlex.join(args), done.returncode, done.duration
    )
    return done


def _communicate(
    proc: subprocess.Popen[bytes],
    input: bytes | None,
    timeout: float,
    args: tuple[str, ...],
    timed_out: type[UnavailableError],
) -> tuple[bytes, bytes]:
    try:
        return proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        exc.output = exc.stderr = None  # partial output may hold a secret
        _kill_group(proc)
        proc.communicate()
        log.debug("killed %s after %.1fs", shlex.join(args), timeout)
        msg = f"{os.path.basename(args[0])} did not finish within {timeout:g}s"
        raise timed_out(msg) from exc


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
