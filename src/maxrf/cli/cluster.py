"""``maxrf cluster DATASTACK``: material classes of pixels from their component abundances."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "cluster", help="material classes of pixels (Gaussian mixture on component abundances)",
        description="Decompose the scan (see 'maxrf decompose') and classify every pixel into "
                    "material classes, with each class's mean spectrum; stored as the 'clusters' layer.")
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("--classes", type=int, default=None,
                   help="number of classes (default: chosen by BIC, overlapping ones merged)")
    p.add_argument("--components", type=int, default=None,
                   help="number of components (default: as many as rise above the Poisson noise)")
    p.add_argument("--out", help="folder for the class map and abundance maps (TIFF)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--scheduler", help="dask.distributed scheduler address for the pass over the cube")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from maxrf.cli.decompose import report
    from maxrf.decomposition import decompose

    args.no_classes = False
    result = decompose(args.datastack, args.components, n_classes=args.classes, classes=True,
                       client=args.scheduler, progress=not args.quiet)
    return report(result, args)
