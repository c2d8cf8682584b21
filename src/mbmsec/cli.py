"""Command line entry point: ``mbmsec <command> ...``.

Each command lives in its own module exposing ``register(subparsers)``; the module adds its
parser and sets ``func`` (``Callable[[argparse.Namespace], int]``) as the default. Errors from
the mbmsec family end the process with one readable line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from collections.abc import Sequence

from . import __version__
from .errors import MbmsecError
from .ue_cli import normalize_argv

# Modules that contribute sub-commands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "mbmsec.demo.cli",
    "mbmsec.mikey.cli",
    "mbmsec.bench.cli",
    "mbmsec.gba.cli",
    "mbmsec.ue_cli",
    "mbmsec.bmsc.cli",
    "mbmsec.sim.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="mbmsec", description="MBMS key distribution: BM-SC, UE, MIKEY and GBA tools."
    )
    parser.add_argument("--version", action="version", version=f"mbmsec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(normalize_argv(list(sys.argv[1:] if argv is None else argv)))
    try:
        rc: int = args.func(args)
    except MbmsecError as exc:
        print(f"mbmsec: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable config / input file, port in use, ...
        where = f" {exc.filename}" if exc.filename else ""
        print(f"mbmsec: error: {exc.strerror or exc}:{where}", file=sys.stderr)
        return 2
    except tomllib.TOMLDecodeError as exc:
        print(f"mbmsec: error: bad TOML config: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
