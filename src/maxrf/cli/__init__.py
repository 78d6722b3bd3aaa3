"""The ``maxrf`` command line: a thin layer over the library calls a notebook would use.

Each sub-command lives in its own module of this package with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``. Errors of the library
(:class:`maxrf.errors.MaxrfError`) are printed as one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from maxrf import __version__
from maxrf.errors import MaxrfError

# sub-command name -> module in maxrf.cli
COMMANDS = {
    "convert": "convert",
    "info": "info",
    "calibrate": "calibrate",
    "hotmax": "hotmax",
    "identify": "identify",
    "maps": "maps",
    "speckles": "speckles",
    "segment": "segment",
    "report": "report",
    "view": "view",
    "verify": "verify",
    "demo": "demo",
    "decompose": "decompose",
    "cluster": "cluster",
    "export": "export",
    "register": "register",
    "overlay": "overlay",
    "mosaic": "mosaic",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maxrf", description="MA-XRF scans into calibrated spectra and element maps."
    )
    parser.add_argument("--version", action="version", version=f"maxrf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(f"maxrf.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"maxrf.cli.{module}":
                continue  # command not built yet
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
        if not p.description:  # --help always says what the command does
            p.description = next((a.help for a in sub._choices_actions if a.dest == p.prog.split()[-1]),
                                 None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except MaxrfError as exc:
        print(f"maxrf {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        from maxrf import interrupt

        interrupt.ignore_further()
        print(f"maxrf {args.command}: interrupted; nothing was left half-written", file=sys.stderr)
        return 130
    finally:
        from maxrf import interrupt

        # handlers a command installed (convert) end with the command; run as the process
        # (no argv given), a signal after the answer is ignored rather than fatal
        interrupt.restore(exiting=argv is None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
