"""The compiled validator agrees with jsonschema on every document we have.

``schema.check`` trusts jsonschema-rs's "valid" and asks jsonschema only for
the wording of errors, so the two must never disagree on validity. Every
document of the corpus and the examples is checked as is and under a set of
mutations that each break one rule.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byok_reconcile import schema
from byok_reconcile.yamlload import load_bytes

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    p
    for base in (ROOT / "tests" / "corpus", ROOT / "examples")
    for p in base.rglob("*.y*ml")
    if p.suffix in (".yaml", ".yml") and "expect" not in p.name
)


def _documents() -> Iterator[tuple[str, str, Any]]:
    for path in SOURCES:
        loaded = load_bytes(path.read_bytes(), str(path))
        for doc in loaded.documents:
            data = doc.data
            if isinstance(data, dict) and data.get("kind") in schema.SCHEMA_FILES:
                data = {k: v for k, v in data.items() if k != "sops"}
                yield str(path.relative_to(ROOT)), data["kind"], data


def _mutations(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield data
    for key in list(data):
        broken = copy.deepcopy(data)
        del broken[key]
        yield broken
    spec = data.get("spec")
    if isinstance(spec, dict):
        for key in list(spec):
            for value in (None, 3, [], "x", {"unexpected": 1}):
                broken = copy.deepcopy(data)
                broken["spec"][key] = value
                yield broken
        extra = copy.deepcopy(data)
        extra["spec"]["unknownField"] = "x"
        yield extra
    named = copy.deepcopy(data)
    named.setdefault("metadata", {})["name"] = "Not_A-Name-"
    yield named
    # ECMA-262 '$' is the very end; Python's also matches before a final \n.
    for bad in ("abc\n", "abc\n\n", "\nabc", "ab\nc"):
        newline = copy.deepcopy(data)
        newline.setdefault("metadata", {})["name"] = bad
        yield newline
    features = spec.get("features") if isinstance(spec, dict) else None
    if isinstance(features, dict):
        broken = copy.deepcopy(data)
        broken["spec"]["features"]["feature\n"] = {"key": "k\n", "model": "m"}
        yield broken
    hosts = spec.get("allowedHosts") if isinstance(spec, dict) else None
    if isinstance(hosts, list):
        broken = copy.deepcopy(data)
        broken["spec"]["allowedHosts"] = ["api.example.com\n"]
        yield broken


DOCUMENTS = list(_documents())


def test_there_are_documents_to_compare() -> None:
    kinds = {kind for _, kind, _ in DOCUMENTS}
    assert {"Key", "FeatureMapping", "FeatureCatalog", "Policy"} <= kinds
    assert len(DOCUMENTS) > 50


@pytest.mark.parametrize(
    ("where", "kind", "data"), DOCUMENTS, ids=[f"{w}:{k}" for w, k, _ in DOCUMENTS]
)
def test_fast_and_full_validators_agree(where: str, kind: str, data: Any) -> None:
    fast = schema.fast_validator(kind)
    assert fast is not None, "jsonschema-rs is a dependency"
    full = schema.validator(kind)
    for variant in _mutations(data):
        expected = not any(True for _ in full.iter_errors(variant))
        assert fast.is_valid(variant) is expected, (where, variant)


def test_a_disagreement_is_never_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the wording validator find nothing where jsonschema-rs found an
    error, the document is still reported, from jsonschema-rs's errors."""
    doc = load_bytes(
        b"apiVersion: byok/v1\nkind: Policy\nmetadata: {name: p}\n"
        b"spec: {allowedHosts: [7]}\n",
        "p.yaml",
    ).documents[0]

    class Silent:
        def iter_errors(self, data: Any) -> Iterator[Any]:
            return iter(())

    monkeypatch.setattr(schema, "validator", lambda kind: Silent())
    (problem,) = schema.check("Policy", doc, "p.yaml")
    assert problem.path == "$.spec.allowedHosts[0]"
    assert (problem.line, problem.col) == (4, 23)
    assert "does not match the schema (type)" in problem.message


def test_size_limits_come_from_the_fast_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = ", ".join(f"h{i}.example.com" for i in range(501))
    text = "apiVersion: byok/v1\nkind: Policy\nmetadata: {name: p}\n"
    text += f"spec: {{allowedHosts: [{hosts}, 7, [1]]}}\n"
    doc = load_bytes(text.encode(), "p.yaml").documents[0]

    def slow(kind: str) -> Any:
        raise AssertionError("the pure-Python validator was asked")

    monkeypatch.setattr(schema, "validator", slow)
    (problem,) = schema.check("Policy", doc, "p.yaml")
    assert problem.message == "spec.allowedHosts lists more than 500 entries"
