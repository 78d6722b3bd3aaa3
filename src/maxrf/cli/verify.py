"""``maxrf verify DATASTACK``: check every chunk and every layer."""

from __future__ import annotations

from maxrf.cli._common import add_scheduler, client_from, print_json


def add_parser(sub):
    p = sub.add_parser("verify", help="check every chunk's checksum and every layer")
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_scheduler(p)
    return p


def run(args) -> int:
    from maxrf.verify import verify

    report = verify(args.datastack, client=client_from(args))
    if args.json:
        print_json(report.to_dict())
    else:
        for problem in report.problems:
            print(f"PROBLEM {problem}")
        state = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"{report.path}: {state} ({report.chunks_checked} chunks, "
              f"{report.layers_checked} layers checked)")
    return 0 if report.ok else 2
