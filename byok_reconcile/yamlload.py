"""Load YAML exactly: YAML 1.2 core scalars, every value with its place.

libyaml (``CSafeLoader``) composes the node graph; values are then built
here from nodes, so that each value and each mapping key keeps its line and
column, nothing turns into a date or a ``yes`` boolean, and every problem
(duplicate keys, alias bombs, bad bytes, syntax) is collected as a
:class:`~byok_reconcile.results.Problem` instead of raised.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from byok_reconcile.errors import ConfigError
from byok_reconcile.keyshape import HIDDEN, looks_like_key, shown
from byok_reconcile.results import Problem

JsonPath = tuple[str | int, ...]
Mark = tuple[int, int]

MAX_NODES = 50_000
MAX_DEPTH = 64
# byok documents and sops files are a few kilobytes; the cap keeps a stray
# disk image or /dev/zero from being read into memory.
MAX_FILE_BYTES = 16 * 1024 * 1024
# libyaml's C composer recurses per nesting level and overflows the C stack
# somewhere past 20,000 levels; a text shorter than this cannot nest deeper.
_SAFE_LENGTH = 8_000
# Below this bound the C composer is safe and the builder's own MAX_DEPTH
# check reports deep documents.
_SAFE_NESTING = 1_000

PLAIN = "byok:plain"
_Y = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (
    f"{_Y}{t}" for t in ("str", "int", "float", "bool", "null")
)
MAP, SEQ, MERGE = f"{_Y}map", f"{_Y}seq", f"{_Y}merge"

_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+\Z")
_OCT_RE = re.compile(r"0o[0-7]+\Z")
_FLOAT_RE = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)"
    r"(?:[eE][-+]?[0-9]+)?\Z"
)
_INF_RE = re.compile(r"[-+]?\.(?:inf|Inf|INF)\Z")
_NAN_RE = re.compile(r"\.(?:nan|NaN|NAN)\Z")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
# A plain scalar can only be a non-string if it starts with one of these.
_SPECIAL_START = frozenset("0123456789+-.~nNtTfF")


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """libyaml parser whose resolver marks untagged plain scalars, so that
    this module, not YAML 1.1, decides what they mean."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return PLAIN
        result: str = super().resolve(kind, value, implicit)
        return result

    # No path resolvers are registered: skip the per-node bookkeeping that
    # libyaml's composer would otherwise call back into Python for.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


def may_quote(path: JsonPath, value: object = None) -> bool:
    """Whether a message may quote ``value``, the value (or key) at ``path``.

    The one place that decides: anything under ``apiKey`` may be a pasted
    key, so it is never shown, and nothing anywhere that looks like a key.
    """
    return "apiKey" not in path and not looks_like_key(value)


def read_limited(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    A FIFO, a device or a folder is refused before anything is read (opened
    non-blocking, so a FIFO without a writer cannot hang), and a file over
    ``limit`` without reading it all. Raises :class:`ConfigError` whose
    message is a predicate without the path ("is not a regular file"): the
    caller decides whether the path may be shown.
    """
    try:
        # stat first: a device is never even opened.
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise ConfigError("does not exist", hint="check the path") from None
    except OSError as exc:
        raise _unreadable(exc) from None
    try:
        return _read_fd(fd, limit)
    except OSError as exc:
        raise _unreadable(exc) from None
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int) -> bytes:
    info = os.fstat(fd)  # the file may have been swapped since the stat
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(info.st_mode)
    if info.st_size > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
    return b"".join(chunks)


def _not_regular(mode: int) -> ConfigError:
    what = "a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file"
    return ConfigError(
        f"is {what}",
        hint="byok reads only regular files, not FIFOs, devices or folders",
    )


def _too_large(limit: int) -> ConfigError:
    return ConfigError(
        f"is larger than {limit // (1024 * 1024)} MiB; byok documents are small",
        hint="check that this is the file you meant",
    )


def _unreadable(exc: OSError) -> ConfigError:
    reason = exc.strerror or type(exc).__name__
    return ConfigError(
        f"cannot be read: {reason}", hint="check the path and its permissions"
    )


@dataclass(frozen=True)
class LoadedDocument:
    """One YAML document: plain values plus where each came from.

    ``marks`` maps the JSON path of every value to its (line, col),
    ``key_marks`` the path of every mapping entry to its key's place, and
    ``raw`` keeps the text of unquoted scalars that became a number, a
    boolean or null, to show the user what they wrote.
    """

    index: int
    data: object
    marks: dict[JsonPath, Mark] = field(default_factory=dict)
    key_marks: dict[JsonPath, Mark] = field(default_factory=dict)
    raw: dict[JsonPath, str] = field(default_factory=dict)

    def mark(self, path: JsonPath) -> Mark:
        """The place of the value at ``path``, or of its nearest parent."""
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, (1, 1))

    def key_mark(self, path: JsonPath) -> Mark:
        """The place of the key of the entry at ``path`` (or its value)."""
        return self.key_marks.get(path) or self.mark(path)


@dataclass(frozen=True)
class LoadedFile:
    """The documents of one file, in order, and the problems met."""

    documents: tuple[LoadedDocument, ...]
    problems: tuple[Problem, ...]


class _Abort(Exception):
    """Stops building one document; the problem is already recorded."""


def load_bytes(data: bytes, display: str) -> LoadedFile:
    """Decode and load every document of a file; never raises on bad input."""
    problems: list[Problem] = []
    text = _decode(data, display, problems)
    if text is None:
        return LoadedFile((), tuple(problems))
    return load_text(text, display)


def load_text(text: str, display: str, *, strings: bool = False) -> LoadedFile:
    """Load every document of ``text`` (already decoded).

    Every YAML parse of the package goes through here, so the nesting and
    size guards apply to all of them. ``strings`` keeps every scalar as the
    text written (for decrypted values, where ``0123e45`` is a key).
    """
    problems: list[Problem] = []
    if (
        len(text) > _SAFE_LENGTH
        and _nesting_bound(text) > _SAFE_NESTING
        and not _depth_ok(text, display, problems)
    ):
        return LoadedFile((), tuple(problems))
    docs: list[LoadedDocument] = []
    try:
        for index, node in enumerate(_compose(text)):
            doc = _Builder(display, index, problems, strings).document(node)
            if doc is not None:
                docs.append(doc)
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(exc, display, text))
    if not problems and all(d.data is None for d in docs):
        # Only '---' lines, comments or blanks: as empty as an empty file.
        problems.append(_empty_file(display))
    return LoadedFile(tuple(docs), tuple(problems))


def parse_values(text: str, *, strings: bool = False) -> list[object]:
    """The plain values of every document of ``text``, under the guards of
    :func:`load_text`, for callers that need no places (sops files, decrypted
    output). Raises :class:`ConfigError` on any problem; the message never
    quotes the text, which may be secret.
    """
    loaded = load_text(text, "<text>", strings=strings)
    empty = all(p.code == "empty-file" for p in loaded.problems)
    if loaded.problems and not empty:
        first = loaded.problems[0]
        raise ConfigError(
            f"cannot be parsed as YAML (line {first.line}, column {first.col})",
            hint="check the file with sops or a YAML linter",
        )
    return [doc.data for doc in loaded.documents]


def _compose(text: str) -> Iterator[yaml.Node]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()


def _decode(data: bytes, display: str, problems: list[Problem]) -> str | None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(
            Problem(
                display,
                line,
                col,
                f"the file is not UTF-8 text: byte {exc.start} "
                f"(0x{data[exc.start]:02x}) cannot be decoded",
                "encoding",
                hint="save the file as UTF-8",
            )
        )
        return None


def _empty_file(display: str) -> Problem:
    return Problem(
        display,
        1,
        1,
        "the file holds no YAML document (it is empty, or only comments "
        "and '---')",
        "empty-file",
        hint="add a byok document or delete the file",
    )


def _nesting_bound(text: str) -> int:
    """An upper bound of the nesting depth of ``text``, from cheap counts.

    Block nesting needs indentation: each column allows at most two levels
    (a sequence may sit at its parent mapping key's column), so it is bounded
    by twice the longest line. Flow nesting is bounded by the running count
    of open brackets; a close bracket is trusted only on lines without
    quotes or comments, where it cannot be text, so the bound never falls
    short. Walking the parse events (slow in Python) is needed only above it.
    """
    lines = text.splitlines()
    flow = deepest = 0
    for line in lines:
        opens = line.count("[") + line.count("{")
        if not opens and (flow == 0 or ("]" not in line and "}" not in line)):
            continue
        deepest = max(deepest, flow + opens)
        closes = 0
        if not any(c in line for c in "\"'#"):
            closes = line.count("]") + line.count("}")
        flow = max(0, flow + opens - closes)
    longest = max((len(line) for line in lines), default=0)
    return 2 * longest + 2 + deepest


def _depth_ok(text: str, display: str, problems: list[Problem]) -> bool:
    """Walk the events (iterative in libyaml) to refuse nesting that would
    overflow the C composer's stack, before composing."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    problems.append(_too_deep(display, event.start_mark))
                    return False
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(exc, display, text))
        return False
    return True


def _too_deep(display: str, mark: Any) -> Problem:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Problem(
        display,
        line,
        col,
        f"the YAML is nested more than {MAX_DEPTH} levels deep",
        "yaml-too-deep",
        hint="byok documents are a few levels deep; check the file",
    )


def _yaml_problem(exc: yaml.YAMLError, display: str, source: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if _libyaml_too_deep(exc):
        return _too_deep(display, mark)
    if isinstance(exc, yaml.reader.ReaderError):
        text = "the file holds a character YAML does not allow: " + (
            f"U+{exc.character:04X}" if isinstance(exc.character, int) else "?"
        )
        line, col = _offset_mark(source, exc.position)
    elif isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        text = "YAML syntax error: " + ", ".join(parts)
    else:
        text = f"YAML syntax error: {exc}"
    return Problem(
        display, line, col, text, "yaml-syntax", hint="fix the YAML at this place"
    )


def _libyaml_too_deep(exc: yaml.YAMLError) -> bool:
    """The libyaml bundled with PyYAML 6.0.4 stops deep nesting itself
    ("exceeded maximum nesting depth"): the same problem as our own limit."""
    problem = getattr(exc, "problem", None) or ""
    return "maximum nesting depth" in problem


def _offset_mark(source: str, position: int) -> Mark:
    line = source.count("\n", 0, position) + 1
    return (line, position - (source.rfind("\n", 0, position) + 1) + 1)


class _Builder:
    """Builds one document's values from its node graph."""

    def __init__(
        self, display: str, index: int, problems: list[Problem], strings: bool
    ) -> None:
        self.display = display
        self.index = index
        self.problems = problems
        self.strings = strings
        self.count = 0
        self.active: set[int] = set()
        # Collections built once; one built again came through an alias.
        self.built: set[int] = set()
        self.aliased = False
        self.marks: dict[JsonPath, Mark] = {}
        self.key_marks: dict[JsonPath, Mark] = {}
        self.raw: dict[JsonPath, str] = {}

    def document(self, node: yaml.Node) -> LoadedDocument | None:
        try:
            data = self.build(node, ())
        except _Abort:
            return None
        return LoadedDocument(self.index, data, self.marks, self.key_marks, self.raw)

    def problem(
        self,
        node: yaml.Node,
        message: str,
        code: str,
        hint: str,
        path: JsonPath = (),
    ) -> None:
        mark = node.start_mark
        self.problems.append(
            Problem(
                self.display,
                mark.line + 1,
                mark.column + 1,
                message,
                code,
                path=path_text(path),
                hint=hint,
            )
        )

    def check_limits(self, node: yaml.Node, path: JsonPath, merges: int = 0) -> None:
        """Refuse a document that is too large or too deep; ``merges`` counts
        the merge keys followed to get here, which nest like values do."""
        if self.count > MAX_NODES:
            self.too_many(node)
        if len(path) + merges > MAX_DEPTH:
            self.problem(
                node,
                f"nested more than {MAX_DEPTH} levels deep",
                "yaml-too-deep",
                "byok documents are a few levels deep; check the file",
            )
            raise _Abort

    def too_many(self, node: yaml.Node) -> None:
        if self.aliased:
            message = (
                f"the document expands to more than {MAX_NODES} values "
                "(aliases repeated too often)"
            )
            code, hint = "yaml-alias-bomb", "remove the repeated aliases"
        else:
            message = (
                f"the document holds more than {MAX_NODES} values; "
                "byok documents are small"
            )
            code, hint = "yaml-too-large", "check the file, or split it"
        self.problem(node, message, code, hint)
        raise _Abort

    def seen(self, node: yaml.Node) -> None:
        if id(node) in self.built:
            self.aliased = True
        else:
            self.built.add(id(node))

    def alias_loop(self, node: yaml.Node) -> None:
        self.problem(
            node,
            "an alias refers to a node that contains it",
            "yaml-alias-loop",
            "an alias cannot point at its own parent",
        )
        raise _Abort

    def build(self, node: yaml.Node, path: JsonPath) -> object:
        self.count += 1
        if self.count > MAX_NODES or len(path) > MAX_DEPTH:
            self.check_limits(node, path)
        mark = node.start_mark
        self.marks[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        ident = id(node)
        if ident in self.active:
            self.alias_loop(node)
        if ident in self.built:
            self.aliased = True
        else:
            self.built.add(ident)
        self.active.add(ident)
        try:
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, path)
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path)
        finally:
            self.active.discard(ident)

    def sequence(self, node: yaml.SequenceNode, path: JsonPath) -> list[object]:
        if node.tag != SEQ:
            self.bad_tag(node, path)
        return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]

    def mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, object]:
        if node.tag != MAP:
            self.bad_tag(node, path)
        result: dict[str, object] = {}
        seen: dict[str, yaml.Node] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                merges.append(value_node)
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            if key in seen:
                # Under apiKey a key name may be a pasted secret: never echo it.
                what = f"the key {shown(key)}" if may_quote(path) else "a key"
                self.duplicate(what, seen[key], key_node)
            seen[key] = key_node
            child = (*path, key)
            self.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        for key_node, value_node in self.merged_pairs(merges, path, 1):
            key = self.key(key_node, path)
            if key is None or key in result:
                continue  # explicit keys (and earlier merges) win
            child = (*path, key)
            self.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        return result

    def merged_pairs(
        self, merges: list[yaml.Node], path: JsonPath, depth: int
    ) -> list[tuple[Any, Any]]:
        pairs: list[tuple[Any, Any]] = []
        for value in merges:
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.problem(
                        source,
                        "a merge key '<<' takes a mapping or a list of mappings",
                        "yaml-merge",
                        "merge an anchored mapping: <<: *base",
                        path,
                    )
                    continue
                pairs.extend(self.flatten(source, path, depth))
        return pairs

    def flatten(
        self, node: yaml.MappingNode, path: JsonPath, depth: int
    ) -> list[tuple[Any, Any]]:
        """A merged mapping's pairs, its own merges resolved (its own keys
        first, so they win over what it merges in turn). ``depth`` counts
        the merges followed, so a chain of them is bounded like nesting."""
        self.count += len(node.value)
        self.check_limits(node, path, depth)
        if id(node) in self.active:
            self.alias_loop(node)
        self.seen(node)
        own = [(k, v) for k, v in node.value if not _is_merge(k)]
        inner = [v for k, v in node.value if _is_merge(k)]
        self.active.add(id(node))
        try:
            return own + self.merged_pairs(inner, path, depth + 1)
        finally:
            self.active.discard(id(node))

    def key(self, node: yaml.Node, path: JsonPath) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        self.problem(
            node,
            "a mapping key must be plain text, not a list or a mapping",
            "yaml-complex-key",
            "write the key as text",
            path,
        )
        return None

    def duplicate(self, what: str, first: yaml.Node, again: yaml.Node) -> None:
        line = first.start_mark.line + 1
        self.problem(
            again,
            f"{what} appears twice in the same mapping "
            f"(first at line {line}, again at line {again.start_mark.line + 1})",
            "duplicate-key",
            "keep one of them",
        )

    def bad_tag(self, node: yaml.Node, path: JsonPath) -> None:
        if self.strings:
            return  # decrypted output: tags mean nothing, values stay text
        what = shown(node.tag) if may_quote(path) else "here"
        self.problem(
            node,
            f"the YAML tag {what} is not supported here",
            "yaml-tag",
            "remove the tag",
            path,
        )

    def scalar(self, node: yaml.ScalarNode, path: JsonPath) -> object:
        text: str = node.value
        tag = node.tag
        if tag == STR or self.strings:
            return text
        value = resolve_plain(text) if tag == PLAIN else self.tagged(node, path)
        if value is not text:
            self.raw[path] = text
        return value

    def tagged(self, node: yaml.ScalarNode, path: JsonPath) -> object:
        wanted = {INT: (int,), FLOAT: (float, int), BOOL: (bool,), NULL: (type(None),)}
        kinds = wanted.get(node.tag)
        value = resolve_plain(node.value)
        if kinds is None:
            self.bad_tag(node, path)
            return node.value
        if not isinstance(value, kinds) or (bool in kinds) != isinstance(value, bool):
            kind = node.tag.rsplit(":", 1)[-1]
            what = shown(node.value) if may_quote(path) else "the value"
            self.problem(
                node,
                f"{what} is not a valid {kind}",
                "yaml-tag",
                "fix the value or remove the tag",
                path,
            )
            return node.value
        return float(value) if node.tag == FLOAT else value  # type: ignore[arg-type]


def resolve_plain(text: str) -> object:
    """An unquoted scalar by the YAML 1.2 core schema (``0755`` stays text)."""
    if not text:
        return None
    if text[0] not in _SPECIAL_START:
        return text
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT_RE.match(text):
        return int(text)
    if _HEX_RE.match(text):
        return int(text[2:], 16)
    if _OCT_RE.match(text):
        return int(text[2:], 8)
    if _FLOAT_RE.match(text):
        return float(text)
    if _INF_RE.match(text) or _NAN_RE.match(text):
        return float(text.lower().replace(".", "", 1))
    return text


def _is_merge(node: yaml.Node) -> bool:
    return (
        node.value == "<<"  # a str compare first: most keys end here
        and isinstance(node, yaml.ScalarNode)
        and node.tag in (PLAIN, MERGE)
    )


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def path_text(path: JsonPath) -> str:
    """``("spec", "models", 1)`` -> ``$.spec.models[1]``; a key that looks
    like an API key (an unknown property may be a pasted one) is hidden."""
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif looks_like_key(step):
            out += f"[{HIDDEN}]"
        elif step.isprintable():
            out += f".{step}"
        else:  # a newline in a key must not break the message in two
            out += f"[{json.dumps(step)}]"
    return out


def dotted(path: JsonPath) -> str:
    """``("spec", "models", 1)`` -> ``spec.models[1]``, for messages."""
    return path_text(path)[2:] if path else "the document"
