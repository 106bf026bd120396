"""What a user sees while provider checks run.

Text on a terminal: one self-overwriting progress line on stderr, then the
report. Text into a pipe or a CI log: each key's result lines on stdout, once,
as the key finishes; the report then adds only what was not shown (problems,
summary). JSON, github and markdown keep stdout for the final document, so
they get the progress line on a terminal's stderr and nothing otherwise.
"""

from __future__ import annotations

import sys
from typing import TextIO

from byok_reconcile.output import text
from byok_reconcile.output.colour import wants_colour
from byok_reconcile.output.common import Options
from byok_reconcile.results import KeyResult

_CLEAR = "\r\x1b[K"


class CheckProgress:
    """Receives each :class:`KeyResult` as its check finishes (``on_result``).

    ``streams_keys`` tells the caller to render the final text report with
    ``keys_streamed``, so no key is printed twice.
    """

    def __init__(
        self,
        fmt: str,
        *,
        quiet: bool = False,
        verbose: int = 0,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.streams_keys = fmt == "text" and not _isatty(self.out)
        colour = self.streams_keys and wants_colour(self.out)
        self.opts = Options(quiet=quiet, verbose=verbose, colour=colour)
        self.bar = not self.streams_keys and not quiet and _isatty(self.err)
        self.count = 0

    def on_result(self, result: KeyResult) -> None:
        """Show one finished key: its lines, or the progress line."""
        self.count += 1
        if self.streams_keys:
            lines = text.key_lines(result, self.opts)
            if lines:
                self.out.write("\n".join(lines) + "\n")
                self.out.flush()
        elif self.bar:
            done = f"{self.count} done, last {result.key}: {result.verdict}"
            self.err.write(f"{_CLEAR}checking keys: {done}")
            self.err.flush()

    def done(self) -> None:
        """Clear the progress line before the report prints."""
        if self.bar and self.count:
            self.err.write(_CLEAR)
            self.err.flush()


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
