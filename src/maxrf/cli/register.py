"""``maxrf register DATASTACK PHOTO``: register a scan onto a photograph of the artwork."""

from __future__ import annotations

from maxrf.cli._common import print_json


def add_parser(sub):
    p = sub.add_parser(
        "register", help="register the scan onto a photograph (automatic or control points)",
        description="Find the homography from scan pixels to photo pixels: automatically "
                    "(mutual information, then a colour fit) or from control points (4 or more "
                    "pairs; RANSAC with more than 4). Prints the verdict (good / doubtful / "
                    "failed) with its evidence and stores the result as the 'registration' layer.",
    )
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("photo", help="photograph: JPEG, PNG or TIFF (8 or 16 bit)")
    p.add_argument("--points", metavar="CSV", default=None,
                   help="control points, columns xrf_col,xrf_row,photo_x,photo_y (pixel centres at integers)")
    p.add_argument("--refine", action="store_true",
                   help="with --points: refine the points' result automatically")
    p.add_argument("--image", default="sum", metavar="sum|Fe,Pb",
                   help="scan image to register: the sum image (default) or stored element maps")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def run(args) -> int:
    from maxrf.registration import register
    from maxrf.registration.points import read_points

    points = read_points(args.points) if args.points else None
    reg = register(args.datastack, args.photo, points, image=args.image, refine=args.refine or None)
    if args.json:
        print_json(reg.to_dict())
    else:
        print(f"registration {reg.quality} ({reg.method}): scale {reg.scale:.3g} photo px per scan px, "
              f"overlap {reg.overlap:.0%}, rms {reg.rms_px:.3g} photo px")
        for name, check in reg.checks.items():
            if isinstance(check, dict):
                v = check["value"]
                print(f"  {name:22s} {'n/a' if v is None else f'{v:.3g}':>8s}  {check['outcome']}")
        print("matrix (scan col,row,1 -> photo x,y,w):")
        for row in reg.matrix:
            print("  " + "  ".join(f"{v: .6g}" for v in row))
    return 0 if reg.ok else 2
