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
    p.add_argument("--verbose", action="store_true", help="log every request")
    return p


def run(args) -> int:
    from maxrf.viewer import serve

    serve(args.datastack, args.port, args.host, open_browser=args.open, verbose=args.verbose)
    return 0
