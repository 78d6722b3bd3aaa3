"""Two overlapping synthetic scans of one artwork, each registered automatically to one photo.

The artwork is one synthetic scan (:func:`maxrf.synth.make_scan`); its cube is cut into a
left and a right part that overlap, as a large painting is scanned in parts. Each part is
converted, its element maps fitted and registered to the photograph of the whole artwork by
those maps (the pigments the photo shows; the sum image also holds calcium and scatter, which
it does not), without being told where it lies. The mosaic, sampled at the photo positions
of the artwork's pixels through the true warp, must equal the truth maps within the noise
of the fitted maps themselves.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter

from maxrf import maps as mp
from maxrf.convert import convert
from maxrf.export.overlay import mosaic
from maxrf.registration import register
from maxrf.registration.homography import apply, scan_grid
from maxrf.store import DataStack
from maxrf.synth import make_scan
from maxrf.synth_photo import make_photo

from conftest import write_pair

ELEMENTS = ["Fe", "Cu", "Pb"]
PARTS = {"left": (0, 52), "right": (32, 84)}


def _part(tmp, name: str, cube: np.ndarray, truth) -> DataStack:
    rpl = write_pair(tmp, np.ascontiguousarray(cube), name)
    ds = convert(rpl, tmp / f"{name}.datastack", calibrate=False)
    ds.write_layer("calibration", {"energies": truth.energies},
                   {"gain_keV": truth.gain_keV, "offset_keV": truth.offset_keV,
                    "method": "manual", "peaks": []})
    ds = DataStack(ds.path)
    mp.element_maps(ds, truth.elements, store=True)
    return ds


def test_mosaic_of_two_registered_scans_equals_the_truth_within_the_noise(tmp_path):
    truth = make_scan(tmp_path / "art", height=40, width=84, channels=512, seed=31,
                      elements=["Ca", "Fe", "Cu", "Pb"], n_speckles=0, particle=False)
    whole = convert(tmp_path / "art.rpl", tmp_path / "art.datastack", calibrate=False)
    cube = np.asarray(whole.cube)
    pt = make_photo(truth.maps, tmp_path / "photo.jpg", seed=31, scale=3.0)
    parts, noise = [], {e: [] for e in ELEMENTS}
    for name, (c0, c1) in PARTS.items():
        ds = _part(tmp_path, name, cube[:, c0:c1], truth)
        reg = register(ds, pt.path, image=ELEMENTS)
        # the verdict may be cautious on a strip this narrow (its local error estimate near
        # a scan pixel); the true warp below is the measure
        assert reg.quality != "failed", reg.checks
        # the part lies where the truth puts it: within a scan pixel everywhere
        g = scan_grid(ds.shape[:2])
        err = np.linalg.norm(apply(np.linalg.inv(pt.matrix), reg.to_photo(g)) - (g + [c0, 0]), axis=1)
        assert err.max() < 1.0
        fitted = ds.read("element_maps")["maps"]
        for e in ELEMENTS:
            noise[e].append(np.asarray(fitted[truth.elements.index(e)]) - truth.maps[e][:, c0:c1])
        parts.append(ds)
    result = mosaic(parts, pt.path, ELEMENTS, tmp_path / "mos", max_side=None)
    # sample the mosaic where the truth sends each pixel of the artwork
    h, w = truth.shape[:2]
    xy = np.rint(apply(pt.matrix, scan_grid((h, w)))).astype(int)
    for e in ELEMENTS:
        sampled = result[e][xy[:, 1], xy[:, 0]].reshape(h, w)
        assert np.isfinite(sampled).all()  # the two parts cover the artwork
        diff = sampled - truth.maps[e]
        noise_e = np.concatenate([n.ravel() for n in noise[e]])
        sigma = float(np.sqrt(np.mean(noise_e ** 2)))
        # the bulk of the pixels equal the truth as closely as the fitted maps do
        assert np.median(np.abs(diff)) < 1.25 * np.median(np.abs(noise_e)), e
        # every pixel, within the noise, takes a truth value from within one scan pixel (the
        # registration is good to a scan pixel; the warp picks the nearest scan pixel)
        lo = minimum_filter(truth.maps[e], size=3, mode="nearest") - 3 * sigma
        hi = maximum_filter(truth.maps[e], size=3, mode="nearest") + 3 * sigma
        assert np.mean((sampled < lo) | (sampled > hi)) < 0.01, e
        assert abs(float(np.mean(diff) - np.mean(noise_e))) < 0.1 * sigma, e
    assert (tmp_path / "mos" / "mosaic_Fe.tiff").exists()
