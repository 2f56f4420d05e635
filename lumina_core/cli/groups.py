"""argparse building blocks shared by the ``lumina`` command and the command groups defined beside it."""

from __future__ import annotations

import argparse


def add_command_group(
    sub: argparse._SubParsersAction, name: str, **kwargs: str
) -> argparse._SubParsersAction:
    """Add ``lumina NAME SUBCOMMAND`` (``kwargs``: ``help``, ``description``) and return the action to add its
    sub-commands to: the one chosen lands in ``args.<NAME>_command``, and ``lumina NAME`` alone prints the
    group's help."""
    p = sub.add_parser(name, **kwargs)
    p.set_defaults(handler="help", help_parser=p)
    return p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
