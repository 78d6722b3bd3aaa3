"""``maxrf convert SCAN.rpl``: one streaming pass into a DataStack."""

from __future__ import annotations

import sys

from maxrf.cli._common import add_scheduler, client_from


def add_parser(sub):
    p = sub.add_parser("convert", help="convert a scan (.rpl/.raw, CRONO HDF5, .bcf, HDF5/zarr cube) "
                       "into a .datastack (one pass)")
    p.add_argument("scan", help="the scan: .rpl header (or .raw), CRONO .HDF5, Bruker .bcf, "
                   "HDF5 file or zarr store")
    p.add_argument("--dataset", help="the (height, width, channels) cube's path inside an HDF5 "
                   "file or zarr store, e.g. /entry/data")
    p.add_argument("-o", "--output", help="output .datastack folder (default: next to the scan)")
    p.add_argument("--sigma", type=float, default=0.0,
                   help="Gaussian smoothing along the spectral axis, channels (0 = none)")
    p.add_argument("--flip-horizontal", action="store_true", help="mirror the image left-right")
    p.add_argument("--flip-vertical", action="store_true", help="mirror the image top-bottom")
    p.add_argument("--compression", choices=("lz4", "zstd", "none"), default="lz4",
                   help="cube compression (blosc + bitshuffle; every chunk keeps a crc32c "
                        "checksum): lz4 (default, fastest, ~7x on counts), zstd (~10x, "
                        "~2.5x slower to encode), none")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--no-calibrate", action="store_true",
                   help="do not find the energy calibration from the spectra")
    p.add_argument("--calibration", choices=("header", "auto", "manual"), default=None,
                   help="energy calibration to keep: the header's (default when it has one), "
                        "the automatic one, or --manual pairs")
    p.add_argument("--manual", metavar="CH1:KEV1,CH2:KEV2", default=None,
                   help="manual calibration pairs (implies --calibration manual)")
    p.add_argument("--anode", default="Rh", help="X-ray tube anode element (default Rh)")
    p.add_argument("--tube-kv", type=float, default=40.0, help="tube voltage, kV (default 40)")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed-max", dest="seed_max", action="store_true", default=False,
                      help="also compute the smoothed max spectrum of the seed's notebooks "
                           "(ds.max_spectrum()) in the same pass, ~0.9 CPU s per GiB more "
                           "(default: computed and stored on the first ds.max_spectrum() call)")
    seed.add_argument("--no-seed-max", dest="seed_max", action="store_false",
                      help="do not compute it during convert (the default)")
    p.add_argument("--lenient", action="store_true",
                   help="convert a header with a misspelt-looking key (e.g. 'byte-ordr') anyway, "
                        "ignoring that key with a warning (default: refuse, naming the likely key)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (default: a bar on a terminal, else a line per 10 %%)")
    add_scheduler(p)
    return p


def run(args) -> int:
    from maxrf import interrupt
    from maxrf.convert import convert

    interrupt.install()  # SIGINT/SIGTERM never lost, the clean-up never cut short
    import warnings

    from maxrf.convert import HeaderWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HeaderWarning)
        ds = convert(
            args.scan, args.output, sigma=args.sigma, flip_horizontal=args.flip_horizontal,
            flip_vertical=args.flip_vertical, overwrite=args.overwrite,
            calibrate=not args.no_calibrate, anode=args.anode, tube_kv=args.tube_kv,
            calibration="manual" if args.manual else args.calibration, manual=args.manual,
            progress=not args.quiet, client=client_from(args),
            dataset=args.dataset, compression=args.compression,
            lenient=args.lenient, seed_max=args.seed_max,
        )
    for w in caught:  # one line each, not Python's file:line warning format
        if issubclass(w.category, HeaderWarning):
            print(f"maxrf convert: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if not args.quiet:
        print(f"wrote {ds.path}")
    return 0
