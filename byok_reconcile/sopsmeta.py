"""Read sops metadata without decrypting: is a file encrypted, and for whom.

Pure parsing, no subprocess and no heavy import, so ``byok validate`` can
tell an encrypted file from a plaintext one, and a decryption error can say
which recipients a file was made for. sops stores its metadata under a
top-level ``sops`` key (YAML, JSON, binary), in a ``[sops]`` section (INI) or
as flattened ``sops_*=`` lines (dotenv).

It also offers the guarded readers for sops files and their decrypted
output (:func:`read_file`, :func:`load_yaml`, :func:`load_json`): a size
cap, regular files only, bounded nesting, and errors that never quote the
content.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from byok_reconcile.errors import ConfigError

Format = Literal["yaml", "json", "dotenv", "ini", "binary"]
RecipientKind = Literal["age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault"]

_EXTENSIONS: dict[str, Format] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".env": "dotenv",
    ".ini": "ini",
}
# A sops ciphertext value, unanchored (for callers that search text).
ENC_PATTERN = (
    r"ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,"
    r"tag:[A-Za-z0-9+/=]+,type:[a-z]+\]"
)
_ENC_RE = re.compile(f"^{ENC_PATTERN}$")
# Keys that mark a real sops block; a plain config may have a ``sops:`` key.
_MARKERS = ("mac", "version", "lastmodified")
# Which field names the recipient in each kind of master key.
_ID_FIELDS: dict[RecipientKind, tuple[str, ...]] = {
    "age": ("recipient",),
    "pgp": ("fp",),
    "kms": ("arn",),
    "gcp_kms": ("resource_id",),
    "azure_kv": ("vault_url", "name"),
    "hc_vault": ("vault_address", "engine_path", "key_name"),
}
_HINTS: dict[RecipientKind, str] = {
    "age": "set SOPS_AGE_KEY_FILE to the age identity file (or SOPS_AGE_KEY)",
    "pgp": "import the PGP secret key into gpg (GNUPGHOME)",
    "kms": "provide AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID/...)",
    "gcp_kms": "provide Google credentials (GOOGLE_APPLICATION_CREDENTIALS)",
    "azure_kv": "provide Azure credentials (AZURE_CLIENT_ID/AZURE_TENANT_ID/...)",
    "hc_vault": "provide Vault access (VAULT_ADDR and VAULT_TOKEN)",
}


@dataclass(frozen=True)
class Recipient:
    """One master key a file is encrypted for. ``group`` is the key group
    index when the file uses ``key_groups``, else None."""

    kind: RecipientKind
    id: str
    group: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class SopsMeta:
    """What a sops-encrypted file says about itself (never a value)."""

    format: Format
    recipients: tuple[Recipient, ...] = ()
    encrypted_regex: str | None = None
    unencrypted_regex: str | None = None
    encrypted_suffix: str | None = None
    unencrypted_suffix: str | None = None
    encrypted_comment_regex: str | None = None
    unencrypted_comment_regex: str | None = None
    mac_only_encrypted: bool = False
    has_mac: bool = False
    lastmodified: str | None = None
    version: str | None = None

    def encrypts_key(self, name: str) -> bool:
        """Whether sops encrypts the value of a key called ``name`` here."""
        if self.encrypted_regex is not None:
            return re.search(self.encrypted_regex, name) is not None
        if self.unencrypted_regex is not None:
            return re.search(self.unencrypted_regex, name) is None
        if self.encrypted_suffix is not None:
            return name.endswith(self.encrypted_suffix)
        suffix = self.unencrypted_suffix or "_unencrypted"
        return not name.endswith(suffix)

    def describe_recipients(self) -> str:
        """The recipients in one line, e.g. ``age:age1abc..., pgp:ABCD...``."""
        if not self.recipients:
            return "no recipients listed"
        return ", ".join(str(r) for r in self.recipients)

    def key_hint(self) -> str:
        """What to provide so sops can decrypt, one clause per key kind."""
        kinds = dict.fromkeys(r.kind for r in self.recipients)
        if not kinds:
            return "provide a key that sops can use for this file"
        return "; or ".join(_HINTS[k] for k in kinds)


def format_for(path: Path | str) -> Format:
    """The sops format of ``path`` from its extension; ``binary`` otherwise."""
    return _EXTENSIONS.get(Path(path).suffix.lower(), "binary")


def is_enc_value(value: object) -> bool:
    """Whether ``value`` is a sops ciphertext ``ENC[AES256_GCM,...]``."""
    return isinstance(value, str) and _ENC_RE.match(value) is not None


def inspect_file(path: Path) -> SopsMeta | None:
    """The sops metadata of ``path``, or None when it is not sops-encrypted
    (or cannot be read or parsed: the caller reports that on its own)."""
    try:
        text = read_file(path).decode("utf-8")
    except (ConfigError, UnicodeDecodeError):
        return None
    return inspect_text(text, format_for(path))


def read_file(path: Path | str) -> bytes:
    """The bytes of a sops file or fromFile target: a regular file of at
    most 16 MiB. Raises :class:`ConfigError` with a predicate that does not
    name the path ("cannot be read: Permission denied")."""
    from byok_reconcile.yamlload import read_limited

    return read_limited(path)


def load_yaml(text: str, *, strings: bool = False) -> list[object]:
    """Every document of a YAML text as plain values, through the one
    guarded loader (nesting, size, alias bombs). ``strings`` keeps every
    scalar as written. Raises :class:`ConfigError`, never quoting ``text``.
    """
    from byok_reconcile.yamlload import parse_values

    return parse_values(text, strings=strings)


def load_json(text: str, **options: Any) -> object:
    """``json.loads`` with a size cap and bounded nesting (``options`` go to
    it). Raises :class:`ConfigError`, never quoting ``text``."""
    from byok_reconcile.yamlload import MAX_FILE_BYTES

    if len(text) > MAX_FILE_BYTES:
        raise ConfigError("is too large to be a sops file")
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise ConfigError("is nested too deeply to be a sops file") from None
    except ValueError as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError(f"cannot be parsed as JSON {where}".strip()) from None


def read_values(text: str, fmt: Format) -> object:
    """The data of a sops file, encrypted or decrypted, as plain values:
    the first YAML document or the JSON value with every scalar as text,
    ``NAME -> value`` for dotenv, ``section.option -> value`` for INI, and
    the whole text for a binary file. Raises :class:`ConfigError`, never
    quoting ``text``."""
    if fmt == "dotenv":
        return dotenv_pairs(text)
    if fmt == "ini":
        return ini_pairs(text)
    if fmt == "json":
        return load_json(text, parse_float=str, parse_int=str)
    if fmt == "yaml":
        docs = load_yaml(text, strings=True)
        return docs[0] if docs else None
    return text


class NotFound(LookupError):
    """:func:`find` found nothing at the dotted path (no message: the caller
    words it)."""


def find(tree: object, dotted: str) -> object:
    """The value at ``dotted`` (``openai.prod``, ``keys.0``) in ``tree``.

    A literal key with dots wins over the nested path it could also mean.
    sops keeps key names readable, so this works on an encrypted file too.
    Raises :class:`NotFound`.
    """
    if isinstance(tree, Mapping) and dotted in tree:
        return tree[dotted]
    node = tree
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise NotFound(dotted)
    return node


def inspect_text(text: str, fmt: Format) -> SopsMeta | None:
    """Like :func:`inspect_file`, for file content already read."""
    if fmt == "dotenv":
        return _from_flat(dotenv_pairs(text), "sops_", fmt)
    if fmt == "ini":
        return _from_flat(_ini_section(text), "", fmt)
    if fmt == "yaml":
        return inspect_documents(_yaml_documents(text), fmt)
    return _inspect_json(text, fmt)


def inspect_documents(docs: Iterable[object], fmt: Format = "yaml") -> SopsMeta | None:
    """The metadata of already-parsed documents (the first one holding a
    ``sops`` block), so a caller that parsed the YAML need not parse twice."""
    for doc in docs:
        if isinstance(doc, Mapping):
            meta = _from_block(doc.get("sops"), fmt)
            if meta is not None:
                return meta
    return None


def _yaml_documents(text: str) -> list[object]:
    try:
        return load_yaml(text)
    except ConfigError:
        return []


def _inspect_json(text: str, fmt: Format) -> SopsMeta | None:
    try:
        doc = load_json(text)
    except ConfigError:
        return None
    if not isinstance(doc, dict):
        return None
    # sops stores binary files as JSON {"data": ..., "sops": ...}.
    if fmt != "json" and set(doc) != {"data", "sops"}:
        return None
    return _from_block(doc.get("sops"), fmt)


def _from_block(block: object, fmt: Format) -> SopsMeta | None:
    if not isinstance(block, Mapping) or not any(m in block for m in _MARKERS):
        return None

    def text(name: str) -> str | None:
        value = block.get(name)
        return None if value is None or value == "" else str(value)

    return SopsMeta(
        format=fmt,
        recipients=tuple(_recipients(block)),
        encrypted_regex=text("encrypted_regex"),
        unencrypted_regex=text("unencrypted_regex"),
        encrypted_suffix=text("encrypted_suffix"),
        unencrypted_suffix=text("unencrypted_suffix"),
        encrypted_comment_regex=text("encrypted_comment_regex"),
        unencrypted_comment_regex=text("unencrypted_comment_regex"),
        mac_only_encrypted=str(block.get("mac_only_encrypted", "")).lower() == "true",
        has_mac=bool(block.get("mac")),
        lastmodified=text("lastmodified"),
        version=text("version"),
    )


def _recipients(block: Mapping[str, Any]) -> list[Recipient]:
    found = _recipients_in(block, None)
    groups = block.get("key_groups")
    if isinstance(groups, list):
        for index, group in enumerate(groups):
            if isinstance(group, Mapping):
                found += _recipients_in(group, index)
    return found


def _recipients_in(block: Mapping[str, Any], group: int | None) -> list[Recipient]:
    found = []
    for kind, fields in _ID_FIELDS.items():
        entries = block.get(kind)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, Mapping):
                parts = [str(entry[f]) for f in fields if entry.get(f)]
                if parts:
                    found.append(Recipient(kind, "/".join(parts), group))
    return found


# -- flattened layouts (dotenv, ini) ------------------------------------------

_LIST_RE = re.compile(r"__list_(\d+)(?:__map_)?")


def dotenv_pairs(text: str) -> dict[str, str]:
    """``NAME=value`` lines of a dotenv text; comments and blanks skipped."""
    pairs = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            pairs[name.strip()] = value
    return pairs


def ini_pairs(text: str) -> dict[str, str]:
    """``section.option -> value`` of an INI text (sops's INI output);
    empty when it cannot be parsed."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    return {
        f"{section}.{option}": value
        for section in parser.sections()
        for option, value in parser.items(section)
    }


def _ini_section(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped == "[sops]"
        elif inside and "=" in stripped:
            name, _, value = stripped.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def _from_flat(pairs: Mapping[str, str], prefix: str, fmt: Format) -> SopsMeta | None:
    block: dict[str, Any] = {}
    for name, value in pairs.items():
        if name.startswith(prefix):
            _insert(block, _flat_path(name[len(prefix) :]), value)
    return _from_block(block, fmt)


def _flat_path(name: str) -> list[str | int]:
    """``age__list_0__map_recipient`` -> ``["age", 0, "recipient"]``."""
    path: list[str | int] = []
    pos = 0
    for match in _LIST_RE.finditer(name):
        if match.start() > pos:
            path.append(name[pos : match.start()])
        path.append(int(match.group(1)))
        pos = match.end()
    if pos < len(name):
        path.append(name[pos:])
    return path


def _insert(node: Any, path: list[str | int], value: str) -> None:
    if not path:
        return
    for step, following in itertools.pairwise(path):
        node = _child(node, step, [] if isinstance(following, int) else {})
    _child(node, path[-1], value, replace=True)


def _child(node: Any, step: str | int, default: Any, *, replace: bool = False) -> Any:
    if isinstance(node, list) and isinstance(step, int):
        node.extend([None] * (step + 1 - len(node)))
        if node[step] is None or replace:
            node[step] = default
        return node[step]
    if isinstance(node, dict) and isinstance(step, str):
        if replace:
            node[step] = default
        return node.setdefault(step, default)
    return {}  # an inconsistent flat layout: drop the entry
