"""A small converted datastack with every standard layer written by hand (used by the
report, viewer and browser tests).

``make_stack`` builds it from a physically shaped synthetic cube (element templates from
maxrf.physics, Poisson noise) and writes every standard layer from the schemas of
ARCHITECTURE.md, so those tests do not depend on the progress of
hotmax/identify/maps/speckles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maxrf.store import DataStack

ALL_LAYERS = ("calibration", "hotmax", "identification", "peak_maps", "element_maps", "speckles",
              "segmentation")
ELEMENTS = ("Ca", "Fe", "Cu", "Pb")
GAIN, OFFSET = 0.04, -0.1


# --------------------------------------------------------------------------- test data
def element_images(h: int, w: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Spatial distributions (counts per pixel) of a few pigments on a panel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    maps = {
        "Ca": 60 + 20 * np.sin(6 * xx) ** 2,  # ground layer everywhere
        "Fe": 300 * np.exp(-((yy - 0.35) ** 2 + (xx - 0.3) ** 2) / 0.05),  # ochre glaze
        "Pb": np.where((yy > 0.15) & (yy < 0.6) & (xx > 0.55) & (xx < 0.9), 400.0, 10.0),  # lead white
        "Cu": np.zeros((h, w)),
    }
    for _ in range(5):  # copper pigment grains (speckles)
        r, c = rng.integers(0, h), rng.integers(0, w)
        maps["Cu"][max(0, r - 1) : r + 2, max(0, c - 1) : c + 2] += 250.0
    return {k: v.astype(np.float64) for k, v in maps.items()}


def synth_cube(h: int, w: int, c: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(cube uint16 (h, w, c), element maps, energies) of a synthetic painting scan."""
    from maxrf import physics

    energies = OFFSET + GAIN * np.arange(c)
    axis = np.maximum(energies, 1e-3) + np.arange(c) * 1e-9  # strictly increasing positive axis
    maps = element_images(h, w, seed)
    templates = {el: physics.element_spectrum(el, axis) for el in maps}
    continuum = physics.continuum_spectrum(axis) * 400
    lam = continuum[None, None, :] + sum(
        maps[el][..., None] * templates[el][None, None, :] * 8 for el in maps
    )
    rng = np.random.default_rng(seed)
    cube = rng.poisson(lam).astype(np.uint16)
    return cube, maps, energies


def write_pair(folder: Path, cube: np.ndarray, name: str = "scan") -> Path:
    h, w, c = cube.shape
    header = (
        f"key\tvalue\nwidth\t{w}\nheight\t{h}\ndepth\t{c}\noffset\t0\ndata-length\t2\n"
        "data-type\tunsigned\nbyte-order\tlittle-endian\nrecord-by\tvector\n"
    )
    (folder / f"{name}.rpl").write_text(header)
    cube.astype("<u2").tofile(folder / f"{name}.raw")
    return folder / f"{name}.rpl"


def write_layers(
    ds: DataStack, cube: np.ndarray, maps: dict[str, np.ndarray], energies: np.ndarray, layers=ALL_LAYERS
) -> None:
    """Every requested standard layer, following the schemas of ARCHITECTURE.md."""
    import skimage.measure as skm

    from maxrf import physics

    h, w, c = cube.shape
    els = list(maps)
    if "calibration" in layers:
        ch = (physics.line_energy("Fe", "Ka") - OFFSET) / GAIN
        ds.write_layer(
            "calibration",
            {"energies": energies},
            {
                "gain_keV": GAIN,
                "offset_keV": OFFSET,
                "method": "manual",
                "anode": "Rh",
                "tube_kv": 40.0,
                "theta_deg": 110.0,
                "peaks": [{"name": "Fe Ka", "channel": ch, "keV": 6.4, "residual_eV": 2.5}],
            },
        )
    if "identification" in layers:
        ds.write_layer(
            "identification",
            {"scores": np.arange(len(els), dtype=np.float64)},
            {
                "elements": [
                    {"element": el, "status": "present", "confidence": 0.9, "lines": ["Ka"], "spectra": [0]}
                    for el in els
                ]
                + [{"element": "Hg", "status": "absent", "confidence": 0.1, "lines": [], "spectra": []}],
                "instrument": [{"name": "Rh Ka Compton", "keV": 19.2, "kind": "compton"}],
                "unexplained_keV": [4.95],
                "anode": "Rh",
                "tube_kv": 40.0,
            },
        )
    if "element_maps" in layers:
        ds.write_layer(
            "element_maps",
            {
                "maps": np.stack([maps[el] for el in els]).astype(np.float32),
                "chi2": np.ones((h, w), np.float32)
                + np.random.default_rng(1).random((h, w)).astype(np.float32),
            },
            {"elements": els, "method": "fit"},
        )
    if "peak_maps" in layers:
        lines = [("Fe", "Ka"), ("Pb", "La"), ("Ca", "Ka")]
        kev = np.array([physics.line_energy(el, ln) for el, ln in lines])
        peak = np.round((kev - OFFSET) / GAIN).astype(int)
        slices = np.stack([peak - 3, peak, peak + 4], axis=1)
        pm = np.stack([cube[..., s[0] : s[2]].sum(axis=2) for s in slices]).astype(np.float32)
        ds.write_layer(
            "peak_maps",
            {
                "maps": pm,
                "keV_maps": np.repeat(kev[:, None, None], h * w, 1)
                .reshape(len(lines), h, w)
                .astype(np.float32),
                "slices": slices,
                "peaks_keV": kev,
            },
            {"labels": [f"{el} {ln}" for el, ln in lines], "norm": None},
        )
    if "hotmax" in layers:
        flat = cube.reshape(-1, c)
        picks = [int(np.argmax(maps[el].ravel())) for el in ("Fe", "Pb", "Cu")]
        spectra = flat[picks].astype(np.float64)
        base = np.minimum.accumulate(spectra[:, ::-1], axis=1)[:, ::-1] * 0.5
        ds.write_layer(
            "hotmax",
            {
                "pixels": np.array([[p // w, p % w, 100 + i] for i, p in enumerate(picks)]),
                "peak_spectrum": np.arange(3),
                "spectra": spectra,
                "spectrum_pixels": np.array([[p // w, p % w] for p in picks]),
                "baselines": base,
                "envelopes": base + 3 * np.sqrt(base + 1),
            },
            {
                "peak_keV": [[6.4, 7.06], [10.55, 12.61], [8.04]],
                "subpeak_keV": [[], [], []],
                "prominence": 3.0,
            },
        )
    if "speckles" in layers:
        lab = skm.label(maps["Cu"] > 100, connectivity=1)
        props = sorted(skm.regionprops(lab, intensity_image=maps["Cu"]), key=lambda p: -p.area)
        ranked = np.zeros((h, w), np.int32)
        for i, p in enumerate(props):
            ranked[lab == p.label] = i + 1
        cent = np.array([p.centroid for p in props]).reshape(-1, 2)
        table = [
            {
                "label": i + 1,
                "row": float(p.centroid[0]),
                "col": float(p.centroid[1]),
                "area": int(p.area),
                "peak": float(p.intensity_max),
                "Cu": float(p.intensity_mean),
            }
            for i, p in enumerate(props)
        ]
        ds.write_layer(
            "speckles",
            {
                "labels": ranked,
                "centroids": cent,
                "areas": np.array([p.area for p in props]),
                "peak_intensity": np.array([p.intensity_max for p in props]),
            },
            {"element": "Cu", "clip_height": 100.0, "max_area": 20, "noise_level": 5.0, "table": table},
        )
    if "segmentation" in layers:
        from maxrf.segmentation import segment_datastack

        segment_datastack(ds, "Cu")


def make_stack(
    folder: Path, h: int = 24, w: int = 32, c: int = 512, layers=ALL_LAYERS, seed: int = 0, name: str = "scan"
) -> tuple[DataStack, np.ndarray, dict[str, np.ndarray]]:
    """A converted datastack with the given fake layers; returns (ds, cube, element maps)."""
    from maxrf.convert import convert

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cube, maps, energies = synth_cube(h, w, c, seed)
    rpl = write_pair(folder, cube, name)
    ds = convert(rpl, folder / f"{name}.datastack", calibrate=False)
    write_layers(ds, cube, maps, energies, layers)
    return DataStack(ds.path), cube, maps
