"""Load YAML exactly: YAML 1.2 core scalars, every value with its place.

libyaml (``CSafeLoader``) composes the node graph; values are then built
here from nodes, so that each value and each mapping key keeps its line and
column, nothing turns into a date or a ``yes`` boolean, and every problem
(duplicate keys, alias bombs, bad bytes, syntax) is collected as a
:class:`~byok_reconcile.results.Problem` instead of raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from byok_reconcile.results import Problem

JsonPath = tuple[str | int, ...]
Mark = tuple[int, int]

MAX_NODES = 50_000
MAX_DEPTH = 64
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


def load_text(text: str, display: str) -> LoadedFile:
    """Load every document of ``text`` (already decoded)."""
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
            doc = _Builder(display, index, problems).document(node)
            if doc is not None:
                docs.append(doc)
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(exc, display, text))
    if not docs and not problems and _is_blank(text):
        problems.append(_empty_file(display))
    return LoadedFile(tuple(docs), tuple(problems))


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


def _is_blank(text: str) -> bool:
    lines = (line.strip() for line in text.splitlines())
    return all(not line or line.startswith("#") for line in lines)


def _empty_file(display: str) -> Problem:
    return Problem(
        display,
        1,
        1,
        "the file holds no YAML document (it is empty or only comments)",
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
    return Problem(
        display,
        mark.line + 1,
        mark.column + 1,
        f"the YAML is nested more than {MAX_DEPTH} levels deep",
        "yaml-too-deep",
        hint="byok documents are a few levels deep; check the file",
    )


def _yaml_problem(exc: yaml.YAMLError, display: str, source: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
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


def _offset_mark(source: str, position: int) -> Mark:
    line = source.count("\n", 0, position) + 1
    return (line, position - (source.rfind("\n", 0, position) + 1) + 1)


class _Builder:
    """Builds one document's values from its node graph."""

    def __init__(self, display: str, index: int, problems: list[Problem]) -> None:
        self.display = display
        self.index = index
        self.problems = problems
        self.count = 0
        self.active: set[int] = set()
        self.marks: dict[JsonPath, Mark] = {}
        self.key_marks: dict[JsonPath, Mark] = {}
        self.raw: dict[JsonPath, str] = {}

    def document(self, node: yaml.Node) -> LoadedDocument | None:
        try:
            data = self.build(node, ())
        except _Abort:
            return None
        return LoadedDocument(self.index, data, self.marks, self.key_marks, self.raw)

    def problem(self, node: yaml.Node, message: str, code: str, hint: str) -> None:
        mark = node.start_mark
        self.problems.append(
            Problem(
                self.display,
                mark.line + 1,
                mark.column + 1,
                message,
                code,
                path="$",
                hint=hint,
            )
        )

    def check_limits(self, node: yaml.Node, path: JsonPath) -> None:
        if self.count > MAX_NODES:
            self.problem(
                node,
                f"the document expands to more than {MAX_NODES} values "
                "(aliases repeated too often)",
                "yaml-alias-bomb",
                "remove the repeated aliases",
            )
            raise _Abort
        if len(path) > MAX_DEPTH:
            self.problem(
                node,
                f"nested more than {MAX_DEPTH} levels deep",
                "yaml-too-deep",
                "byok documents are a few levels deep; check the file",
            )
            raise _Abort

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
        self.check_limits(node, path)
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.alias_loop(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, path)
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def sequence(self, node: yaml.SequenceNode, path: JsonPath) -> list[object]:
        if node.tag != SEQ:
            self.bad_tag(node)
        return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]

    def mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, object]:
        if node.tag != MAP:
            self.bad_tag(node)
        result: dict[str, object] = {}
        seen: dict[str, yaml.Node] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                merges.append(value_node)
                continue
            key = self.key(key_node)
            if key is None:
                continue
            if key in seen:
                # Under apiKey a key name may be a pasted secret: never echo it.
                shown = "a key" if "apiKey" in path else f"the key '{key}'"
                self.duplicate(shown, seen[key], key_node)
            seen[key] = key_node
            child = (*path, key)
            self.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        for key_node, value_node in self.merged_pairs(merges):
            key = self.key(key_node)
            if key is None or key in result:
                continue  # explicit keys (and earlier merges) win
            child = (*path, key)
            self.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        return result

    def merged_pairs(self, merges: list[yaml.Node]) -> list[tuple[Any, Any]]:
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
                    )
                    continue
                pairs.extend(self.flatten(source))
        return pairs

    def flatten(self, node: yaml.MappingNode) -> list[tuple[Any, Any]]:
        """A merged mapping's pairs, its own merges resolved (its own keys
        first, so they win over what it merges in turn)."""
        self.count += len(node.value)
        self.check_limits(node, ())
        if id(node) in self.active:
            self.alias_loop(node)
        own = [(k, v) for k, v in node.value if not _is_merge(k)]
        inner = [v for k, v in node.value if _is_merge(k)]
        self.active.add(id(node))
        try:
            return own + self.merged_pairs(inner)
        finally:
            self.active.discard(id(node))

    def key(self, node: yaml.Node) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        self.problem(
            node,
            "a mapping key must be plain text, not a list or a mapping",
            "yaml-complex-key",
            "write the key as text",
        )
        return None

    def duplicate(self, shown: str, first: yaml.Node, again: yaml.Node) -> None:
        line = first.start_mark.line + 1
        self.problem(
            again,
            f"{shown} appears twice in the same mapping "
            f"(first at line {line}, again at line {again.start_mark.line + 1})",
            "duplicate-key",
            "keep one of them",
        )

    def bad_tag(self, node: yaml.Node) -> None:
        self.problem(
            node,
            f"the YAML tag '{node.tag}' is not supported here",
            "yaml-tag",
            "remove the tag",
        )

    def scalar(self, node: yaml.ScalarNode, path: JsonPath) -> object:
        text: str = node.value
        tag = node.tag
        if tag == STR:
            return text
        value = resolve_plain(text) if tag == PLAIN else self.tagged(node)
        if value is not text:
            self.raw[path] = text
        return value

    def tagged(self, node: yaml.ScalarNode) -> object:
        wanted = {INT: (int,), FLOAT: (float, int), BOOL: (bool,), NULL: (type(None),)}
        kinds = wanted.get(node.tag)
        value = resolve_plain(node.value)
        if kinds is None:
            self.bad_tag(node)
            return node.value
        if not isinstance(value, kinds) or (bool in kinds) != isinstance(value, bool):
            self.problem(
                node,
                f"'{node.value}' is not a valid {node.tag.rsplit(':', 1)[-1]}",
                "yaml-tag",
                "fix the value or remove the tag",
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
        isinstance(node, yaml.ScalarNode)
        and node.value == "<<"
        and node.tag in (PLAIN, MERGE)
    )


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def path_text(path: JsonPath) -> str:
    """``("spec", "models", 1)`` -> ``$.spec.models[1]``."""
    out = "$"
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def dotted(path: JsonPath) -> str:
    """``("spec", "models", 1)`` -> ``spec.models[1]``, for messages."""
    return path_text(path)[2:] if path else "the document"
