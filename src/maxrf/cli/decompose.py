"""``maxrf decompose DATASTACK``: non-negative components, abundance maps, material classes."""

from __future__ import annotations

import argparse
import json

from maxrf.cli._common import add_scheduler, client_from


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "decompose",
        help="non-negative components (NMF) of the scan, their abundance maps and material classes",
        description="Fit non-negative components on a stratified sample of pixels, then compute "
                    "every pixel's abundances and material class in one pass over the cube; "
                    "stored as the 'decomposition' and 'clusters' layers.")
    add_options(p)
    p.add_argument("--no-classes", action="store_true", help="skip the material classes")
    return p


def add_options(p: argparse.ArgumentParser) -> None:
    """The options ``maxrf decompose`` and ``maxrf cluster`` share."""
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("--components", type=int, default=None,
                   help="number of components (default: as many as rise above the Poisson noise)")
    p.add_argument("--classes", type=int, default=None,
                   help="number of material classes (default: chosen by BIC, overlapping ones merged)")
    p.add_argument("--out", help="folder for the abundance maps (float32 TIFF) and the class map")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_scheduler(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from maxrf.decomposition import decompose
    from maxrf.outputs import probe_new_folder

    if args.out:  # before the long work: an unwritable place is one line, nothing stored
        probe_new_folder(args.out)
    result = decompose(args.datastack, args.components, n_classes=args.classes,
                       classes=not getattr(args, "no_classes", False), client=client_from(args),
                       progress=not args.quiet)
    return report(result, args)


def report(result, args: argparse.Namespace) -> int:  # noqa: ANN001 - Decomposition
    out = result.to_dict()
    if args.out:
        from maxrf.export.components import export_decomposition

        files = export_decomposition(result, args.out)
        out["components"], out["classes_map"] = files["components"], files["classes"]
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{result.n_components} components ({result.rank['chosen']}), quality {result.quality}")
    for c in out["components"]:
        where = f" -> {c['map']}" if "map" in c else ""
        print(f"  [{c['index']}] {', '.join(c['elements']) or '(scatter / background)'}{where}")
    if result.clustering is not None:
        print(f"{result.clustering.n_classes} material classes; pixels per class: "
              f"{', '.join(str(int(n)) for n in result.clustering.pixels)}")
    for chk in result.checks:
        if not chk["passed"]:
            print(f"  doubtful: {chk['detail']}")
    return 0
