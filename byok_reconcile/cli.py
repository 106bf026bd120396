"""The ``byok`` command line: parsing only.

Each subcommand lives in ``byok_reconcile.commands.<name>`` as a click
command named ``command`` that hands typed values to a plain ``run`` function.
Subcommands are imported only when invoked, so ``byok validate`` never loads
the provider SDK or the store libraries.
"""

from __future__ import annotations

import importlib
import sys

import click

from byok_reconcile import __version__

SUBCOMMANDS = {
    "validate": "Check documents, schemas, references and secret hygiene.",
    "check": "Ask each provider whether each key works for its models.",
    "render": "Write the resolved mapping artifact.",
    "plan": "Show what apply would change in the target store.",
    "apply": "Make the target store match the configuration.",
    "status": "Show what the target store holds now.",
    "store": "Manage the target store (rotate its key).",
    "init": "Scaffold a new configuration repository.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module = importlib.import_module(f"byok_reconcile.commands.{name}")
        command: click.Command = module.command
        return command

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        rows = list(SUBCOMMANDS.items())
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="byok")
def cli() -> None:
    """Manage LLM provider keys and feature mappings as code."""


def main() -> None:
    try:
        cli.main(prog_name="byok", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
