"""Secret hygiene of a Key document: where its key comes from, and that no
key sits in clear anywhere a reviewer (or a log) can read it.

No rule decrypts: sops keeps key names readable, so a ``fromFile`` target's
value can be looked up and seen to be ``ENC[...]`` without any key.
Messages never quote a value that may be a key (:mod:`byok_reconcile.keyshape`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from byok_reconcile.documents import Document
from byok_reconcile.errors import ConfigError
from byok_reconcile.keyshape import looks_like_env_key, looks_like_key, shown
from byok_reconcile.model import SecretRef
from byok_reconcile.results import Problem
from byok_reconcile.sopsmeta import (
    ENC_PATTERN,
    NotFound,
    find,
    format_for,
    inspect_text,
    is_enc_value,
    load_json,
    read_file,
    read_values,
)
from byok_reconcile.yamlload import JsonPath

_API_KEY = ("spec", "apiKey")


def secret_ref(doc: Document) -> tuple[list[Problem], SecretRef | None]:
    """Where the key's secret comes from, or the hygiene problems found.

    Messages never quote the value of ``apiKey``: it may be a real key.
    """
    spec = doc.data.get("spec")
    value = spec.get("apiKey") if isinstance(spec, dict) else None
    if isinstance(value, str):
        return _inline_ref(doc, value)
    if isinstance(value, dict) and "fromEnv" in value:
        return _env_ref(doc, value)
    if isinstance(value, dict) and "fromFile" in value:
        return _file_ref(doc, value)
    return [], None  # a shape error the schema reports


_FROM_ENV = ("spec", "apiKey", "fromEnv")


def _env_ref(
    doc: Document, value: dict[str, Any]
) -> tuple[list[Problem], SecretRef | None]:
    env = value["fromEnv"]
    if isinstance(env, str) and looks_like_env_key(env):
        # An Azure key starting with a letter is a valid variable name: left
        # here, check and plan would print it as "the variable <key>".
        return [_env_is_key(doc)], None
    if not isinstance(env, str) or len(value) != 1:
        return [], None  # a shape error the schema reports
    ref = SecretRef("env", doc.location(_API_KEY), env=env)
    return _env_warning(doc, env), ref


def _env_is_key(doc: Document) -> Problem:
    return doc.problem(
        _FROM_ENV,
        "this looks like an API key pasted where a variable name belongs: "
        "move the key into sops and rotate it",
        "plaintext-secret",
        "fromEnv takes the name of the variable that holds the key, "
        "such as OPENAI_PROD_KEY",
    )


# Variables that hold something other than a provider key: naming one in
# fromEnv would send byok's or sops' own credentials to a provider.
_SOPS_ENV = (
    "SOPS_",
    "AWS_",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "VAULT_",
    "AZURE_CLIENT_",
    "AZURE_TENANT_ID",
    "GNUPGHOME",
)
_SYSTEM_ENV = frozenset(
    {"PATH", "HOME", "USER", "SHELL", "PWD", "LANG", "TMPDIR", "LOGNAME"}
)


def _env_holds(env: str) -> str | None:
    if env.upper().startswith("BYOK_"):
        return "byok's own settings or credentials"
    if env.upper().startswith(_SOPS_ENV):
        return "sops' decryption credentials"
    if env.upper() in _SYSTEM_ENV:
        return "a system setting"
    return None


def _env_warning(doc: Document, env: str) -> list[Problem]:
    holds = _env_holds(env)
    if holds is None:
        return []
    return [
        doc.problem(
            _FROM_ENV,
            f"fromEnv names {env}: this variable holds {holds}, not a provider key",
            "secret-env",
            "name the variable your CI secret store sets for this key, "
            "such as OPENAI_PROD_KEY",
            severity="warning",
        )
    ]


def _inline_ref(doc: Document, value: str) -> tuple[list[Problem], SecretRef | None]:
    if not is_enc_value(value):
        return [_plaintext(doc, value)], None
    if doc.sops is None:
        problem = doc.problem(
            _API_KEY,
            "apiKey holds a sops value, but the file has no sops metadata",
            "sops-metadata",
            "encrypt the file with sops (the sops: block must stay in the file)",
        )
        return [problem], None
    ref = SecretRef(
        "inline", doc.location(_API_KEY), path=doc.path, doc_index=doc.index
    )
    return [], ref


def _plaintext(doc: Document, value: str) -> Problem:
    if doc.sops is not None:
        hint = (
            "the file is sops-encrypted, but its encrypted_regex leaves apiKey in "
            "clear: re-encrypt with --encrypted-regex '^apiKey$', and rotate the key"
        )
    elif not value.strip():
        hint = "give a sops value, {fromFile, key} or {fromEnv}"
    elif value.startswith("ENC["):
        hint = "this sops value is damaged: encrypt the file again with sops"
    else:
        hint = (
            "encrypt it with sops (encrypted_regex: ^apiKey$) or use "
            "{fromFile, key} or {fromEnv}; if this file was ever committed, "
            "the key is in git history: rotate it"
        )
    return doc.problem(
        _API_KEY, "plaintext API key in spec.apiKey", "plaintext-secret", hint
    )


_FROM_FILE = ("spec", "apiKey", "fromFile")
# A problem with a fromFile target: (message, code, hint).
FileProblem = tuple[str, str, str]
_RELATIVE = "the path is relative to this file"


def _file_ref(
    doc: Document, value: dict[str, Any]
) -> tuple[list[Problem], SecretRef | None]:
    raw, key = value.get("fromFile"), value.get("key")
    if not isinstance(raw, str) or not isinstance(key, str) or not raw:
        return [], None
    target = Path(os.path.normpath(doc.path.parent / raw))
    data = _read(target, raw)
    why = data if isinstance(data, tuple) else _content_problem(target, data, raw, key)
    if why is not None:
        message, code, hint = why
        return [doc.problem(_FROM_FILE, message, code, hint)], None
    ref = SecretRef("file", doc.location(_API_KEY), path=target, key=key)
    return [], ref


def _read(target: Path, raw: str) -> bytes | FileProblem:
    """The fromFile target's bytes, or why it cannot be read. Every failure of the
    file system (too long a name, no permission) is an answer here, not an
    exception: the path may be a pasted key and must not reach a traceback."""
    # Named only when it exists: a path that is not there may be a pasted key.
    name = f"fromFile {shown(raw)}" if _exists(target) else "the fromFile target"
    try:
        return read_file(target)
    except ConfigError as exc:
        if exc.message == "does not exist":
            return f"{name} does not exist", "secret-file", _RELATIVE
        return f"{name} {exc.message}", "secret-file", exc.hint or "check the path"
    except ValueError:  # a NUL byte in the path
        return f"{name} is not a valid path", "secret-file", _RELATIVE


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _content_problem(
    target: Path, data: bytes, raw: str, key: str
) -> FileProblem | None:
    """The target must be sops-encrypted, and the value ``key`` names in it
    must be there, single, and ``ENC[...]``."""
    text = data.decode("utf-8", "replace")
    fmt = format_for(target)
    if inspect_text(text, fmt) is None:
        hint = "encrypt it: sops encrypt --in-place FILE"
        return f"fromFile {shown(raw)} is not sops-encrypted", "secret-file", hint
    try:
        if fmt == "binary":
            return _binary_problem(load_json(text), raw)
        return _value_problem(find(read_values(text, fmt), key), raw, key)
    except NotFound:
        return (
            f"no {shown(key)} in {shown(raw)}",
            "secret-file",
            "check the key: dotted like openai.prod, or the variable name "
            "in a dotenv file",
        )
    except ConfigError as exc:
        return f"fromFile {shown(raw)} {exc.message}", "secret-file", exc.hint or ""


def _binary_problem(tree: object, raw: str) -> FileProblem | None:
    # A sops binary file is JSON {"data": ENC[...], "sops": ...}; its whole
    # decrypted data is the key, whatever ``key`` says.
    data = tree.get("data") if isinstance(tree, dict) else None
    return None if is_enc_value(data) else _in_clear("the data", raw)


def _value_problem(value: object, raw: str, key: str) -> FileProblem | None:
    if isinstance(value, (dict, list)):
        return (
            f"{shown(key)} in {shown(raw)} holds a structure, not a single value",
            "secret-file",
            "point the key at a single encrypted value",
        )
    return None if is_enc_value(value) else _in_clear(shown(key), raw)


def _in_clear(what: str, raw: str) -> FileProblem:
    return (
        f"plaintext API key: {what} in {shown(raw)} is not encrypted",
        "plaintext-secret",
        "the file's encrypted_regex or unencrypted_suffix leaves the value in "
        "clear: encrypt the file again so that sops covers it, and rotate the key",
    )


# -- key-shaped values outside spec.apiKey -------------------------------------

# Where a rule of its own words the problem (plaintext apiKey, fromEnv).
_OWN_RULE = frozenset({_API_KEY, _FROM_ENV})


def key_shaped(doc: Document) -> list[Problem]:
    """A problem for every mapping key and value that looks like an API key,
    anywhere in the document (descriptions and labels too): a key belongs
    only in spec.apiKey, encrypted. sops ciphertext is not a key."""
    found: list[Problem] = []
    if _any_shaped(doc.data):  # the cheap pass, with no paths to build
        _walk(doc, doc.data, (), found)
    return found


def _any_shaped(data: object) -> bool:
    """Whether anything in ``data`` looks like a key: a plaintext apiKey
    counts here (the walk then leaves it to its own rule), ciphertext not.
    One search over every text joined, ciphertext lines cut out: nothing
    key-shaped spans a newline."""
    texts: list[str] = []
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            texts.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            texts.append(node)
    return looks_like_key(_ENC_LINE.sub("", "\n".join(texts)))


_ENC_LINE = re.compile(r"^" + ENC_PATTERN + r"$", re.MULTILINE)


def _is_ciphertext(text: str) -> bool:
    return text.startswith("ENC[") and is_enc_value(text)


def _walk(doc: Document, node: object, path: JsonPath, found: list[Problem]) -> None:
    if isinstance(node, dict):
        for name, value in node.items():
            child = (*path, name)
            if looks_like_key(name):
                found.append(_shaped(doc, child, key=True))
            _walk(doc, value, child, found)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _walk(doc, value, (*path, index), found)
    elif (
        isinstance(node, str)
        and path not in _OWN_RULE
        and not _is_ciphertext(node)
        and looks_like_key(node)
    ):
        found.append(_shaped(doc, path, key=False))


def _shaped(doc: Document, path: JsonPath, *, key: bool) -> Problem:
    return doc.problem(
        path,
        "this looks like an API key: keep keys only in spec.apiKey, encrypted",
        "plaintext-secret",
        "remove it from here; if this file was ever committed, the key is in "
        "git history: rotate it",
        key=key,
    )
