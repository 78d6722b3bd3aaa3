"""``maxrf report DATASTACK``: one self-contained HTML file to share the results."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report (spectra, element maps, hotmax, speckles)",
        description="Write one HTML file with everything embedded: it opens in any browser, "
        "with no network and no Python. Layers not computed yet are marked so.",
    )
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument(
        "-o", "--output", help="output .html file (default: NAME_report.html next to the datastack)"
    )
    p.add_argument("--title", help="page title (default: 'MA-XRF report: NAME')")
    p.add_argument(
        "--max-map-side",
        type=int,
        default=1024,
        help="maps larger than this many pixels are shown reduced (default 1024)",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def run(args) -> int:
    from maxrf.errors import ParameterError
    from maxrf.report import write_report

    if args.max_map_side < 16:
        raise ParameterError(f"--max-map-side must be at least 16, got {args.max_map_side}")
    path = write_report(args.datastack, args.output, title=args.title, max_map_side=args.max_map_side)
    if not args.quiet:
        print(f"wrote {path}")
    return 0
