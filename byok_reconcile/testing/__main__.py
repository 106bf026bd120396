"""``python -m byok_reconcile.testing serve``: run the emulator in the
foreground, print its URL on one line, stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType
from typing import Any

from byok_reconcile.errors import EXIT_USAGE, ByokError
from byok_reconcile.testing.config import DIALECTS, EmulatedKey, load_config
from byok_reconcile.testing.emulator import Emulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m byok_reconcile.testing",
        description="Loopback emulator of OpenAI / Azure OpenAI / compatible "
        "servers, for tests and CI.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve on 127.0.0.1 until stopped")
    serve.add_argument("--config", help="YAML or JSON file: keys, models, "
                       "latency, faults, rate_limits")
    serve.add_argument("--port", type=int, default=0,
                       help="port on 127.0.0.1 (0 picks a free one)")
    serve.add_argument("--key-env", action="append", default=[], metavar="VAR",
                       help="accept the key in environment variable VAR for "
                       "every dialect (repeatable)")
    serve.add_argument("--latency", type=float, help="seconds before each answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        emulator = _build(args)
        emulator.start()
    except ByokError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_USAGE

    def _stop(signum: int, frame: FrameType | None) -> None:
        emulator.stop()

    signal.signal(signal.SIGTERM, _stop)
    print(emulator.url, flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        emulator.stop()
    return 0


def _build(args: argparse.Namespace) -> Emulator:
    kwargs: dict[str, Any] = (
        load_config(args.config).kwargs() if args.config else {}
    )
    extra = []
    for name in args.key_env:
        if not os.environ.get(name):
            raise ByokError(f"--key-env {name}: the variable is not set",
                            hint=f"export {name}=<a fake key>")
        extra.append(EmulatedKey(secret=os.environ[name], dialects=DIALECTS))
    kwargs["keys"] = (*kwargs.get("keys", ()), *extra)
    kwargs["port"] = args.port
    if args.latency is not None:
        kwargs["latency"] = args.latency
    return Emulator(**kwargs)


if __name__ == "__main__":
    sys.exit(main())
