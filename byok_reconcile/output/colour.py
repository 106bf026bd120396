"""Colour for people, never for pipes: honours NO_COLOR and FORCE_COLOR."""

from __future__ import annotations

import os
from typing import TextIO

_CODES = {"red": "31", "yellow": "33", "green": "32", "cyan": "36", "bold": "1"}


def wants_colour(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal and the user did not opt out.

    NO_COLOR (https://no-color.org) wins over everything; FORCE_COLOR turns
    colour on for pipes, as CI log viewers that render ANSI codes ask for.
    """
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, enabled: bool) -> str:
    """``text`` wrapped in the ANSI code for ``colour`` when ``enabled``."""
    if not enabled or colour not in _CODES:
        return text
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"
