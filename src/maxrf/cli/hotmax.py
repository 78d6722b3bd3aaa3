"""``maxrf hotmax DATASTACK``: the hotmax atlas (built once, then read from the store)."""

from __future__ import annotations

from pathlib import Path

from maxrf.cli._common import add_scheduler, client_from, print_json


def add_parser(sub):
    p = sub.add_parser(
        "hotmax",
        help="the hotmax spectra: for each max-spectrum peak, the spectrum of the pixel where it peaks",
    )
    p.add_argument("datastack", help="a calibrated .datastack")
    p.add_argument("--plot", metavar="FILE", help="save the stacked hotmax spectra (.png, .svg, .pdf)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: per hotmax spectrum 'index', 'pixel' [row, col], "
                        "'peak_keV' and 'subpeak_keV'")
    p.add_argument("--prominence", type=float, default=None, metavar="P",
                   help="minimum prominence of a max-spectrum peak, counts "
                        "(default: 5 x the local counting noise)")
    p.add_argument("--recompute", action="store_true", help="rebuild the atlas even if it is stored")
    add_scheduler(p)
    return p


def _check_plot_path(path: str) -> Path:
    from maxrf.errors import OutputLocationError, ParameterError
    from maxrf.plot.images import image_formats

    out = Path(path)
    fmt = out.suffix.lstrip(".").lower()
    supported = image_formats()
    if fmt not in supported:
        raise ParameterError(
            f"--plot {path}: unknown image format {out.suffix or '(none)'!r}; "
            f"use one of {', '.join('.' + k for k in sorted(supported))}"
        )
    if not out.parent.resolve().is_dir():
        raise OutputLocationError("folder for --plot does not exist", out.parent)
    return out


def run(args) -> int:
    from maxrf.errors import OutputLocationError, ParameterError
    from maxrf.hotmax import HotmaxAtlas

    if args.prominence is not None and not args.prominence > 0:
        raise ParameterError(f"--prominence must be > 0 counts, got {args.prominence}")
    plot_path = _check_plot_path(args.plot) if args.plot else None
    atlas = HotmaxAtlas(args.datastack, recompute=args.recompute, prominence=args.prominence,
                        client=client_from(args))
    if args.json:
        print_json(atlas.summary())
    else:
        print(f"{atlas.datastack.path}: {len(atlas.hotmax_pixels)} max-spectrum peaks "
              f"in {len(atlas)} hotmax spectra")
        for item in atlas.summary():
            r, c = item["pixel"]
            peaks = ", ".join(f"{v:.2f}" for v in item["peak_keV"])
            subs = ", ".join(f"{v:.2f}" for v in item["subpeak_keV"])
            print(f"  {item['index']:3d}  pixel [{r}, {c}]  peaks {peaks} keV")
            print(f"       sub-peaks {subs or '-'} keV")
    if plot_path is not None:
        from maxrf.plot.images import close_figure, use_file_backend
        from maxrf.plot.spectra import plot_spectra

        use_file_backend()
        fig, _axs = plot_spectra(atlas)
        try:
            fig.savefig(plot_path, dpi=120)
        except OSError as exc:
            raise OutputLocationError(f"cannot write the plot ({exc.strerror or exc})", plot_path) from exc
        finally:
            close_figure(fig)
        if not args.json:
            print(f"wrote {plot_path}")
    return 0
