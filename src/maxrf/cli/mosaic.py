"""``maxrf mosaic A.datastack B.datastack ... --photo P --elements Fe,Pb --out DIR``."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "mosaic", help="one map of several scans registered to the same photograph",
        description="Combine the element maps of several scans, each registered to PHOTO "
                    "('maxrf register'), into maps on the photo's pixel grid; overlaps are "
                    "blended with weights falling to zero at each scan's edge.",
    )
    p.add_argument("datastacks", nargs="+", help="the .datastack folders")
    p.add_argument("--photo", required=True, help="the photograph all scans are registered to")
    p.add_argument("--elements", required=True, metavar="Fe,Pb,...",
                   help="elements (first three: composite)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--max-side", type=int, default=4096,
                   help="longest side of the output grid, pixels (default 4096; 0 = full photo)")
    return p


def run(args) -> int:
    import numpy as np

    from maxrf.export.overlay import mosaic

    elements = [e.strip() for e in args.elements.split(",") if e.strip()]
    maps = mosaic(args.datastacks, args.photo, elements, args.out, max_side=args.max_side or None)
    first = maps[elements[0]]
    print(f"mosaic of {len(args.datastacks)} scans: {np.isfinite(first).mean():.0%} of the photo "
          f"covered; files in {args.out}")
    return 0
