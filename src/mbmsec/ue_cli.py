"""``mbmsec ue <command>``: the UE-side tools, gathered from several modules.

Each module in :data:`UE_COMMAND_MODULES` exposes ``register_ue(ue_subparsers)`` and adds its
own sub-commands under ``mbmsec ue`` (setting ``func`` as usual). ``mbmsec.gba.cli`` adds
``bootstrap``; the UE key client adds its own commands by appending its module name here.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["UE_COMMAND_MODULES", "register"]

# Modules contributing ``mbmsec ue`` sub-commands, in help order.
UE_COMMAND_MODULES: tuple[str, ...] = ("mbmsec.gba.cli", "mbmsec.ue.cli")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ue`` and every sub-command from :data:`UE_COMMAND_MODULES`."""
    ue = subparsers.add_parser("ue", help="UE tools: GBA bootstrap, key client, ...")
    sub = ue.add_subparsers(dest="ue_command", metavar="UE_COMMAND")
    sub.required = True
    for name in UE_COMMAND_MODULES:
        importlib.import_module(name).register_ue(sub)
