"""The exact YAML loader: YAML 1.2 scalars, places, and every trap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from byok_reconcile.yamlload import (
    MAX_NODES,
    LoadedFile,
    dotted,
    load_bytes,
    path_text,
    resolve_plain,
)


def _load(text: str | bytes) -> LoadedFile:
    data = text.encode() if isinstance(text, str) else text
    return load_bytes(data, "f.yaml")


def _one(text: str | bytes) -> object:
    loaded = _load(text)
    assert not loaded.problems, [str(p) for p in loaded.problems]
    assert len(loaded.documents) == 1
    return loaded.documents[0].data


def _codes(text: str | bytes) -> list[str]:
    return [p.code for p in _load(text).problems]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("False", False),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("~", None),
        ("null", None),
        ("", None),
        ("NULL", None),
        ("nil", "nil"),
        ("42", 42),
        ("-7", -7),
        ("0x1F", 31),
        ("0o17", 15),
        ("0755", "0755"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("3.", 3.0),
        ("2024-01-01", "2024-01-01"),
        ("12:30:00", "12:30:00"),
        ("1:30", "1:30"),
        ("1_000", "1_000"),
        ("gpt-4o", "gpt-4o"),
        ("+12", 12),
        ("0b101", "0b101"),
    ],
)
def test_plain_scalars_follow_yaml_1_2_core(text: str, value: object) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_infinity_and_nan_are_floats() -> None:
    assert resolve_plain("-.inf") == float("-inf")
    nan = resolve_plain(".NaN")
    assert isinstance(nan, float) and nan != nan


def test_quoted_scalars_stay_text() -> None:
    data = _one("a: 'true'\nb: \"3.5\"\nc: !!str 12\nd: '~'\n")
    assert data == {"a": "true", "b": "3.5", "c": "12", "d": "~"}


def test_keys_are_text_and_keep_their_place() -> None:
    loaded = _load("1: a\ntrue: b\nnested:\n  3.5: c\n")
    doc = loaded.documents[0]
    assert doc.data == {"1": "a", "true": "b", "nested": {"3.5": "c"}}
    assert doc.key_marks[("nested", "3.5")] == (4, 3)
    assert doc.marks[("nested", "3.5")] == (4, 8)


def test_raw_text_is_kept_for_unquoted_non_strings() -> None:
    doc = _load("model: 3.50\nok: yes\n").documents[0]
    assert doc.data == {"model": 3.5, "ok": "yes"}
    assert doc.raw[("model",)] == "3.50"
    assert ("ok",) not in doc.raw


def test_explicit_tags() -> None:
    assert _one("a: !!int '12'\nb: !!float 1\nc: !!bool true\n") == {
        "a": 12,
        "b": 1.0,
        "c": True,
    }
    assert _codes("a: !!int abc\n") == ["yaml-tag"]
    assert _codes("a: !!bool yes\n") == ["yaml-tag"]
    assert _codes("a: !!timestamp 2024-01-01\n") == ["yaml-tag"]
    assert _codes("a: !custom x\n") == ["yaml-tag"]
    assert _codes("a: !!set {x}\n") == ["yaml-tag"]


def test_duplicate_keys_name_both_lines() -> None:
    problems = _load("a: 1\nb: 2\na: 3\n").problems
    assert [p.code for p in problems] == ["duplicate-key"]
    assert (problems[0].line, problems[0].col) == (3, 1)
    assert "line 1" in problems[0].message and "line 3" in problems[0].message


def test_duplicate_keys_in_flow_mappings() -> None:
    assert _codes("a: {x: 1, x: 2}\n") == ["duplicate-key"]


def test_merge_keys_explicit_keys_win() -> None:
    text = (
        "base: &b {x: 1, y: 2}\n"
        "m:\n  <<: *b\n  y: 3\n"
        "n:\n  y: 4\n  !!merge <<: *b\n"
        "o:\n  <<: [{x: 5}, *b]\n"
    )
    data = _one(text)
    assert isinstance(data, dict)
    assert data["m"] == {"x": 1, "y": 3}
    assert data["n"] == {"x": 1, "y": 4}
    assert data["o"] == {"x": 5, "y": 2}


def test_nested_merges_resolve() -> None:
    text = "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n"
    data = _one(text)
    assert isinstance(data, dict)
    assert data["c"] == {"x": 1, "y": 2, "z": 3}


def test_merge_of_a_scalar_is_reported() -> None:
    assert _codes("a: {<<: 3}\n") == ["yaml-merge"]


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert _one("a: {'<<': 1}\n") == {"a": {"<<": 1}}


def test_anchors_and_aliases() -> None:
    assert _one("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_alias_bomb_is_stopped() -> None:
    lines = ["a: &a [x,x,x,x,x,x,x,x,x,x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    problems = _load("\n".join(lines) + "\n").problems
    assert [p.code for p in problems] == ["yaml-alias-bomb"]
    assert str(MAX_NODES) in problems[0].message


def test_recursive_alias_is_reported() -> None:
    assert _codes("a: &a\n  b: *a\n") == ["yaml-alias-loop"]
    assert _codes("a: &a\n  <<: *a\n") == ["yaml-alias-loop"]


@pytest.mark.parametrize("depth", [70, 5_000, 200_000])
def test_deep_nesting_is_refused_without_crashing(depth: int) -> None:
    assert _codes("[" * depth + "]" * depth) == ["yaml-too-deep"]


def test_deep_block_nesting_is_refused() -> None:
    assert _codes("- " * 20_000 + "x\n") == ["yaml-too-deep"]


def test_syntax_error_has_place_and_text() -> None:
    problems = _load("a: 1\nb: [1, 2\nc: 3\n").problems
    assert [p.code for p in problems] == ["yaml-syntax"]
    assert problems[0].line == 3
    assert "flow sequence" in problems[0].message


def test_tab_indentation_is_a_syntax_error() -> None:
    assert _codes("a:\n\tb: 1\n") == ["yaml-syntax"]


def test_empty_and_comment_only_files() -> None:
    assert _codes(b"") == ["empty-file"]
    assert _codes("# nothing\n\n   \n") == ["empty-file"]


def test_non_utf8_names_the_byte() -> None:
    problems = _load(b"a: 1\nb: caf\xe9\n").problems
    assert [p.code for p in problems] == ["encoding"]
    assert "byte 11" in problems[0].message
    assert (problems[0].line, problems[0].col) == (2, 7)


def test_control_characters_are_reported() -> None:
    problems = _load("a: 1\nb: x\x07y\n").problems
    assert [p.code for p in problems] == ["yaml-syntax"]
    assert "U+0007" in problems[0].message
    assert problems[0].line == 2


def test_bom_and_crlf_read_like_clean_files() -> None:
    clean = _load("a: 1\nb:\n  c: [x, y]\n").documents[0]
    dirty = _load(b"\xef\xbb\xbfa: 1\r\nb:\r\n  c: [x, y]\r\n").documents[0]
    assert dirty.data == clean.data
    assert dirty.marks == clean.marks


def test_documents_are_counted_like_safe_load_all() -> None:
    import yaml

    text = "---\na: 1\n---\n---\nb: 2\n---\n"
    loaded = _load(text)
    expected = list(yaml.safe_load_all(text))
    assert [d.index for d in loaded.documents] == list(range(len(expected)))
    assert [d.data for d in loaded.documents] == expected


def test_complex_keys_are_refused() -> None:
    assert _codes("? [a]\n: 1\n") == ["yaml-complex-key"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02",
        b"\xff\xfe\x00a",
        b"a: b: c\n",
        b"[",
        b"'unterminated",
        b"*undefined\n",
        b"&a &b x\n",
        b"%YAML 9.9\n---\na\n",
        b"a: |\n  x\n y\n",
        b"\t",
        b"---\n...\n...\n---",
    ],
)
def test_garbage_never_raises(data: bytes) -> None:
    loaded = _load(data)
    assert loaded.problems or loaded.documents is not None


def test_path_words() -> None:
    assert path_text(("spec", "models", 1)) == "$.spec.models[1]"
    assert dotted(("spec", "azure_openai", "apiVersion")) == (
        "spec.azure_openai.apiVersion"
    )
    assert dotted(()) == "the document"


def test_quoted_close_brackets_cannot_hide_deep_flow_nesting() -> None:
    # Each line opens a list for real and closes one only inside quotes.
    text = "".join('[ "]",\n' for _ in range(30_000))
    assert _codes(text) == ["yaml-too-deep"]


def test_commented_close_brackets_cannot_hide_deep_flow_nesting() -> None:
    text = "".join("[ # ]\n" for _ in range(30_000))
    assert _codes(text) == ["yaml-too-deep"]


@pytest.mark.parametrize(
    "text",
    [
        "a:\n- b:\n  - c:\n    - d: 1\n",
        "- - - - x\n",
        "a: {b: [1, {c: [2]}]}\n",
        "a: [\n  [\n    [1]\n  ]\n]\n",
    ],
)
def test_nesting_bound_is_never_below_the_real_depth(text: str) -> None:
    from byok_reconcile.yamlload import _nesting_bound

    depth, deepest = 0, 0
    for event in yaml.parse(text):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    assert _nesting_bound(text) >= deepest


# -- guards found by attacking validate ------------------------------------------


def test_a_long_merge_chain_is_refused_not_a_recursion_error() -> None:
    lines = ["a0: &a0 {x: 1}"]
    lines += [f"a{i}: &a{i} {{<<: *a{i - 1}}}" for i in range(1, 500)]
    lines.append("top: {<<: *a499}")
    loaded = _load("\n".join(lines) + "\n")
    assert "yaml-too-deep" in [p.code for p in loaded.problems]


def test_a_short_merge_chain_still_merges() -> None:
    lines = ["a0: &a0 {x: 1}"]
    lines += [f"a{i}: &a{i} {{<<: *a{i - 1}}}" for i in range(1, 10)]
    assert _one("\n".join(lines) + "\n")["a9"] == {"x": 1}  # type: ignore[index]


@pytest.mark.parametrize("tag", ["!!int", "!!float", "!!bool", "!!null", "!custom"])
@pytest.mark.parametrize(
    "shape",
    [
        "apiKey: {tag} {bait}",
        "apiKey: {{fromEnv: {tag} {bait}}}",
        "apiKey: {{fromFile: {tag} {bait}, key: a}}",
        "apiKey: [{tag} {bait}]",
    ],
)
def test_a_tagged_value_under_api_key_is_never_quoted(tag: str, shape: str) -> None:
    from tests import canary

    bait = canary.make_bait()
    text = "spec:\n  " + shape.format(tag=tag, bait=bait) + "\n"
    problems = _load(text).problems
    assert problems
    for problem in problems:
        canary.assert_no_leak(f"{problem.message} {problem.hint}", "problem")


def test_a_tagged_value_elsewhere_is_quoted() -> None:
    problems = _load("models: !!int gpt-4o\n").problems
    assert "'gpt-4o' is not a valid int" in problems[0].message


def test_a_large_flat_document_is_not_called_an_alias_bomb() -> None:
    text = "items:\n" + "".join(f"- {i}\n" for i in range(MAX_NODES + 1))
    (problem,) = _load(text).problems
    assert problem.code == "yaml-too-large"
    assert "alias" not in problem.message
    assert "byok documents are small" in problem.message


@pytest.mark.parametrize("text", ["---\n", "---\n---\n", "--- # c\n...\n", "---"])
def test_only_document_markers_is_an_empty_file(text: str) -> None:
    assert _codes(text) == ["empty-file"]


def test_parse_values_guards_deep_nesting() -> None:
    from byok_reconcile.errors import ConfigError
    from byok_reconcile.yamlload import parse_values

    with pytest.raises(ConfigError, match="cannot be parsed"):
        parse_values("[" * 30_000)
    assert parse_values("a: 0123e45\n", strings=True) == [{"a": "0123e45"}]
    assert parse_values("a: 1\n") == [{"a": 1}]


def test_read_limited_reads_only_small_regular_files(tmp_path: Path) -> None:
    from byok_reconcile.errors import ConfigError
    from byok_reconcile.yamlload import read_limited

    (tmp_path / "ok.yaml").write_bytes(b"a: 1\n")
    assert read_limited(tmp_path / "ok.yaml") == b"a: 1\n"
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    with open(tmp_path / "big.yaml", "wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: nothing is written
    cases = {
        "fifo.yaml": "is not a regular file",
        "zero.yaml": "is not a regular file",
        "big.yaml": "is larger than 16 MiB",
        "missing.yaml": "does not exist",
        ".": "is a folder",
        "ok.yaml/x": "cannot be read: Not a directory",
    }
    for name, message in cases.items():
        with pytest.raises(ConfigError) as caught:
            read_limited(tmp_path / name)
        assert caught.value.message.startswith(message), name


def test_read_limited_checks_the_bytes_read_not_only_the_size(tmp_path: Path) -> None:
    from byok_reconcile.errors import ConfigError
    from byok_reconcile.yamlload import read_limited

    (tmp_path / "a.yaml").write_bytes(b"12345")
    with pytest.raises(ConfigError, match="larger than"):
        read_limited(tmp_path / "a.yaml", limit=4)
