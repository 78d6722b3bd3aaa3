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
    p.add_argument("--pixel-size-mm", type=float, default=None, metavar="MM",
                   help="scan pixel size in mm, for the maps' scale bars (default: from the "
                        "scan's header; no scale bar without one)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def run(args) -> int:
    from maxrf.errors import ParameterError
    from maxrf.report import write_report

    if args.max_map_side < 16:
        raise ParameterError(f"--max-map-side must be at least 16, got {args.max_map_side}")
    if args.pixel_size_mm is not None and not args.pixel_size_mm > 0:
        raise ParameterError(f"--pixel-size-mm must be > 0, got {args.pixel_size_mm}")
    path = write_report(args.datastack, args.output, title=args.title,
                        max_map_side=args.max_map_side, pixel_size_mm=args.pixel_size_mm)
    if not args.quiet:
        print(f"wrote {path}")
    return 0
