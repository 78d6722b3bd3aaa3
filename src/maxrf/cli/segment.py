"""``maxrf segment DATASTACK --element Fe``: background, strokes and particles of an element map."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("segment", help="segment an element map into background, strokes and "
                                       "particles")
    p.add_argument("datastack", help="the .datastack folder (with element or peak maps)")
    add_options(p)
    return p


def add_element_options(p) -> None:
    """``--element`` and ``--window``: the map a per-element command works on (segment, speckles)."""
    p.add_argument("--element", default="Fe",
                   help="element whose map is used (default Fe); refused when the "
                        "identification finds no evidence of it")
    p.add_argument("--window", metavar="KEV1:KEV2", default=None,
                   help="use the peak map of this energy window (keV) instead, whatever "
                        "the identification says (default: the element's map)")


def add_options(p, element: bool = True) -> None:
    """The segmentation options (shared with ``maxrf speckles --classes``)."""
    if element:
        add_element_options(p)
    p.add_argument("--classes", metavar="TIFF",
                   help="write the classes as a uint8 TIFF (0 background, 1 strokes, 2 particles)")
    if element:
        p.add_argument("--out", help="write the particle table as CSV (particles only)")
        p.add_argument("--plot", help="write the class overlay (PNG/SVG)")
    p.add_argument("--max-radius", type=float, default=3.0,
                   help="largest particle radius, pixels (default 3)")
    p.add_argument("--significance", type=float, default=3.5,
                   help="particle seed threshold, in noise units (default 3.5)")


def run(args) -> int:
    from maxrf import DataStack
    from maxrf.evidence import checked_map, element_evidence, label, parse_window
    from maxrf.outputs import os_error, probe_file
    from maxrf.segmentation import segment_datastack, write_classes_tiff
    from maxrf.speckles import write_csv

    window = parse_window(args.window) if args.window else None
    for out in (args.classes, args.out, args.plot):  # before anything is computed or stored
        if out:
            probe_file(out)  # a missing, unwritable or full folder, or a folder as the file
    ds = DataStack(args.datastack)
    seg = segment_datastack(ds, args.element, window=window, max_radius=args.max_radius,
                            significance=args.significance)
    frac = 100 * float(seg.stroke_mask.mean())
    what = (f"in the window {window[0]:g}-{window[1]:g} keV" if window else
            f"of {label(args.element, element_evidence(ds, args.element))}")
    print(f"{seg.n_particles} particles {what}, strokes {frac:.1f}% of the map "
          f"({seg.verdict}{': ' + '; '.join(seg.warnings) if seg.warnings else ''})")
    if args.classes:
        print(f"wrote {write_classes_tiff(seg, args.classes, overwrite=True)}")
    if args.out:
        print(f"wrote {write_csv(seg.table, args.out, overwrite=True)}")
    if args.plot:
        from maxrf.plot.segmentation import plot_segmentation

        image, _source = checked_map(ds, args.element, window, "segmentation")
        fig, _ax = plot_segmentation(image, seg)
        try:
            fig.savefig(Path(args.plot), dpi=120)
        except OSError as exc:
            raise os_error(exc, args.plot, "write the plot") from None
        print(f"wrote {args.plot}")
    return 0
