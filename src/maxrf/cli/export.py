"""``maxrf export DATASTACK --to hspy|zspy|tiff-stack|h5|csv``: files other tools open."""

from __future__ import annotations

from maxrf.errors import ParameterError

TARGETS = ("hspy", "zspy", "tiff-stack", "h5", "csv")


def add_parser(sub):
    p = sub.add_parser(
        "export", help="export the cube, maps and spectra for HyperSpy, Fiji, h5py, spreadsheets",
        description="hspy: the cube (and maps) for HyperSpy, energy axis calibrated, opened lazily; "
                    "tiff-stack: the maps as one Fiji/ImageJ stack with named slices; h5: maps and "
                    "spectra (and --cube) as plain HDF5 with attributes; csv: spectra per channel.",
    )
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("--to", required=True, choices=TARGETS, help="what to write")
    p.add_argument("-o", "--output", help="output file (default: beside the datastack)")
    p.add_argument("--layer", choices=("element_maps", "peak_maps"),
                   help="which maps (default: element maps if stored, else peak maps)")
    p.add_argument("--cube", action="store_true", help="h5: also write the cube (block by block)")
    p.add_argument("--no-maps", action="store_true", help="hspy: the cube only")
    p.add_argument("--pixel", action="append", default=[], metavar="ROW,COL",
                   help="csv: add this pixel's spectrum as a column (repeatable; default none)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def _pixels(texts: list[str]) -> list[tuple[int, int]]:
    out = []
    for text in texts:
        try:
            r, c = (int(v) for v in text.split(","))
        except ValueError:
            raise ParameterError(f"--pixel wants ROW,COL (whole numbers), got {text!r}") from None
        out.append((r, c))
    return out


def run(args) -> int:
    if args.to in ("hspy", "zspy"):
        from maxrf.export.hyperspy import export_hyperspy

        written = export_hyperspy(args.datastack, args.output, fmt=args.to,
                                  maps=False if args.no_maps else None, layer=args.layer,
                                  overwrite=args.overwrite)
    elif args.to == "tiff-stack":
        from maxrf.export.tiffstack import export_tiff_stack

        written = [export_tiff_stack(args.datastack, args.output, layer=args.layer,
                                     overwrite=args.overwrite)]
    elif args.to == "h5":
        from maxrf.export.hdf5 import export_hdf5

        written = [export_hdf5(args.datastack, args.output, cube=args.cube, overwrite=args.overwrite)]
    else:
        from maxrf.export.tables import export_csv

        written = [export_csv(args.datastack, args.output, pixels=_pixels(args.pixel),
                              overwrite=args.overwrite)]
    if not args.quiet:
        for path in written:
            print(f"wrote {path}")
    return 0
