"""The JSON Schemas of byok documents, and their errors in plain words.

One schema per kind under ``schemas/`` (installed as the package
``byok_reconcile.schemas``). Each validator is compiled once per process.
Errors become :class:`~byok_reconcile.results.Problem` records that point at
the right line: a missing property at the mapping that lacks it, an unknown
property at the key itself with the nearest known name.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from byok_reconcile.keyshape import HIDDEN, looks_like_key, shown
from byok_reconcile.results import Problem
from byok_reconcile.yamlload import (
    JsonPath,
    LoadedDocument,
    dotted,
    may_quote,
    path_text,
)

SCHEMA_FILES = {
    "Key": "key.schema.json",
    "FeatureMapping": "featuremapping.schema.json",
    "FeatureCatalog": "featurecatalog.schema.json",
    "Policy": "policy.schema.json",
}
_PROVIDER_BLOCKS = ("openai", "azure_openai", "openai_compatible")
_BOOL_WORDS = frozenset({"yes", "no", "on", "off", "y", "n", "Yes", "No", "YES", "NO"})
_PATTERN_HELP = {
    "name": "use lowercase letters, digits and '-', 1 to 63 characters, "
    "starting and ending with a letter or digit",
    "fromEnv": "an environment variable name is letters, digits and '_', "
    "not starting with a digit",
    "allowedHosts": "write a hostname (api.example.com), a pattern "
    "(*.example.com) or host:port, in lowercase",
}
_TYPE_WORDS = {
    "string": "text",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "null": "empty",
}


def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of ``kind``, from the installed package or the repo."""
    name = SCHEMA_FILES[kind]
    try:
        from importlib.resources import files

        text = (files("byok_reconcile.schemas") / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        repo = Path(__file__).resolve().parent.parent / "schemas" / name
        text = repo.read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def validator(kind: str) -> Any:
    """The compiled validator of ``kind`` (built once per process).

    Its ``pattern`` follows ECMA-262 like jsonschema-rs: ``$`` matches only
    at the very end, so ``"abc\n"`` is not a valid name (Python's ``$``
    would also match before a final newline).
    """
    from jsonschema import Draft202012Validator, validators

    full = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
    return full(load_schema(kind))


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_DOLLAR = re.compile(r"\\.|\[(?:\\.|[^\]])*\]|\$")


@functools.cache
def _ecma(pattern: str) -> re.Pattern[str]:
    r"""``pattern`` compiled with every ``$`` anchor (not escaped, not in a
    character class) made ``\Z``: the end of the text, as in ECMA-262."""

    def swap(match: re.Match[str]) -> str:
        return r"\Z" if match.group() == "$" else match.group()

    return re.compile(_DOLLAR.sub(swap, pattern))


@functools.cache
def fast_validator(kind: str) -> Any | None:
    """A compiled (Rust) validator of ``kind``, or None without jsonschema-rs.

    It only answers "valid or not": most documents are valid, and for them
    the pure-Python validator (slow to import and to run) is never needed.
    Its errors still come from :func:`validator`, which words them.
    """
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - the wheel is a dependency
        return None
    return jsonschema_rs.Draft202012Validator(load_schema(kind))


# Errors past these limits come straight from jsonschema-rs: the pure-Python
# validator would first spend seconds on the oversized list (uniqueItems).
_SIZE_LIMITS = frozenset({"maxItems", "maxProperties", "maxLength"})
_FAST_ERRORS = 50


def check(kind: str, doc: LoadedDocument, file: str) -> list[Problem]:
    """Validate one document against its kind's schema.

    jsonschema-rs decides; the pure-Python validator only words the errors
    of an invalid document. Should it find none where jsonschema-rs found
    some, the document is still invalid: jsonschema-rs's errors are reported.
    """
    fast = fast_validator(kind)
    if fast is None:
        return _worded(kind, doc, file)
    if fast.is_valid(doc.data):
        return []
    errors = list(itertools.islice(fast.iter_errors(doc.data), _FAST_ERRORS))
    sizes = [e for e in errors if _keyword(e) in _SIZE_LIMITS]
    if sizes:
        return [_fast_problem(kind, e, doc, file) for e in sizes]
    worded = _worded(kind, doc, file)
    return worded or [_fast_problem(kind, e, doc, file) for e in errors]


def _keyword(error: Any) -> str:
    path = list(error.schema_path)
    return str(path[-1]) if path else ""


def _fast_problem(kind: str, error: Any, doc: LoadedDocument, file: str) -> Problem:
    """A jsonschema-rs error in plain words; never its own message, which
    quotes the value."""
    path: JsonPath = tuple(error.instance_path)
    keyword = _keyword(error)
    line, col = doc.mark(path)
    if keyword in _SIZE_LIMITS:
        limit = _schema_value(kind, list(error.schema_path))
        message, hint = _size_message(path, keyword, limit)
    else:
        message = f"{dotted(path)} does not match the schema ({keyword})"
        hint = "compare it with the schema under schemas/"
    return Problem(file, line, col, message, "schema", path=path_text(path), hint=hint)


def _schema_value(kind: str, schema_path: list[Any]) -> object:
    node: Any = _schema(kind)
    for step in schema_path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return "?"
    return node


@functools.cache
def _schema(kind: str) -> dict[str, Any]:
    return load_schema(kind)


def _size_message(path: JsonPath, keyword: str, limit: object) -> tuple[str, str]:
    what = {
        "maxItems": f"lists more than {limit} entries",
        "maxProperties": f"has more than {limit} entries",
        "maxLength": f"is longer than {limit} characters",
    }[keyword]
    hint = "byok documents are small; check the file, or split it"
    return f"{dotted(path)} {what}", hint


def _worded(kind: str, doc: LoadedDocument, file: str) -> list[Problem]:
    errors = list(_leaves(validator(kind).iter_errors(doc.data)))
    # A block the provider does not use is one error, not one per field in it.
    unused = [tuple(e.absolute_path) for e in errors if e.validator == "not"]
    problems: list[Problem] = []
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator != "not" and any(path[: len(u)] == u for u in unused):
            continue
        problems.extend(_translate(error, doc, file))
    return problems


def _leaves(errors: Iterable[Any]) -> Iterator[Any]:
    """Errors from the branch that applies: for anyOf/oneOf, the causes."""
    for error in errors:
        if error.validator in ("anyOf", "oneOf") and error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _translate(error: Any, doc: LoadedDocument, file: str) -> list[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    handler = _HANDLERS.get(error.validator, _generic)
    return [
        Problem(file, line, col, message, "schema", path=path_text(at), hint=hint)
        for at, (line, col), message, hint in handler(error, path, doc)
    ]


Finding = tuple[JsonPath, tuple[int, int], str, "str | None"]


def _secret_path(path: JsonPath) -> bool:
    return not may_quote(path)


def _required(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    # jsonschema raises one error per missing name: "'x' is a required property"
    missing = error.message.rsplit(" is a required property", 1)[0].strip("'\"")
    where = dotted(path)
    message = f"{where} is missing the required property '{missing}'"
    hint = _required_hint(path, missing, doc)
    return [(path, doc.key_mark(path), message, hint)]


def _required_hint(path: JsonPath, missing: str, doc: LoadedDocument) -> str:
    if path == ("spec",) and missing in _PROVIDER_BLOCKS:
        return f"add a '{missing}' block with the provider's connection settings"
    if path == ("spec",) and missing == "models":
        return "list the models this key must serve: models: [gpt-4o]"
    return f"add '{missing}'"


def _additional(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    known = list(error.schema.get("properties", {}))
    found: list[Finding] = []
    instance = error.instance if isinstance(error.instance, dict) else {}
    for name in instance:
        if name in known:
            continue
        at = (*path, name)
        mark = doc.key_mark(at)
        if _secret_path(path):
            # The name itself might be a pasted key: never echo it.
            message = f"{dotted(path)} holds a property it does not take"
            hint = "apiKey takes either {fromFile, key} or {fromEnv}, nothing else"
            at = path
        elif looks_like_key(name):
            message = f"unknown property {HIDDEN} in {dotted(path)}"
            hint = "keep keys only in spec.apiKey, encrypted; rotate this one"
        else:
            message = f"unknown property '{name}' in {dotted(path)}"
            hint = _did_you_mean(name, known) or f"known: {', '.join(known)}"
        found.append((at, mark, message, hint))
    return found


def _did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the nearest known name, if one is close."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    if not close and len(name) >= 3:
        close = [k for k in by_lower if k.startswith(name.lower())][:1]
    return f"did you mean '{by_lower[close[0]]}'?" if close else None


def _not(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    name = path[-1] if path else ""
    data: Any = doc.data
    provider = data.get("spec", {}).get("provider")
    if name == "models":
        message = f"provider {provider} does not take spec.models"
        hint = "list deployments under spec.azure_openai.deployments instead"
    else:
        message = f"spec.{name} is not used with provider {provider}"
        hint = f"put the connection settings under spec.{provider}"
    return [(path, doc.key_mark(path), message, hint)]


def _type(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    wanted = error.validator_value
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
    message = f"{dotted(path)} must be {words}"
    hint: str | None = None
    raw = doc.raw.get(path)
    if "string" in wanted and raw is not None and may_quote(path, raw):
        message += f", but '{raw}' without quotes is {_kind_of(error.instance)}"
        hint = f"write it in quotes: {_quoted(path, raw)}"
    elif "boolean" in wanted and error.instance in _BOOL_WORDS:
        message += f", but '{error.instance}' is text in YAML 1.2"
        hint = "write true or false"
    return [(path, doc.mark(path), message, hint)]


def _kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _quoted(path: JsonPath, raw: str) -> str:
    last = path[-1] if path else ""
    if isinstance(last, int):
        return f'- "{raw}"'
    return f'{last}: "{raw}"'


def _pattern(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    value = error.instance
    is_key_name = "propertyNames" in error.absolute_schema_path
    at = (*path, value) if is_key_name and isinstance(value, str) else path
    if is_key_name and at in doc.key_marks:
        mark = doc.key_marks[at]
    else:
        at, mark = path, doc.mark(path)
    field = _pattern_field(path)
    what = "the value" if _secret_path(path) else shown(value)
    message = f"{what} is not a valid {field} in {dotted(path)}"
    return [(at, mark, message, _PATTERN_HELP.get(field, _PATTERN_HELP["name"]))]


def _pattern_field(path: JsonPath) -> str:
    names = [p for p in path if isinstance(p, str)]
    for field in ("fromEnv", "allowedHosts"):
        if field in names:
            return field
    if names and names[-1] == "deployments":
        return "deployment name"
    return "name"


def _enum(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    options = [str(o) for o in error.validator_value]
    message = f"{dotted(path)} must be one of {', '.join(options)}"
    hint = (
        _did_you_mean(str(error.instance), options)
        if isinstance(error.instance, str)
        else None
    )
    return [(path, doc.mark(path), message, hint)]


def _const(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    message = f"{dotted(path)} must be {error.validator_value}"
    return [(path, doc.mark(path), message, None)]


def _min_size(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    last = str(path[-1]) if path else ""
    what = {"models": "model", "deployments": "deployment"}.get(last, "entry")
    message = f"{dotted(path)} is empty: list at least one {what}"
    if error.validator == "minLength":
        message = f"{dotted(path)} must not be empty"
    return [(path, doc.mark(path), message, None)]


def _max_size(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    message, hint = _size_message(path, error.validator, error.validator_value)
    return [(path, doc.mark(path), message, hint)]


def _unique(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    seen: set[str] = set()
    for index, item in enumerate(error.instance):
        text = json.dumps(item, sort_keys=True)
        if text in seen:
            at = (*path, index)
            what = HIDDEN if looks_like_key(text) else json.dumps(item)
            message = f"{dotted(path)} lists {what} twice"
            return [(at, doc.mark(at), message, "remove the repeated entry")]
        seen.add(text)
    return [(path, doc.mark(path), f"{dotted(path)} has repeated entries", None)]


def _generic(error: Any, path: JsonPath, doc: LoadedDocument) -> list[Finding]:
    # jsonschema's own message quotes the value, which may be a secret.
    message = f"{dotted(path)} does not match the schema ({error.validator})"
    return [(path, doc.mark(path), message, None)]


_HANDLERS = {
    "required": _required,
    "additionalProperties": _additional,
    "not": _not,
    "type": _type,
    "pattern": _pattern,
    "enum": _enum,
    "const": _const,
    "minItems": _min_size,
    "minProperties": _min_size,
    "minLength": _min_size,
    "maxItems": _max_size,
    "maxProperties": _max_size,
    "maxLength": _max_size,
    "uniqueItems": _unique,
}
