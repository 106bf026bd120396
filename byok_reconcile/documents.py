"""Find the files, load them, and sort their documents into byok kinds.

A file's top-level ``sops`` block is sops metadata, not configuration: it is
removed here and remembered, so later rules know the file is encrypted. A
file with sops metadata and no ``apiVersion`` is a sops data file (the target
of a ``fromFile``) and is skipped silently.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byok_reconcile.errors import ConfigError
from byok_reconcile.keyshape import shown
from byok_reconcile.model import Location, SourceFile
from byok_reconcile.results import Problem, Severity
from byok_reconcile.sopsmeta import SopsMeta, inspect_documents, is_enc_value
from byok_reconcile.yamlload import (
    JsonPath,
    LoadedDocument,
    load_bytes,
    path_text,
    read_limited,
)

API_VERSION = "byok/v1"
KINDS = ("Key", "FeatureMapping", "FeatureCatalog", "Policy")
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Document:
    """One byok document of a known kind, with its file and sops status."""

    kind: str
    file: str
    path: Path
    loaded: LoadedDocument
    sops: SopsMeta | None = None

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.loaded.data  # type: ignore[assignment]
        return data

    @property
    def name(self) -> str | None:
        meta = self.data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else None

    @property
    def index(self) -> int:
        return self.loaded.index

    def location(self, path: JsonPath = (), *, key: bool = False) -> Location:
        line, col = self.loaded.key_mark(path) if key else self.loaded.mark(path)
        return Location(self.file, line, col)

    def problem(
        self,
        path: JsonPath,
        message: str,
        code: str,
        hint: str | None = None,
        *,
        key: bool = False,
        severity: Severity = "error",
    ) -> Problem:
        """A problem at ``path`` (at its key with ``key``) in this document."""
        where = self.location(path, key=key)
        return Problem(
            self.file,
            where.line,
            where.col,
            message,
            code,
            severity,
            path_text(path),
            hint,
        )


@dataclass(frozen=True)
class LoadedSource:
    """A file as loaded: its byok documents and the problems met."""

    source: SourceFile
    documents: tuple[Document, ...]
    problems: tuple[Problem, ...]


def discover(paths: Sequence[str | Path]) -> tuple[list[SourceFile], list[Problem]]:
    """The files to read, each once, in a stable order, with display paths.

    A folder is searched recursively, symlinked folders included (each real
    folder once, so a link loop ends). A folder that cannot be read, or that
    holds no YAML file, is a problem: nothing is skipped silently. A named
    path that is not a regular file is handed on, so reading it reports it.
    """
    found: dict[Path, str] = {}
    problems: list[Problem] = []
    cwd = Path.cwd()
    for given in paths:
        path = Path(given)
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            problems.append(_missing(path, cwd, exc))
            continue
        if not stat.S_ISDIR(mode):
            found.setdefault(_absolute(path), _display(path, cwd))
            continue
        walked = _Walk(problems, cwd)
        inside = walked.run(path)
        if not inside and not walked.failed:
            problems.append(_no_yaml(path, cwd))
        for file in inside:
            found.setdefault(_absolute(file), _display(file, cwd))
    files = [SourceFile(p, d, "") for p, d in found.items()]
    files.sort(key=lambda f: f.display)
    return files, problems


class _Walk:
    """``*.yaml``/``*.yml`` under a folder, skipping hidden entries (and so
    ``.sops.yaml``); unreadable folders become problems."""

    def __init__(self, problems: list[Problem], cwd: Path) -> None:
        self.problems = problems
        self.cwd = cwd
        self.visited: set[tuple[int, int]] = set()
        self.failed = False

    def run(self, root: Path) -> list[Path]:
        out: list[Path] = []
        stack = [root]
        while stack:
            folder = stack.pop()
            entries = self.entries(folder)
            subfolders = []
            for entry in entries:
                if self.is_dir(entry):
                    subfolders.append(Path(entry.path))
                elif entry.name.endswith(SUFFIXES):
                    out.append(Path(entry.path))
            stack.extend(reversed(subfolders))
        return out

    def entries(self, folder: Path) -> list[os.DirEntry[str]]:
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in self.visited:
                return []  # a symlink loop, or a folder reached twice
            self.visited.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as scan:
                found = [e for e in scan if not e.name.startswith(".")]
        except OSError as exc:
            self.failed = True
            self.problems.append(_unreadable_folder(folder, self.cwd, exc))
            return []
        return sorted(found, key=lambda e: e.name)

    def is_dir(self, entry: os.DirEntry[str]) -> bool:
        try:
            return entry.is_dir()  # follows symlinks
        except OSError:
            return False  # a dangling link: it holds nothing to read


def _display(path: Path, cwd: Path) -> str:
    if path.is_absolute():
        try:
            return path.relative_to(cwd).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def _missing(path: Path, cwd: Path, exc: OSError) -> Problem:
    if isinstance(exc, FileNotFoundError):
        message = "no such file or folder"
    else:
        message = f"cannot be read: {exc.strerror or type(exc).__name__}"
    return Problem(_display(path, cwd), 0, 0, message, "path", hint="check the path")


def _unreadable_folder(folder: Path, cwd: Path, exc: OSError) -> Problem:
    reason = exc.strerror or type(exc).__name__
    return Problem(
        _display(folder, cwd),
        0,
        0,
        f"the folder cannot be read: {reason}",
        "read",
        hint="check its permissions; its files were not validated",
    )


def _no_yaml(folder: Path, cwd: Path) -> Problem:
    return Problem(
        _display(folder, cwd),
        0,
        0,
        f"no *.yaml or *.yml files in {_display(folder, cwd)}",
        "path",
        hint="check the path; hidden files and folders are skipped",
    )


def load_source(source: SourceFile) -> LoadedSource:
    """Read one file and sort its documents; never raises on bad content."""
    try:
        data = read_limited(source.path)
    except ConfigError as exc:
        # Line 1, column 1: a CI annotation needs a line to attach to the file.
        problem = Problem(
            source.display, 1, 1, f"the file {exc.message}", "read", hint=exc.hint
        )
        return LoadedSource(source, (), (problem,))
    source = SourceFile(source.path, source.display, hashlib.sha256(data).hexdigest())
    loaded = load_bytes(data, source.display)
    sops = _strip_sops(loaded.documents)
    documents: list[Document] = []
    problems = list(loaded.problems)
    for doc in loaded.documents:
        kind = _classify(doc, source.display, sops, problems)
        if kind is not None:
            documents.append(Document(kind, source.display, source.path, doc, sops))
    return LoadedSource(source, tuple(documents), tuple(problems))


def _strip_sops(docs: Sequence[LoadedDocument]) -> SopsMeta | None:
    """Remove the sops metadata block from the documents holding one."""
    meta = inspect_documents([d.data for d in docs])
    if meta is None:
        return None
    for doc in docs:
        if isinstance(doc.data, dict) and isinstance(doc.data.get("sops"), dict):
            del doc.data["sops"]
    return meta


def _classify(
    doc: LoadedDocument,
    file: str,
    sops: SopsMeta | None,
    problems: list[Problem],
) -> str | None:
    """The document's kind, or None (with a problem unless it is to skip)."""
    data = doc.data
    if data is None:
        return None  # an empty document between two '---'
    if not isinstance(data, dict):
        problems.append(_not_byok(doc, file, "it is not a mapping"))
        return None
    if "apiVersion" not in data:
        if sops is not None:
            return None  # a sops data file, such as a fromFile target
        problems.append(_not_byok(doc, file, "it has no apiVersion"))
        return None
    if data["apiVersion"] != API_VERSION:
        problems.append(_bad_api_version(doc, file))
        return None
    return _kind(doc, file, problems)


def _kind(doc: LoadedDocument, file: str, problems: list[Problem]) -> str | None:
    data: dict[str, Any] = doc.data  # type: ignore[assignment]
    kind = data.get("kind")
    if kind in KINDS:
        return str(kind)
    line, col = doc.mark(("kind",)) if "kind" in data else doc.mark(())
    if "kind" not in data:
        message = "the document has no kind"
        hint = f"add kind: one of {', '.join(KINDS)}"
    else:
        message = f"unknown kind {shown(kind)}"
        hint = _suggest_kind(str(kind))
    problems.append(
        Problem(file, line, col, message, "unknown-kind", path="$.kind", hint=hint)
    )
    return None


def _suggest_kind(kind: str) -> str:
    lower = {k.lower(): k for k in KINDS}
    close = difflib.get_close_matches(kind.lower(), list(lower), n=1, cutoff=0.5)
    if close:
        return f"did you mean '{lower[close[0]]}'?"
    return f"use one of {', '.join(KINDS)}"


def _not_byok(doc: LoadedDocument, file: str, why: str) -> Problem:
    line, col = doc.mark(())
    return Problem(
        file,
        line,
        col,
        f"this is not a byok document: {why}",
        "not-byok",
        path="$",
        hint=f"start it with apiVersion: {API_VERSION} and a kind, "
        "or keep the file out of the configuration folder",
    )


def _bad_api_version(doc: LoadedDocument, file: str) -> Problem:
    line, col = doc.mark(("apiVersion",))
    value = doc.data["apiVersion"]  # type: ignore[index]
    if is_enc_value(value):
        message = "apiVersion is sops-encrypted: the whole document is encrypted"
        hint = "encrypt only the key: sops encrypt --encrypted-regex '^apiKey$'"
    else:
        raw = value if isinstance(value, str) else doc.raw.get(("apiVersion",), "?")
        message = f"unknown apiVersion {shown(raw)}"
        hint = f"use apiVersion: {API_VERSION}"
    return Problem(
        file, line, col, message, "api-version", path="$.apiVersion", hint=hint
    )


def _absolute(path: Path) -> Path:
    # abspath, not resolve(): one syscall-free call per file matters at 5,000
    # files, and a symlinked file is still the file the user named.
    return Path(os.path.abspath(path))
