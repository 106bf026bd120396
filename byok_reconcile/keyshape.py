"""Does a piece of text look like an API key? The one guard of every message.

A message may quote what the user wrote (a name, a host, an unknown
property) only after :func:`shown` has let it through: a key pasted into the
wrong field must never reach an error, a log or a plan. The tests are cheap
(a length check, then two compiled patterns), so validate can run them on
every value of every document.
"""

from __future__ import annotations

import itertools
import json
import re

HIDDEN = "(a value that looks like an API key)"

# Known key formats: OpenAI (sk-..., whose body holds base64 "OpenAI"),
# 32+ hex digits (Azure, many gateways), and other providers' prefixes.
# A prefix counts at the start of a word only ("risk-assessment" is no key).
_KNOWN = re.compile(
    r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{12}"
    r"|(?<![A-Za-z0-9])(?:gsk_|hf_|AIza|xai-|pplx-)[A-Za-z0-9_-]{20}"
    r"|T3BlbkFJ"
)
# A hex word of 32 or more digits (Azure keys, many gateways), except the
# lengths of SHA-1 and SHA-256 digests: a git commit in a label is no key.
_HEX_WORD = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
_DIGEST_LENGTHS = (40, 64)
# A long run without separators, judged by how random it looks: names join
# their words with '-', '_', '/' or '.', keys (base64 at most) do not.
_RUN = re.compile(r"[A-Za-z0-9+=]{20,}")
# Identifiers that are long and random but not secret: OpenAI organization
# and project ids.
_ID_PREFIXES = ("org-", "proj_")
# Nothing looks like a key without one of these or a run of 20 token
# characters. Substring tests on the text, and on its bytes mapped to "a"
# (token) or " " (anything else), rule out almost every value faster than
# any regular expression (validate runs this on every value).
_PREFIXES = ("sk-", "T3BlbkFJ", "gsk_", "hf_", "AIza", "xai-", "pplx-")
_TOKEN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=")
_TOKEN_MAP = bytes(0x61 if i in _TOKEN else 0x20 for i in range(256))
_LONG_RUN = b"a" * 20
# A word of a message, as :func:`redact` sees it: quotes and brackets apart.
_WORD = re.compile(r"[^\s'\"(),\[\]{}]+")
_MIN_LENGTH = 8  # T3BlbkFJ, the shortest thing _KNOWN finds
# Random keys change character class (lower, upper, digit) between many
# neighbours; words and model names rarely do.
_SWITCH_RATIO = 0.3
# A run this long mixing letters and digits is a key however it reads.
_ALWAYS = 32


def looks_like_key(text: object) -> bool:
    """Whether ``text`` holds something shaped like an API key."""
    if not isinstance(text, str) or len(text) < _MIN_LENGTH:
        return False
    if not _maybe(text):
        return False
    if _KNOWN.search(text):
        return True
    if any(not _digest(m.group()) for m in _HEX_WORD.finditer(text)):
        return True
    return any(_random(m) for m in _RUN.finditer(text) if not _digest(m.group()))


def _digest(word: str) -> bool:
    """A SHA-1 or SHA-256 hex digest (a git commit, a checksum)."""
    return len(word) in _DIGEST_LENGTHS and all(
        c in "0123456789abcdefABCDEF" for c in word
    )


def looks_like_env_key(name: str) -> bool:
    """Whether a ``fromEnv`` name is a key rather than a variable name.

    Stricter than :func:`looks_like_key`: variable names are words joined by
    underscores, so a long name without one that mixes letters and digits
    (an Azure key starting with a letter is a valid name) is a key.
    """
    if looks_like_key(name):
        return True
    if "_" in name or len(name) < 20:
        return False
    return _has_letter(name) and any(c.isdigit() for c in name)


def shown(value: object) -> str:
    """``value`` quoted for a message, or :data:`HIDDEN` when it looks like
    a key. Control characters are made visible, so a message stays one line.
    """
    text = str(value)
    if looks_like_key(text):
        return HIDDEN
    if text.isprintable():
        return f"'{text}'"
    return json.dumps(text)


def bare(value: object) -> str:
    """Like :func:`shown`, without the quotes (hosts, variable names)."""
    text = str(value)
    return HIDDEN if looks_like_key(text) else text


def redact(text: str | None) -> str | None:
    """``text`` with every word that looks like a key replaced by
    :data:`HIDDEN` (a last net under the message builders)."""
    if text is None or not looks_like_key(text):
        return text
    return _WORD.sub(lambda m: HIDDEN if looks_like_key(m.group()) else m.group(), text)


def _maybe(text: str) -> bool:
    if any(prefix in text for prefix in _PREFIXES):
        return True
    mapped = text.encode("utf-8", "surrogatepass").translate(_TOKEN_MAP)
    return _LONG_RUN in mapped


def _random(match: re.Match[str]) -> bool:
    run = match.group()
    if not _has_letter(run) or not any(c.isdigit() for c in run):
        return False
    if match.string[: match.start()].endswith(_ID_PREFIXES):
        return False
    if len(run) >= _ALWAYS:
        return True
    switches = sum(_kind(a) != _kind(b) for a, b in itertools.pairwise(run))
    return switches / (len(run) - 1) >= _SWITCH_RATIO


def _has_letter(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _kind(char: str) -> int:
    if char.isdigit():
        return 0
    if char.islower():
        return 1
    if char.isupper():
        return 2
    return 3
