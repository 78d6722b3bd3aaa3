"""``maxrf view DATASTACK``: a local web viewer (maps and spectra side by side)."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "view",
        help="open a local web viewer: click the map for spectra, drag the spectrum for maps",
        description="Serve an interactive viewer of the datastack on this computer "
        "(http://127.0.0.1:PORT/). Stop it with Ctrl-C.",
    )
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)"
    )
    p.add_argument("--open", action="store_true", help="open the viewer in the web browser")
    p.add_argument("--pixel-size-mm", type=float, default=None, metavar="MM",
                   help="scan pixel size in mm, for the map's scale bar (default: from the "
                        "scan's header; no scale bar without one)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    return p


def run(args) -> int:
    from maxrf.errors import ParameterError
    from maxrf.viewer import serve

    if args.pixel_size_mm is not None and not args.pixel_size_mm > 0:
        raise ParameterError(f"--pixel-size-mm must be > 0, got {args.pixel_size_mm}")
    serve(args.datastack, args.port, args.host, open_browser=args.open, verbose=args.verbose,
          pixel_size_mm=args.pixel_size_mm)
    return 0
