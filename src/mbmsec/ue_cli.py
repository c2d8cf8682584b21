"""``mbmsec ue <command>``: the UE-side tools, gathered from several modules.

Each module in :data:`UE_COMMAND_MODULES` exposes ``register_ue(ue_subparsers)`` and adds its
own sub-commands under ``mbmsec ue`` (setting ``func`` as usual). ``mbmsec.gba.cli`` adds
``bootstrap``; the UE key client adds its own commands by appending its module name here.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["UE_COMMAND_MODULES", "normalize_argv", "register"]

# Modules contributing ``mbmsec ue`` sub-commands, in help order.
UE_COMMAND_MODULES: tuple[str, ...] = ("mbmsec.gba.cli", "mbmsec.ue.cli")


# ``mbmsec ue [--config FILE] [--profile P]`` with no sub-command runs the key client.
DEFAULT_UE_COMMAND = "run"


def normalize_argv(argv: list[str]) -> list[str]:
    """Return ``argv`` with ``run`` inserted after ``ue`` when no ``ue`` sub-command is named.

    ``mbmsec ue --config ue.toml`` is then the same as ``mbmsec ue run --config ue.toml``;
    ``mbmsec ue``, ``mbmsec ue -h`` and ``mbmsec ue bootstrap ...`` are left as they are.
    """
    if not argv or argv[0] != "ue" or len(argv) < 2:
        return argv
    nxt = argv[1]
    if nxt.startswith("-") and nxt not in ("-h", "--help"):
        return [argv[0], DEFAULT_UE_COMMAND, *argv[1:]]
    return argv


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ue`` and every sub-command from :data:`UE_COMMAND_MODULES`."""
    ue = subparsers.add_parser(
        "ue",
        help="UE tools: key client (default: `mbmsec ue [--config FILE]` = `ue run`), bootstrap",
    )
    sub = ue.add_subparsers(dest="ue_command", metavar="UE_COMMAND")
    sub.required = True
    for name in UE_COMMAND_MODULES:
        importlib.import_module(name).register_ue(sub)
