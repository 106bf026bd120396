"""What shows while checks run: streamed key lines or a progress line."""

from __future__ import annotations

import io

import pytest

from byok_reconcile import output
from byok_reconcile.output.common import Options
from byok_reconcile.output.progress import CheckProgress
from byok_reconcile.results import KeyResult
from tests.test_output_samples import full_report, keys


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def feed(progress: CheckProgress, results: list[KeyResult]) -> None:
    for result in results:
        progress.on_result(result)
    progress.done()


def test_text_without_tty_streams_full_key_lines_once() -> None:
    out, err = io.StringIO(), Tty()
    progress = CheckProgress("text", out=out, err=err)
    found = keys()
    feed(progress, list(reversed(found)))  # in the order they finish
    assert progress.streams_keys and err.getvalue() == ""
    heads = [line for line in out.getvalue().splitlines() if line.startswith("key")]
    assert [h.split()[1] for h in heads] == ["local-vllm", "azure-eastus",
                                             "openai-prod"]
    assert "  gpt4o-prod: model_unavailable - not found (404)" in out.getvalue()
    # The report then leaves the keys out but keeps problems and summary.
    report = full_report()
    rest = output.render(report, "text", Options(keys_streamed=True))
    assert not [line for line in rest.splitlines() if line.startswith("key ")]
    assert "gpt4o-prod" not in rest
    assert report.summary in rest and "plaintext API key" in rest


def test_text_streaming_honours_quiet_and_verbose() -> None:
    out = io.StringIO()
    feed(CheckProgress("text", quiet=True, out=out, err=io.StringIO()), keys())
    assert [line.split()[1] for line in out.getvalue().splitlines()
            if line.startswith("key")] == ["azure-eastus"]
    out = io.StringIO()
    feed(CheckProgress("text", verbose=1, out=out, err=io.StringIO()), keys())
    assert "(request req_ok1)" in out.getvalue() and "  mini: valid" in out.getvalue()


def test_text_on_a_terminal_shows_one_rewritten_progress_line() -> None:
    out, err = Tty(), Tty()
    progress = CheckProgress("text", out=out, err=err)
    feed(progress, keys())
    assert not progress.streams_keys and out.getvalue() == ""
    shown = err.getvalue()
    assert "\n" not in shown  # rewritten in place, never scrolling
    assert shown.count("\r\x1b[K") == 4  # three updates and the final clear
    assert "checking keys: 3 done" in shown and shown.endswith("\r\x1b[K")


@pytest.mark.parametrize("fmt", ["json", "github", "markdown"])
@pytest.mark.parametrize("err_tty", [True, False])
def test_documents_get_progress_only_on_a_terminal_stderr(
    fmt: str, err_tty: bool
) -> None:
    out = io.StringIO()
    err = Tty() if err_tty else io.StringIO()
    progress = CheckProgress(fmt, out=out, err=err)
    feed(progress, keys())
    assert out.getvalue() == "" and not progress.streams_keys
    assert ("checking keys" in err.getvalue()) is err_tty


def test_quiet_shows_no_progress_line() -> None:
    err = Tty()
    feed(CheckProgress("json", quiet=True, out=io.StringIO(), err=err), keys())
    assert err.getvalue() == ""


def test_nothing_checked_leaves_the_terminal_alone() -> None:
    err = Tty()
    feed(CheckProgress("text", out=Tty(), err=err), [])
    assert err.getvalue() == ""
