"""Entry point of the `uniembed` command: parse, dispatch, turn errors into one-line messages."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings

from uniembed import __version__
from uniembed.cli import (
    bind,
    collection,
    demo,
    distill,
    embed,
    graph,
    models,
    serve,
    train,
    train_head,
    upgrade,
)
from uniembed.cli import (
    eval as eval_command,
)
from uniembed.errors import UniembedError
from uniembed.io.writers import remove_pending

COMMANDS = (
    embed,
    eval_command,
    collection,
    distill,
    train,
    train_head,
    bind,
    graph,
    models,
    serve,
    demo,
    upgrade,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uniembed", description="Universal embeddings: encode, evaluate, search."
    )
    parser.add_argument("--version", action="version", version=f"uniembed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so every `with` block cleans up as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    handles_sigterm = (
        args.command != "serve" and threading.current_thread() is threading.main_thread()
    )
    previous = (
        signal.signal(signal.SIGTERM, _on_sigterm) if handles_sigterm else None
    )  # serve: uvicorn drains
    try:
        return args.run(args)
    except UniembedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied on the output...
        print(
            f"error: {exc.filename or ''}: {exc.strerror or exc}".replace("error: : ", "error: "),
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as exc:
        remove_pending()
        print("interrupted: no partial output was written", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if handles_sigterm:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
