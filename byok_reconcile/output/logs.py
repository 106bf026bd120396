"""The ``byok`` logger: levels from ``-v``/``-q``, stderr, and a redaction net.

Modules log under ``byok.<part>`` (``byok.sops``, ``byok.provider``,
``byok.store``). ``-v`` shows INFO, ``-vv`` DEBUG, where each external call is
one line made by :func:`log_call`. Secrets never reach a log call; the filter
here is a second net that masks anything shaped like an API key or a bearer
token, should one slip through a library's message.
"""

from __future__ import annotations

import logging
import re
import sys

LOGGER_NAME = "byok"

_SECRET_SHAPES = re.compile(
    r"(?P<sk>\bsk-[A-Za-z0-9_\-]{8,})"
    r"|(?P<bearer>(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,})"
    r"|(?P<hex>\b[0-9a-fA-F]{32}\b)"
    r"|(?P<header>(?i:api-key|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"(?i:bearer\s+)?[^\s\"',}]+"
)


def redact(text: str) -> str:
    """``text`` with API-key-shaped tokens replaced by ``[redacted]``."""
    return _SECRET_SHAPES.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    if match.group("header"):
        return match.group("header") + "[redacted]"
    return "[redacted]"


class RedactingFilter(logging.Filter):
    """Formats the message once, then masks secret-shaped tokens in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def level_for(verbose: int, quiet: bool) -> int:
    """WARNING by default, INFO for -v, DEBUG for -vv, ERROR for -q."""
    if quiet:
        return logging.ERROR
    if verbose >= 2:
        return logging.DEBUG
    return logging.INFO if verbose == 1 else logging.WARNING


def configure(verbose: int = 0, quiet: bool = False) -> logging.Logger:
    """Set up the ``byok`` logger once; later calls only change the level."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level_for(verbose, quiet))
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.addFilter(RedactingFilter())
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def log_call(system: str, action: str, **fields: object) -> None:
    """One DEBUG line for an external call: ``sops decrypt file=a.yaml rc=0``.

    ``system`` names the child logger (``byok.sops``); pass hosts, paths,
    statuses and durations, never a secret or a request body.
    """
    logger = logging.getLogger(f"{LOGGER_NAME}.{system}")
    if not logger.isEnabledFor(logging.DEBUG):
        return
    pairs = " ".join(f"{k}={_field(v)}" for k, v in fields.items() if v is not None)
    logger.debug("%s %s", action, pairs)


def _field(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return repr(text) if not text or any(c.isspace() for c in text) else text
