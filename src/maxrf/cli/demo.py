"""``maxrf demo [DIR]``: generate the default scan and run the whole workflow on it."""

from __future__ import annotations

from maxrf.cli._common import add_scheduler, client_from


def add_parser(sub):
    p = sub.add_parser("demo", help="run the whole workflow on the embedded default scan")
    p.add_argument("folder", nargs="?", default="demo-output", help="output folder (default demo-output)")
    add_scheduler(p)
    return p


def run(args) -> int:
    from maxrf.demo import run_demo

    summary = run_demo(args.folder, log=lambda msg: print(msg, flush=True),
                       client=client_from(args))
    print(f"\nReport: {summary['report']}")
    return 0
