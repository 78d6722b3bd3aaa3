"""``maxrf maps DATASTACK``: peak maps and element maps in one pass, stored and exported.

Computes the maps (:func:`maxrf.maps.compute_maps`, one read of the cube), stores them as
the ``peak_maps`` / ``element_maps`` layers, then exports per map a float32 TIFF (for
analysis; named by its label: ``Fe.tiff``, ``peak-07-6.40keV.tiff``), a PNG with colour
bar and title (for people) and an overview sheet PNG of all maps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from maxrf.cli._common import add_scheduler, client_from
from maxrf.errors import OutputLocationError, ParameterError

FORMATS = ("tiff", "png")


def add_parser(sub):
    p = sub.add_parser(
        "maps", help="peak-slice maps and element maps (one pass), stored and exported",
        description="Compute peak maps (slices of the max spectrum) and/or element maps in one "
                    "pass over the cube, store them in the datastack and export TIFF/PNG files. "
                    "Default: peak maps, plus the identified elements when the scan has an "
                    "'identification' layer.",
    )
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("--elements", metavar="auto|Fe,Cu,...", default=None,
                   help="elements to map: 'auto' = the elements identified as present "
                        "(needs 'maxrf identify'), or a comma-separated list")
    p.add_argument("--peaks", action="store_true", help="peak-slice maps of the max spectrum")
    p.add_argument("--method", choices=("fit", "window"), default="fit",
                   help="element maps: per-pixel template fit (default) or line windows")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="export folder (default: NAME_maps beside the datastack)")
    p.add_argument("--format", default="tiff,png",
                   help="comma-separated export formats among tiff, png (default tiff,png)")
    p.add_argument("--prominence", type=float, default=None,
                   help="peak prominence in the max spectrum, counts (default: 5 x the local "
                        "counting noise, as the hotmax atlas; the seed used 0.5)")
    p.add_argument("--rel-height", type=float, default=0.2,
                   help="relative height of the peak width that sets the slices (default 0.2)")
    p.add_argument("--norm", action="store_true", help="divide each peak map by its maximum")
    p.add_argument("--fwhm", type=float, default=None, metavar="KEV",
                   help="detector FWHM at 5.9 keV, keV (default: estimated from the data)")
    p.add_argument("--force", action="store_true",
                   help="map the --elements named even when the identification finds no "
                        "evidence of them (default: refuse, their maps would show noise or "
                        "another element's line)")
    p.add_argument("--no-identify", action="store_true",
                   help="with no identification stored, make peak maps only instead of "
                        "identifying the elements first (default: identify first)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_scheduler(p)
    return p


def parse_formats(text: str) -> list[str]:
    """``'tiff,png'`` -> ``['tiff', 'png']``; ``tif`` is accepted for ``tiff``."""
    out = []
    for part in (text or "").split(","):
        f = part.strip().lower()
        if not f:
            continue
        f = "tiff" if f == "tif" else f
        if f not in FORMATS:
            raise ParameterError(f"--format: unknown format {part.strip()!r} (use tiff, png)")
        if f not in out:
            out.append(f)
    if not out:
        raise ParameterError("--format: give at least one of tiff, png")
    return out


def _what(args, ds) -> tuple[bool, list[str] | None]:
    from maxrf.evidence import require_evidence
    from maxrf.maps import identified_elements
    from maxrf.physics import normalize_element

    elements: list[str] | None
    if args.elements is None:
        peaks = True
        elements = identified_elements(ds) if (not args.peaks and "identification" in ds.layers) else None
    elif args.elements.strip().lower() == "auto":
        peaks = args.peaks
        elements = identified_elements(ds)
        if not elements and not peaks:
            raise ParameterError("--elements auto: the identification lists no element as present",
                                 ds.path)
    else:
        peaks = args.peaks
        elements = [normalize_element(s.strip()) for s in args.elements.split(",") if s.strip()]
        if not elements:
            raise ParameterError(f"--elements: no element in {args.elements!r}")
        if not args.force and "identification" in ds.layers:
            for el in elements:  # a map of an element the scan shows no sign of is not its map
                require_evidence(ds, el, "map")
    return peaks, (elements or None)


def identify_first(args, ds, say) -> None:
    """``maxrf maps`` with no identification stored: identify, so element maps come too."""
    from maxrf.hotmax import HotmaxAtlas
    from maxrf.identify import identify

    if ds.calibration is None:
        return  # no energies: peak maps only (identification needs a calibration)
    say("no identification stored: identifying the elements first (as 'maxrf identify')")
    if "hotmax" not in ds.layers:
        HotmaxAtlas(ds, client=client_from(args))
    identify(ds)


def default_out(ds_path: Path) -> Path:
    """``scan.datastack`` -> ``scan_maps`` beside it."""
    name = ds_path.name
    stem = name[: -len(".datastack")] if name.endswith(".datastack") else name
    return ds_path.parent / f"{stem}_maps"


def _prepare_out(out: Path) -> tuple[Path, bool]:
    """Create the export folder (checked before the long pass); also whether it is new, so a
    failed run can remove it rather than leave an empty folder."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputLocationError(f"cannot create the export folder ({exc.strerror})", out) from exc
    if not out.is_dir():
        raise OutputLocationError("the export location is not a folder", out)
    from maxrf.outputs import probe_folder

    try:
        probe_folder(out)
    except OutputLocationError:
        if created:
            out.rmdir()
        raise
    return out, created


OVERVIEW_SIDE = 512
"""Largest side (pixels) of a map's panel in the overview sheet (maps are strided down)."""


def export_maps(maps: Any, labels: list[str], titles: list[str], out: Path, formats: list[str],
                *, units: str, overview: str | None) -> list[Path]:
    """Write one float32 TIFF and/or one PNG per map, and an overview sheet PNG.

    ``maps`` is anything indexable map by map (a ``(k, H, W)`` array, or the stored
    layer's read-on-demand view): each map is read once and dropped, and the overview
    sheet keeps only strided thumbnails (at most :data:`OVERVIEW_SIDE` pixels a side),
    so memory stays one map whatever ``k``.

    Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import tifffile

    from maxrf.maps import histeq
    from maxrf.plot.maps import multi_plot, plot_map

    written: list[Path] = []
    thumbs: list[np.ndarray] = []
    fig = ax = None
    try:
        for i, (label, title) in enumerate(zip(labels, titles)):
            img = np.asarray(maps[i], dtype=np.float32)
            if overview and "png" in formats:
                step = max(1, -(-max(img.shape) // OVERVIEW_SIDE))
                thumbs.append(histeq(img[::step, ::step]))
            if "tiff" in formats:
                path = out / f"{label}.tiff"
                tifffile.imwrite(path, img, photometric="minisblack", metadata={"units": units})
                written.append(path)
            if "png" in formats:
                path = out / f"{label}.png"
                if fig is None:
                    fig, ax = plot_map(img, title=title, label=units)
                else:  # same layout: swap the image in (a new figure per map is 5x slower)
                    im = ax.images[0]
                    im.set_data(img)
                    finite = img[np.isfinite(img)]
                    if finite.size:
                        im.set_clim(float(finite.min()), float(finite.max()))
                    ax.set_title(title)
                fig.savefig(path, dpi=100)
                written.append(path)
    finally:
        if fig is not None:
            plt.close(fig)
    if thumbs:
        fig, _ = multi_plot(*thumbs, titles=titles, cmap="viridis", fontsize="medium")
        path = out / f"{overview}.png"
        fig.savefig(path, dpi=72 if len(thumbs) > 16 else 100)
        plt.close(fig)
        written.append(path)
    return written


def run(args: Any) -> int:
    from maxrf.store import DataStack

    formats = parse_formats(args.format)
    ds = DataStack(args.datastack)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    if ("identification" not in ds.layers and not args.peaks and not args.no_identify
            and (args.elements is None or args.elements.strip().lower() == "auto")):
        identify_first(args, ds, say)
    peaks, elements = _what(args, ds)
    out, created = _prepare_out(Path(args.out) if args.out else default_out(ds.path))
    try:
        written, result = _compute_and_export(args, ds, peaks, elements, out, formats)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing written: leave no empty folder
        raise
    if not args.quiet:
        n_peaks = 0 if result.peaks is None else len(result.peaks.labels)
        els = [] if result.elements is None else result.elements.elements
        print(f"{n_peaks} peak maps, {len(els)} element maps ({', '.join(els) or '-'}) "
              f"in {result.seconds:.1f} s; stored in {ds.path}; {len(written)} files in {out}")
        if result.merge is not None and (result.merge.replaced or result.merge.kept):
            print(result.merge.line())
        if result.elements is None and "identification" not in ds.layers:
            print("no element maps: the scan has no identification ('maxrf identify', or "
                  "--elements Fe,Cu,...)")
    return 0


def _compute_and_export(args: Any, ds: Any, peaks: bool, elements: list[str] | None, out: Path,
                        formats: list[str]) -> tuple[list[Path], Any]:
    from maxrf.maps import compute_maps

    result = compute_maps(
        ds, peaks=peaks, elements=elements, method=args.method, prominence=args.prominence,
        rel_height=args.rel_height, norm=args.norm, fwhm_at_6keV=args.fwhm,
        client=client_from(args), progress=not args.quiet and sys.stderr.isatty(), store=True,
    )
    written: list[Path] = []
    if result.peaks is not None:
        p = result.peaks
        titles = [f"[{i}] {keV:.2f} keV" for i, keV in enumerate(p.peaks_keV)]
        units = "relative" if p.norm else "counts per channel"
        written += export_maps(p.maps, p.labels, titles, out, formats, units=units,
                               overview="overview-peaks")
    if result.elements is not None:
        em = result.elements
        labels = list(em.elements)
        titles = [f"{el} ({em.method})" for el in em.elements]
        written += export_maps(em.maps, labels, titles, out, formats,
                               units="counts", overview="overview-elements")
        if em.method == "fit":
            written += export_maps([em.chi2[...]], ["chi2"], ["reduced chi-square"], out,
                                   formats, units="reduced chi-square", overview=None)
    return written, result
