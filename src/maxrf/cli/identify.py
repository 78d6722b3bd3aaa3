"""``maxrf identify DATASTACK|SPECTRUM``: which elements explain the peaks, with evidence."""

from __future__ import annotations

from maxrf.cli._common import print_json


def add_parser(sub):
    p = sub.add_parser(
        "identify",
        help="identify the elements of a datastack (its hotmax spectra) or of a point spectrum",
        description=(
            "Identify the elements whose lines explain the peaks of every hotmax spectrum of a "
            "datastack (stored as its 'identification' layer) or of a point spectrum file "
            "(.msa/.spx, calibrated from its counts alone). Instrument peaks (anode Rayleigh and "
            "Compton lines, escape and sum peaks, argon, the zero peak) are labelled as such."
        ),
    )
    p.add_argument("source", help="a .datastack folder or a point spectrum (.msa, .emsa, .txt, .spx)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--anode", default=None,
                   help="X-ray tube anode (default: the file's / datastack's, else Rh)")
    p.add_argument("--tube-kv", type=float, default=None,
                   help="tube voltage, kV (default: the file's / datastack's, else 40)")
    p.add_argument("--all", action="store_true",
                   help="also list the candidate elements found absent")
    p.add_argument("--no-write", action="store_true",
                   help="do not store the result in the datastack")
    return p


def run(args) -> int:
    from maxrf.identify import TRACE_FRACTION, identify

    result = identify(args.source, anode=args.anode, tube_kv=args.tube_kv, store=not args.no_write)
    if args.json:
        print_json(result.to_dict(absent=args.all))
        return 0
    n = len(result.spectra)
    where = f"{n} hotmax spectra" if n > 1 else "1 spectrum"
    print(f"{args.source}: {where}, anode {result.anode}, {result.tube_kv:g} kV")
    print(result.table(absent=args.all))
    present = result.present
    traces = [r.element for r in result.elements if r.status == "present" and r.trace]
    note = ""
    if traces:
        note = f" (traces below {100 * TRACE_FRACTION:g} % of the strongest: {', '.join(traces)})"
    print(f"present: {', '.join(present) or 'none'}{note}")
    if result.possible:  # shown apart: a possible element is not a found one
        print(f"possible (not confirmed): {', '.join(el + '?' for el in result.possible)}")
    evidence = result.evidence(absent=args.all)
    if evidence:
        print("lines seen and missed (expected / observed net counts, in the spectrum where "
              "each line is expected strongest):")
        print(evidence)
    return 0
