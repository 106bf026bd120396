"""Remove a key, or any piece of it, from text a provider sent back.

A provider or gateway may echo the caller's key in a message or a header:
whole, truncated (``sk-abc...****``), upper-cased, URL-encoded, or in its
base64 or hex form. An exact replace misses all but the first, so the text
is compared with every run of :data:`WINDOW` characters of the key and of
its encodings, case-insensitively and after URL-decoding, and each token
that shares such a run is removed whole. Generic key-shaped tokens (other
keys) are removed as well.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
WINDOW = 8  # a shared run this long is a piece of the key, not chance
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9+/=_\-*%~]")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DECODE_ROUNDS = 3  # covers a key encoded twice (%252B) and one more
_SK = re.compile(r"sk-[\w*.\-…+/=%~]{6,}")
_RUN = re.compile(r"(?<![\w+/=\-*%~.])[\w+/=\-*%~.]{24,}")
_ID_SHAPES = re.compile(
    r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"  # UUID: Azure request ids
    r"|(req|chatcmpl|resp)[_-][0-9a-z]+",  # OpenAI ids
    re.IGNORECASE,
)
_LONG_PIECE = 16  # a path or dotted name has short pieces, a key a long one

# A unit is one character of decoded text and the span of the raw text
# it came from, so a match found after decoding removes the raw characters.
Unit = tuple[str, int, int]


def scrub_text(text: str, secret: str = "") -> str:
    """``text`` without any piece of ``secret`` and without key-like tokens."""
    if secret:
        text = _remove_secret(text, secret)
    text = _SK.sub(REDACTED, text)
    return _RUN.sub(_generic, text)


def key_grams(secret: str) -> frozenset[str]:
    """The lower-cased runs of :data:`WINDOW` characters of the key and of
    its base64 (every alignment, both alphabets) and hex forms."""
    width = min(WINDOW, len(secret))
    grams: set[str] = set()
    for form in _forms(secret):
        lowered = form.lower()
        grams.update(lowered[i : i + width] for i in range(len(lowered) - width + 1))
    return frozenset(grams)


def _forms(secret: str) -> Iterable[str]:
    raw = secret.encode("utf-8", "surrogatepass")
    yield secret
    yield raw.hex()
    # Inside a longer value ("user:KEY" in Basic auth) the key's base64
    # depends on its offset modulo 3; the edges mix in other bytes.
    for pad in (b"", b"a", b"aa"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(pad + raw).decode()
            yield text[4 if pad else 0 : -4]


def _remove_secret(text: str, secret: str) -> str:
    grams = key_grams(secret)
    width = min(WINDOW, len(secret))
    marked = [False] * len(text)
    for units in _decodings(text):
        _mark(units, grams, width, marked)
    if not any(marked):
        return text
    _widen(text, marked)
    return _replace(text, marked)


def _decodings(text: str) -> Iterable[list[Unit]]:
    units = [(ch, i, i + 1) for i, ch in enumerate(text)]
    yield units
    for _ in range(_DECODE_ROUNDS):
        decoded = _percent_decode(units)
        if len(decoded) == len(units):
            return
        units = decoded
        yield units


def _percent_decode(units: list[Unit]) -> list[Unit]:
    out: list[Unit] = []
    i = 0
    while i < len(units):
        chunk = "".join(u[0] for u in units[i : i + 3])
        found = _PERCENT.fullmatch(chunk)
        if found:
            out.append((chr(int(found.group(1), 16)), units[i][1], units[i + 2][2]))
            i += 3
        else:
            out.append(units[i])
            i += 1
    return out


def _mark(units: list[Unit], grams: frozenset[str], width: int,
          marked: list[bool]) -> None:
    lowered = "".join(u[0] for u in units).lower()
    for i in range(len(lowered) - width + 1):
        if lowered[i : i + width] in grams:
            for pos in range(units[i][1], units[i + width - 1][2]):
                marked[pos] = True


def _widen(text: str, marked: list[bool]) -> None:
    # A shared run is part of a token; the rest of it (a few leading
    # characters, a tail under the window) goes with it.
    for i in range(1, len(text)):
        if marked[i - 1] and not marked[i] and _TOKEN_CHAR.match(text[i]):
            marked[i] = True
    for i in range(len(text) - 2, -1, -1):
        if marked[i + 1] and not marked[i] and _TOKEN_CHAR.match(text[i]):
            marked[i] = True


def _replace(text: str, marked: list[bool]) -> str:
    out: list[str] = []
    for i, ch in enumerate(text):
        if not marked[i]:
            out.append(ch)
        elif i == 0 or not marked[i - 1]:
            out.append(REDACTED)
    return "".join(out)


def _generic(found: re.Match[str]) -> str:
    token = found.group(0)
    if _ID_SHAPES.fullmatch(token.rstrip(".")):
        return token
    pieces = re.split(r"[/.]", token)
    if max(len(p) for p in pieces) < _LONG_PIECE:
        return token  # a path or a dotted name, not a key
    return REDACTED
