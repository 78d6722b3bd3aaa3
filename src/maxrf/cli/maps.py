"""``maxrf maps DATASTACK``: peak maps and element maps in one pass, stored and exported.

Computes the maps (:func:`maxrf.maps.compute_maps`, one read of the cube), stores them as
the ``peak_maps`` / ``element_maps`` layers, then exports (:mod:`maxrf.export.images`) per
map a float32 ImageJ TIFF with its metadata (named by its label: ``Fe.tiff``,
``peak-07-6.40keV.tiff``), a pixel-exact colour PNG, an overview sheet PNG of all maps,
and on request an RGB composite of up to three elements.
"""

from __future__ import annotations

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
                        "counting noise, as the hotmax atlas; maxrf4u used 0.5)")
    p.add_argument("--rel-height", type=float, default=0.2,
                   help="relative height of the peak width that sets the slices (default 0.2)")
    p.add_argument("--norm", action="store_true", help="divide each peak map by its maximum")
    p.add_argument("--fwhm", type=float, default=None, metavar="KEV",
                   help="detector FWHM at 5.9 keV, keV (default: estimated from the data)")
    p.add_argument("--cmap", default=None,
                   help="colour map of the PNGs: a matplotlib name (viridis, gray, magma...) "
                        "(default: each element's report colours; viridis for peak maps)")
    p.add_argument("--limits", metavar="LO:HI", default=None,
                   help="PNG colour limits in map units (default: --percentiles)")
    p.add_argument("--percentiles", metavar="P1:P2", default="0.5:99.5",
                   help="PNG colour limits as percentiles of each map (default 0.5:99.5)")
    p.add_argument("--upscale", type=int, default=1, metavar="N",
                   help="each scan pixel becomes N x N PNG pixels (default 1: pixel-exact)")
    p.add_argument("--rgb", metavar="EL1,EL2[,EL3]", default=None,
                   help="also write an RGB composite PNG of up to three mapped elements "
                        "(red, green, blue), e.g. Fe,Cu,Pb (default: none)")
    p.add_argument("--pixel-size-mm", type=float, default=None, metavar="MM",
                   help="scan pixel size in mm, written into the TIFF/PNG resolution "
                        "(default: from the scan's header when it has one)")
    p.add_argument("--force", action="store_true",
                   help="map the --elements named even when the identification finds no "
                        "evidence of them (default: refuse, their maps would show noise or "
                        "another element's line)")
    p.add_argument("--no-identify", action="store_true",
                   help="with no identification stored, make peak maps only instead of "
                        "identifying the elements first (default: identify first)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress or summary (default: progress as a bar on a terminal, "
                        "else a line per 10 %%)")
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
                require_evidence(ds, el, "map", how="add --force to map it")
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


def run(args: Any) -> int:
    from maxrf.store import DataStack

    formats = parse_formats(args.format)
    ds = DataStack(args.datastack)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    named = args.elements is not None and args.elements.strip().lower() != "auto"
    if ("identification" not in ds.layers and not args.no_identify
            and ((not args.peaks and not named) or (named and not args.force))):
        identify_first(args, ds, say)  # the evidence for named elements, or the elements
    peaks, elements = _what(args, ds)
    _image_options(args, ds)  # bad --limits/--cmap/--rgb fail now, before the pass
    _rgb_names(args, elements)
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


def _pair(text: str | None, option: str) -> tuple[float, float] | None:
    """``'1:99'`` -> ``(1.0, 99.0)`` for --limits / --percentiles."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise ParameterError(f"{option}: give LOW:HIGH, e.g. 1:99, got {text!r}") from None
    if not hi > lo:
        raise ParameterError(f"{option}: LOW must be below HIGH, got {text!r}")
    return lo, hi


def _image_options(args: Any, ds: Any) -> dict[str, Any]:
    from maxrf.export.images import header_pixel_size_mm

    percentiles = _pair(args.percentiles, "--percentiles")
    if percentiles and not (0 <= percentiles[0] and percentiles[1] <= 100):
        raise ParameterError(f"--percentiles must lie in 0..100, got {args.percentiles!r}")
    if args.upscale < 1:
        raise ParameterError(f"--upscale must be >= 1, got {args.upscale}")
    if args.pixel_size_mm is not None and not args.pixel_size_mm > 0:
        raise ParameterError(f"--pixel-size-mm must be > 0, got {args.pixel_size_mm}")
    if args.cmap:
        from maxrf.plot.colors import lut

        lut(args.cmap)  # an unknown name fails now, before the pass
    return {"cmap": args.cmap, "limits": _pair(args.limits, "--limits"),
            "percentiles": percentiles, "upscale": args.upscale,
            "pixel_size_mm": args.pixel_size_mm or header_pixel_size_mm(ds),
            "calibration": ds.calibration}


def _rgb_names(args: Any, elements: list[str] | None) -> list[str]:
    from maxrf.physics import normalize_element

    if not args.rgb:
        return []
    names = [normalize_element(s.strip()) for s in args.rgb.split(",") if s.strip()]
    if not 1 <= len(names) <= 3:
        raise ParameterError(f"--rgb takes one to three elements, got {args.rgb!r}")
    missing = [el for el in names if el not in (elements or [])]
    if missing:
        raise ParameterError(f"--rgb: {', '.join(missing)} not among the mapped elements "
                             f"({', '.join(elements or []) or 'none'})")
    return names


def _compute_and_export(args: Any, ds: Any, peaks: bool, elements: list[str] | None, out: Path,
                        formats: list[str]) -> tuple[list[Path], Any]:
    from maxrf.export.images import export_maps, write_rgb
    from maxrf.maps import compute_maps

    image = _image_options(args, ds)
    rgb = _rgb_names(args, elements)

    result = compute_maps(
        ds, peaks=peaks, elements=elements, method=args.method, prominence=args.prominence,
        rel_height=args.rel_height, norm=args.norm, fwhm_at_6keV=args.fwhm,
        client=client_from(args), progress=not args.quiet, store=True,
    )
    written: list[Path] = []
    if result.peaks is not None:
        p = result.peaks
        titles = [f"[{i}] {keV:.2f} keV" for i, keV in enumerate(p.peaks_keV)]
        units = "relative" if p.norm else "counts per channel"
        e = np.asarray(ds.energies) if ds.calibration is not None else None
        windows = ([(float(e[a]), float(e[b])) for a, _, b in np.asarray(p.slices)]
                   if e is not None else None)
        written += export_maps(p.maps, p.labels, titles, out, formats, units=units,
                               overview="overview-peaks", windows_keV=windows, **image)
    if result.elements is not None:
        em = result.elements
        labels = list(em.elements)
        titles = [f"{el} ({em.method})" for el in em.elements]
        written += export_maps(em.maps, labels, titles, out, formats, units="counts",
                               overview="overview-elements", elements=labels, **image)
        if em.method == "fit":
            written += export_maps([em.chi2[...]], ["chi2"], ["reduced chi-square"], out,
                                   formats, units="reduced chi-square", overview=None,
                                   **{**image, "cmap": image["cmap"] or "viridis"})
        if rgb:
            written.append(write_rgb(out / f"rgb-{'-'.join(rgb)}.png",
                                     [em.maps[labels.index(el)] for el in rgb], rgb,
                                     percentiles=image["percentiles"], upscale=image["upscale"],
                                     pixel_size_mm=image["pixel_size_mm"]))
    return written, result
