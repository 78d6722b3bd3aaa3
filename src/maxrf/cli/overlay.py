"""``maxrf overlay DATASTACK --elements Fe,Pb --out DIR``: element maps on the registered photo."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser(
        "overlay", help="element maps warped onto the registered photograph (PNG, TIFF, RGB composite)",
        description="Warp stored element maps onto the photograph the scan is registered to "
                    "('maxrf register'): per element a float TIFF and a PNG with transparency on "
                    "the photo's pixel grid, and an RGB composite of the first three elements.",
    )
    p.add_argument("datastack", help="the .datastack folder (registered, with element maps)")
    p.add_argument("--elements", required=True, metavar="Fe,Pb,...",
                   help="elements (first three: composite)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default NAME_overlay beside it)")
    p.add_argument("--max-side", type=int, default=4096,
                   help="longest side of the output grid, pixels (default 4096; 0 = full photo)")
    return p


def run(args) -> int:
    from maxrf.export.overlay import export_overlays

    elements = [e.strip() for e in args.elements.split(",") if e.strip()]
    ds = Path(args.datastack)
    out = args.out or ds.with_name(ds.name.removesuffix(".datastack") + "_overlay")
    written = export_overlays(ds, elements, out, max_side=args.max_side or None)
    print(f"{len(written)} files written to {out}")
    return 0
