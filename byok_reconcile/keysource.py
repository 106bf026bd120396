"""Resolve each Key's secret reference into a :class:`Secret`.

Three sources (DESIGN.md "Secrets"): the Key document's own sops-encrypted
file (``inline``), a value inside another sops file (``file``), and an
environment variable (``env``). Each file is decrypted once, however many
keys use it, and the files are decrypted in parallel. A value becomes a
:class:`Secret` as soon as it is found; the decrypted documents are dropped
right after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from byok_reconcile import sopsmeta
from byok_reconcile.errors import (
    ByokError,
    ConfigError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from byok_reconcile.keyshape import HIDDEN, looks_like_env_key
from byok_reconcile.model import Config, KeySpec, SecretRef
from byok_reconcile.secret import Secret


def resolve_secrets(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    max_workers: int | None = None,
) -> dict[str, Secret | ByokError]:
    """Map each key name to its :class:`Secret`, or to the error for it.

    ``env`` defaults to the process environment. One key's failure never
    stops the others.
    """
    found = resolve_each(config, env=env, max_workers=max_workers)
    return dict(sorted(found))


def resolve_each(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    max_workers: int | None = None,
) -> Iterator[tuple[str, Secret | ByokError]]:
    """Yield ``(key name, Secret or error)`` as each secret becomes known:
    environment keys first, then the keys of each file as sops finishes it,
    so that checks can start while other files are still being decrypted.
    """
    from byok_reconcile import sops

    env = os.environ if env is None else env
    paths = {name: source_path(k.secret) for name, k in config.keys.items()}
    by_file: dict[Path, list[str]] = {}
    for name in sorted(config.keys):
        path = paths[name]
        if path is None or config.keys[name].secret.kind == "env":
            yield name, _resolve_one(config.keys[name], path, {}, env)
        else:
            by_file.setdefault(path, []).append(name)
    for path, plain in sops.decrypt_each(by_file, max_workers=max_workers):
        done = {path: plain}
        for name in by_file[path]:
            yield name, _resolve_one(config.keys[name], path, done, env)
        # Drop each decrypted file as soon as its keys are built.
        done.clear()
        del plain


def source_path(ref: SecretRef) -> Path | None:
    """The sops file a reference reads, or None for ``env``.

    ``inline`` reads the Key's own file (``ref.path`` when the loader set it).
    A relative ``file`` path is taken relative to the referring file, as
    DESIGN.md says, unless it already exists as given.
    """
    if ref.kind == "env":
        return None
    if ref.kind == "inline":
        return ref.path or Path(ref.location.file)
    if ref.path is None:
        return None
    if ref.path.is_absolute() or ref.path.exists():
        return ref.path
    # Lexical, like git paths: "keys/../secrets/x" works even without keys/.
    return Path(os.path.normpath(Path(ref.location.file).parent / ref.path))


def _resolve_one(
    key: KeySpec,
    path: Path | None,
    plain: Mapping[Path, bytes | ByokError],
    env: Mapping[str, str],
) -> Secret | ByokError:
    ref = key.secret
    try:
        if ref.kind == "env":
            return _from_env(key, env)
        if path is None:
            raise ConfigError(
                "the fromFile reference has no path",
                file=str(ref.location),
            )
        found = plain.get(path)
        if isinstance(found, ByokError):
            return found
        if found is None:
            raise SecretNotFoundError("was not decrypted", file=os.fspath(path))
        return _wrap(key, extract_value(key, path, found), path)
    except ByokError as exc:
        return exc


def _from_env(key: KeySpec, env: Mapping[str, str]) -> Secret:
    # Unset here is not a configuration error: the same files work where the
    # variable is set (CI with secrets), so this is "unavailable" (exit 3).
    name = key.secret.env or ""
    value = env.get(name, "").strip()
    if not value:
        state = "is empty" if name in env else "is not set"
        # A key pasted where the name belongs is named by no message.
        if looks_like_env_key(name):
            raise SecretUnavailableError(
                f"the fromEnv variable name is {HIDDEN}",
                hint="move the key into sops and rotate it",
                file=str(key.secret.location),
            )
        raise SecretUnavailableError(
            f"the API key comes from the environment variable {name}, "
            f"which {state}",
            hint=f"set {name}, for example from your CI secret store",
            file=str(key.secret.location),
        )
    return Secret(value)


def _wrap(key: KeySpec, value: object, path: Path) -> Secret:
    where = _describe(key.secret)
    if isinstance(value, (Mapping, list)) or value is None:
        kind = "nothing" if value is None else "a structure, not a single value"
        raise SecretNotFoundError(
            f"{where} holds {kind}",
            hint="point the reference at a single string value",
            file=str(key.secret.location),
        )
    text = str(value).strip()
    if not text:
        raise SecretNotFoundError(
            f"{where} is empty",
            hint=f"store the API key in {path}",
            file=str(key.secret.location),
        )
    return Secret(text)


def _describe(ref: SecretRef) -> str:
    if ref.kind == "inline":
        return "spec.apiKey"
    return f"'{ref.key}' in {ref.path}"


# -- reading a decrypted file --------------------------------------------------


def extract_value(key: KeySpec, path: Path, data: bytes) -> object:
    """The raw value ``key`` refers to inside ``data``, a file's bytes.

    Works on a decrypted file and, since sops keeps the structure, on the
    encrypted one alike (plan digests the ``ENC[...]`` value it finds).
    Raises a :class:`~byok_reconcile.errors.ByokError` when there is none.
    """
    ref = key.secret
    fmt = sopsmeta.format_for(path)
    text = data.decode("utf-8", "replace")
    if ref.kind == "inline":
        return _inline_value(key, _yaml_docs(text, path))
    tree = _tree(text, fmt, path)
    if fmt == "binary":
        return tree
    try:
        return sopsmeta.find(tree, ref.key or "")
    except sopsmeta.NotFound:
        raise _missing(key, ref.key or "") from None


def _inline_value(key: KeySpec, docs: list[Any]) -> object:
    index = key.secret.doc_index
    doc = docs[index] if 0 <= index < len(docs) else None
    spec = doc.get("spec") if isinstance(doc, Mapping) else None
    if not isinstance(spec, Mapping) or "apiKey" not in spec:
        raise SecretNotFoundError(
            f"document {index + 1} of its file has no spec.apiKey "
            "after decryption",
            file=str(key.secret.location),
        )
    return spec["apiKey"]


def _missing(key: KeySpec, dotted: str) -> SecretNotFoundError:
    ref = key.secret
    return SecretNotFoundError(
        f"'{dotted}' was not found in {ref.path} after decryption",
        hint="check the key path: dotted like openai.prod, or a variable "
        "name for dotenv files",
        file=str(ref.location),
    )


def _yaml_docs(text: str, path: Path) -> list[Any]:
    # Every scalar stays text (a key like 0123e45 stays intact), under the
    # one guarded loader: a decrypted file nested 30,000 deep is an error.
    try:
        return sopsmeta.load_yaml(text, strings=True)
    except ConfigError:
        # The parser's message could quote a value: say only where it is.
        raise ConfigError(
            "the decrypted YAML cannot be parsed", file=os.fspath(path)
        ) from None


def _tree(text: str, fmt: sopsmeta.Format, path: Path) -> object:
    """The decrypted file's values (JSON and YAML with every scalar as
    text), through sopsmeta's guarded readers."""
    try:
        return sopsmeta.read_values(text, fmt)
    except ConfigError:
        raise ConfigError(
            f"the decrypted {fmt.upper()} cannot be parsed", file=os.fspath(path)
        ) from None
