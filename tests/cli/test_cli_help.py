"""Every ``--help`` is complete: a description, every option explained, defaults stated."""

from __future__ import annotations

import argparse


def test_every_command_and_option_is_described():
    from maxrf.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, sp in sub.choices.items():
        if not sp.description:
            missing.append(f"{name}: no description")
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            what = "/".join(a.option_strings) or a.dest
            if not a.help:
                missing.append(f"{name} {what}: no help")
            elif a.default not in (None, False) and "default" not in a.help.lower():
                missing.append(f"{name} {what}: default {a.default!r} not stated")
    assert not missing, "\n".join(missing)
