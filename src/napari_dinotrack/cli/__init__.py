"""The ``napari-dinotrack`` command line: one module per sub-command.

Each command module has ``register(subparsers)``, which adds its sub-parser and sets ``func``
(``func(args) -> int``). Exit codes: 0 success, 2 a problem the user can fix
(:class:`~napari_dinotrack.errors.UserError`: a one-paragraph message on stderr, no traceback),
1 an internal error (with traceback), 130 interrupted. Commands with other outcomes (``batch``:
3 when some videos failed) say so in their help.

Heavy modules (torch, transformers) are imported only by the commands that need them, so
``napari-dinotrack models`` answers quickly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from .. import __version__
from ..errors import UserError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = ("models", "track", "batch", "eval", "settings", "sample", "export", "imports", "render")
"""Sub-command modules of this package, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all sub-commands."""
    parser = argparse.ArgumentParser(
        prog="napari-dinotrack",
        description="Track animal keypoints through videos with DINOv3 patch features.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors itself (code 2), --help is 0
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("napari-dinotrack: interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"napari-dinotrack: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        traceback.print_exc()
        print(f"napari-dinotrack: internal error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
