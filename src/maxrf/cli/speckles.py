"""``maxrf speckles DATASTACK --element Fe``: particles in an element map, as a table."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("speckles", help="find speckles (particles) in an element map")
    p.add_argument("datastack", help="the .datastack folder (with element or peak maps)")
    from maxrf.cli.segment import add_element_options

    add_element_options(p)
    p.add_argument("--max-area", type=float, default=100, help="largest speckle area, pixels (default 100)")
    p.add_argument("--factor", type=float, default=3.0,
                   help="keep speckles whose peak exceeds FACTOR x the map's noise level (default 3)")
    p.add_argument("--out", help="write the speckle table as CSV")
    p.add_argument("--plot", help="write the map with the speckles circled (PNG/SVG)")
    from maxrf.cli.segment import add_options

    add_options(p, element=False)  # --classes: segment first, the table lists particles only
    p.add_argument("--particles-only", action="store_true",
                   help="segment first (as --classes) and list the particles only")
    return p


def run(args) -> int:
    if args.classes or args.particles_only:
        from maxrf.cli.segment import run as run_segment

        return run_segment(args)
    from maxrf import DataStack
    from maxrf.evidence import element_evidence, label, parse_window
    from maxrf.outputs import os_error, probe_file
    from maxrf.speckles import find_speckles, write_csv

    window = parse_window(args.window) if args.window else None
    for out in (args.out, args.plot):  # checked before the work
        if out:
            probe_file(out)
    ds = DataStack(args.datastack)
    found = find_speckles(ds, args.element, max_area=args.max_area, factor=args.factor,
                          window=window)
    atlas, table = found.atlas, found.table
    n = len(table["label"])
    what = (f"in the window {window[0]:g}-{window[1]:g} keV" if window else
            f"of {label(args.element, element_evidence(ds, args.element))}")
    print(f"{n} speckles {what} above {args.factor:g} x noise "
          f"(clip height {atlas.clip_height:.4g})")
    if args.out:
        write_csv(table, args.out, overwrite=True)
        print(f"wrote {args.out}")
    if args.plot:
        import numpy as np

        from maxrf.plot.maps import plot_speckles

        keep = np.asarray(table["label"], dtype=int) - 1
        fig, _ax = plot_speckles(atlas.peak_map, np.c_[table["row"], table["col"]],
                                 atlas.radii[keep] if n else np.zeros(0),
                                 title=f"{args.element} speckles")
        try:
            fig.savefig(Path(args.plot), dpi=120)
        except OSError as exc:
            raise os_error(exc, args.plot, "write the plot") from None
        print(f"wrote {args.plot}")
    return 0
